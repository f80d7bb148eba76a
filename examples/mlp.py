"""A multilayer perceptron on MNIST: 784 -> 625 sigmoid -> 10 softmax, SGD (lr 0.05, batch 128).

The Theano tutorial (3_net.py) reaches 98.4% test accuracy.
    python examples/mlp.py --epochs 50
"""
import tinygrad_edu as tg
from tinygrad_edu import nn, optim

from _common import parse_args, run


def build():
    model = nn.Sequential(nn.Linear(784, 625), nn.Sigmoid(), nn.Linear(625, 10))
    for layer in (model[0], model[2]):          # the tutorial's init: N(0, 0.01), no bias shift
        nn.init.normal_(layer.weight, std=0.01)
    return model


def main(argv=None):
    args = parse_args(__doc__, argv, epochs=50, lr=0.05)
    tg.manual_seed(args.seed)
    model = build()
    return run(model, optim.SGD(model.parameters(), lr=args.lr), args)


if __name__ == "__main__":
    main()
