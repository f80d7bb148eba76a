"""Greedy layer-wise pre-training, then supervised fine-tuning: the Theano tutorials' stacked
denoising autoencoders (SdA.py) and deep belief net (DBN.py), against the same MLP trained from
random initialisation for the same number of fine-tuning epochs.

The net: 784-1000-1000-1000 sigmoid units and 10 softmax outputs. SdA: each layer a tied
denoising autoencoder (corruption 0.1, 0.2, 0.3), SGD at the tutorial's 0.001 per example
(its batch is 1; here the batch mean of 20 examples, with lr 0.001 x 20). DBN: each layer an
RBM trained by CD-1, lr 0.01, batch 10. Fine-tuning: SGD lr 0.1, batch 20, for all three.
The tutorials report 1.3% (SdA) and 1.34% (DBN) test error, after 15 (SdA) or 100 (DBN)
pre-training epochs per layer and 36 or 46 fine-tuning epochs (17 and 12 hours of CPU).
    python examples/pretraining.py --pretrain-epochs 1 --epochs 5
"""
import time

import tinygrad_edu as tg
from tinygrad_edu import nn, optim
from tinygrad_edu.pretraining import mlp_from_pretrained, pretrain_autoencoders, pretrain_rbms
from tinygrad_edu.training import accuracy, fit

from _common import data, make_parser, parse_args

def random_mlp(sizes, n_classes=10):
    """The same MLP from random weights: U(-a, a), a = 4 sqrt(6 / (fan_in + fan_out)) (the
    tutorials' init for sigmoid units), zero biases, and a zero output layer."""
    layers = []
    for n_in, n_out in zip(sizes, sizes[1:]):
        layer = nn.Linear(n_in, n_out)
        nn.init.xavier_uniform_(layer.weight, gain=4.0)
        nn.init.zeros_(layer.bias)
        layers += [layer, nn.Sigmoid()]
    out = nn.Linear(sizes[-1], n_classes)
    nn.init.zeros_(out.weight)
    nn.init.zeros_(out.bias)
    return nn.Sequential(*layers, out)


def pretrain(kind, args, X):
    """The pre-trained stack of layers, SdA or DBN, on the training images X (no labels)."""
    t0 = time.perf_counter()
    if kind == "sda":
        noise = [min(0.1 * (i + 1), 0.9) for i in range(len(args.sizes) - 1)]   # 0.1, 0.2, ...
        layers = pretrain_autoencoders(
            args.sizes, X, corruption=noise, epochs=args.pretrain_epochs,
            lr=args.sda_lr * args.sda_batch_size, batch_size=args.sda_batch_size,
            seed=args.seed, device=args.device, verbose=True, compile=args.compile)
    else:
        layers = pretrain_rbms(args.sizes, X, k=1, epochs=args.pretrain_epochs, lr=args.dbn_lr,
                               batch_size=args.dbn_batch_size, seed=args.seed,
                               device=args.device, verbose=True, compile=args.compile)
    print(f"{kind}: pre-training took {time.perf_counter() - t0:.0f} s", flush=True)
    return layers


def main(argv=None):
    p = make_parser(__doc__, epochs=5, lr=0.1, batch_size=20, uses_fit=False, compiles=True)
    p.add_argument("--pretrain-epochs", type=int, default=1,
                   help="pre-training epochs per layer, for the SdA and the DBN "
                        "(default: %(default)s)")
    p.add_argument("--sda-lr", type=float, default=0.001,
                   help="the SdA's pre-training learning rate per example (default: "
                        "%(default)s)")
    p.add_argument("--sda-batch-size", type=int, default=20,
                   help="the SdA's pre-training batch; the step on the batch mean is "
                        "sda-lr x sda-batch-size (default: %(default)s)")
    p.add_argument("--dbn-lr", type=float, default=0.01,
                   help="the RBMs' learning rate, CD-1 (default: %(default)s)")
    p.add_argument("--dbn-batch-size", type=int, default=10,
                   help="the RBMs' batch size (default: %(default)s)")
    p.add_argument("--hidden", default="1000,1000,1000", metavar="SIZES",
                   help="the hidden layers' sizes, comma-separated (default: %(default)s)")
    p.add_argument("--models", default="sda,dbn,random",
                   help="which nets to train, comma-separated, of sda, dbn and random "
                        "(default: %(default)s)")
    args = parse_args(p, argv)
    models = args.models.split(",")
    unknown = sorted(set(models) - {"sda", "dbn", "random"})
    if unknown:
        p.error(f"--models: unknown {', '.join(unknown)}; choose from sda, dbn, random")
    try:
        args.sizes = (784, *(int(n) for n in args.hidden.split(",")))
    except ValueError:
        args.sizes = ()
    if len(args.sizes) < 2 or min(args.sizes) < 1:
        p.error(f"--hidden: expected positive layer sizes such as 1000,1000,1000, got "
                f"{args.hidden!r}")
    train, valid, test = data(args)

    results = {}
    for kind in models:
        if kind == "random":
            tg.manual_seed(args.seed)
            model = random_mlp(args.sizes)
        else:
            model = mlp_from_pretrained(pretrain(kind, args, train.X), n_classes=10)
        print(f"{kind}: fine-tuning", flush=True)
        history = fit(model.to(args.device), optim.SGD(model.parameters(), lr=args.lr), train,
                      valid, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                      device=args.device, progress=False, compile=args.compile)
        results[kind] = dict(history=history,
                             test_acc=accuracy(model, test.X, test.y, device=args.device))
        print(f"{kind}: test accuracy {results[kind]['test_acc']:.2%}", flush=True)
    print("test error after", args.epochs, "fine-tuning epochs: " + ", ".join(
        f"{kind} {1 - r['test_acc']:.2%}" for kind, r in results.items()))
    return results


if __name__ == "__main__":
    main()
