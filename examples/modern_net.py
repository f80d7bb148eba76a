"""The "modern net" on MNIST: 784 -> 625 -> 625 -> 10 with ReLU, dropout 0.2 on the input and
0.5 on the hidden layers, RMSprop (lr 1e-3, rho 0.9, epsilon 1e-6 inside the square root).

The Theano tutorial (4_modern_net.py) reaches 99.0% test accuracy.
    python examples/modern_net.py --epochs 30

From here on the loop that mlp.py writes out is tg.training.fit's: batches, forward, loss,
zero_grad, backward, step, then the validation line of the table, every epoch.

Data parallel on 2 processes (tinygrad_edu.distributed; pip install 'tinygrad_edu[mpi]'):
    mpiexec -n 2 python examples/modern_net.py --distributed
each rank trains on half of every batch of 128 (the global batch stays 128, so the run learns
as the single-process one does) and the gradients are averaged before each step.
"""
import time

import tinygrad_edu as tg
from tinygrad_edu import distributed as dist
from tinygrad_edu import nn, optim
from tinygrad_edu.training import evaluate, fit

from _common import data, fit_options, make_parser, parse_args


def build():
    model = nn.Sequential(
        nn.Dropout(0.2), nn.Linear(784, 625), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(625, 625), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(625, 10))
    for layer in model:
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=0.01)
    return model


def optimizer(model, lr):
    # The tutorial's RMSprop divides by sqrt(mean_square + eps): eps inside the square root.
    return optim.RMSprop(model.parameters(), lr=lr, alpha=0.9, eps=1e-6, eps_inside_sqrt=True)


def main(argv=None):
    parser = make_parser(__doc__, epochs=30, lr=1e-3)
    parser.add_argument("--distributed", action="store_true",
                        help="data parallel over the ranks of mpiexec -n N (default: off)")
    args = parse_args(parser, argv)
    tg.manual_seed(args.seed)
    model = build().to(args.device)
    if args.distributed:   # rank 0's weights on every rank; fit averages the gradients
        dist.init()
        model = dist.DistributedDataParallel(model)
    train, valid, test = data(args)
    t0 = time.perf_counter()
    history = fit(model, optimizer(model, args.lr), train, valid, **fit_options(args))
    test_loss, test_acc = evaluate(model, *test, device=args.device)
    if dist.rank() != 0:   # the model is the same on every rank: rank 0 reports
        return history, test_acc
    print(f"test loss {test_loss:.4f}  test accuracy {test_acc:.2%}  "
          f"({time.perf_counter() - t0:.0f} s in all)")
    if args.plot:
        print(f"learning curves saved to {history.plot(args.plot)}")
    return history, test_acc


if __name__ == "__main__":
    main()
