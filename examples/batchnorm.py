"""The convnet with batch normalization after each hidden layer and dropout before the dense
layers, trained with Nesterov momentum (lr 0.01, momentum 0.9), as in Lasagne's MNIST example.

Lasagne's tutorial reports 99.0% validation accuracy for its convnet.
    python examples/batchnorm.py --epochs 10
"""
import time

import tinygrad_edu as tg
from tinygrad_edu import nn, optim
from tinygrad_edu.training import evaluate, fit

from _common import data, fit_options, parse_args


def block(c_in, c_out):
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True)]


def build():
    return nn.Sequential(
        *block(1, 32), *block(32, 64), *block(64, 128),
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(128 * 4 * 4, 625, bias=False),
        nn.BatchNorm1d(625), nn.ReLU(), nn.Dropout(0.5), nn.Linear(625, 10))


def main(argv=None):
    args = parse_args(__doc__, argv, epochs=10, lr=0.01)
    tg.manual_seed(args.seed)
    model = build().to(args.device)
    optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True)
    train, valid, test = data(args, flatten=False)
    t0 = time.perf_counter()
    history = fit(model, optimizer, train, valid, **fit_options(args))
    test_loss, test_acc = evaluate(model, *test, device=args.device)
    print(f"test loss {test_loss:.4f}  test accuracy {test_acc:.2%}  "
          f"({time.perf_counter() - t0:.0f} s in all)")
    if args.plot:
        print(f"learning curves saved to {history.plot(args.plot)}")
    return history, test_acc


if __name__ == "__main__":
    main()
