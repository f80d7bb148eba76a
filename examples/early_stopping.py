"""Early stopping: train the MLP of mlp.py (784 -> 625 sigmoid -> 10 softmax, SGD, batch 128)
while watching the validation loss; stop after `patience` epochs without improvement and put
back the parameters of the best epoch.

The recipe is the Theano tutorial's 3_net.py (98.4% test accuracy) plus early stopping, which
the tutorial does not use; with --lr 0.5 this stops after about 50 epochs (see the README).
    python examples/early_stopping.py --epochs 100 --patience 5
"""
import time

import tinygrad_edu as tg
from tinygrad_edu import nn, optim
from tinygrad_edu.training import evaluate, fit

from _common import data, fit_options, make_parser, parse_args


def main(argv=None):
    p = make_parser(__doc__, epochs=100, lr=0.05)
    p.add_argument("--patience", type=int, default=5,
                   help="stop after this many epochs without a lower validation loss "
                        "(default: %(default)s)")
    args = parse_args(p, argv)
    tg.manual_seed(args.seed)
    model = nn.Sequential(nn.Linear(784, 625), nn.Sigmoid(), nn.Linear(625, 10))
    for layer in (model[0], model[2]):          # mlp.py's init: N(0, 0.01), no bias shift
        nn.init.normal_(layer.weight, std=0.01)
    model.to(args.device)
    optimizer = optim.SGD(model.parameters(), lr=args.lr)
    train, valid, test = data(args)
    t0 = time.perf_counter()
    history = fit(model, optimizer, train, valid, patience=args.patience, **fit_options(args))
    test_loss, test_acc = evaluate(model, *test, device=args.device)
    print(f"test loss {test_loss:.4f}  test accuracy {test_acc:.2%}  "
          f"({time.perf_counter() - t0:.0f} s in all)")
    best = history.best("valid_loss")
    print(f"best epoch {best['epoch']}: validation loss {best['valid_loss']:.4f}, "
          f"accuracy {best['valid_acc']:.2%}")
    if args.plot:
        print(f"learning curves saved to {history.plot(args.plot)}")
    return history, test_acc


if __name__ == "__main__":
    main()
