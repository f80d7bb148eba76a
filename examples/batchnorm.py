"""The convnet with batch normalization after each hidden layer and dropout before the dense
layers, trained with Nesterov momentum (lr 0.01, momentum 0.9), as in Lasagne's MNIST example.

Lasagne's tutorial reports 99.0% validation accuracy for its convnet.
    python examples/batchnorm.py --epochs 10
"""
import tinygrad_edu as tg
from tinygrad_edu import nn, optim

from _common import parse_args, run


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
    model = build()
    opt = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True)
    return run(model, opt, args, flatten=False)


if __name__ == "__main__":
    main()
