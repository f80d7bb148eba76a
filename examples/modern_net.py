"""The "modern net" on MNIST: 784 -> 625 -> 625 -> 10 with ReLU, dropout 0.2 on the input and
0.5 on the hidden layers, RMSprop (lr 1e-3, rho 0.9, epsilon 1e-6 inside the square root).

The Theano tutorial (4_modern_net.py) reaches 99.0% test accuracy.
    python examples/modern_net.py --epochs 30
"""
import tinygrad_edu as tg
from tinygrad_edu import nn, optim

from _common import parse_args, run


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
    args = parse_args(__doc__, argv, epochs=30, lr=1e-3)
    tg.manual_seed(args.seed)
    model = build()
    return run(model, optimizer(model, args.lr), args)


if __name__ == "__main__":
    main()
