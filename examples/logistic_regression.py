"""Logistic regression on MNIST: softmax(X W), SGD with learning rate 0.05, batch 128.

The Theano tutorial (2_logistic_regression.py) reaches 92.5% test accuracy.
    python examples/logistic_regression.py --epochs 20
"""
import tinygrad_edu as tg
from tinygrad_edu import nn, optim

from _common import parse_args, run


def build():
    model = nn.Linear(784, 10, bias=False)       # the tutorial's softmax(X W) has no bias
    nn.init.normal_(model.weight, std=0.01)
    return model


def main(argv=None):
    args = parse_args(__doc__, argv, epochs=20, lr=0.05)
    tg.manual_seed(args.seed)
    model = build()
    return run(model, optim.SGD(model.parameters(), lr=args.lr), args)


if __name__ == "__main__":
    main()
