"""A convolutional net on MNIST: three blocks of 3x3 convolution (32, 64, 128 filters), ReLU,
2x2 max-pooling (ceil mode: Theano's ignore_border=False) and dropout 0.2, then a 625-unit
dense layer with dropout 0.5 and a softmax output; RMSprop (lr 1e-3, rho 0.9, eps 1e-6).

The Theano tutorial (5_convolutional_net.py) reaches 99.5% test accuracy.
    python examples/convnet.py --epochs 15
"""
import tinygrad_edu as tg
from tinygrad_edu import nn

from _common import parse_args, run
from modern_net import optimizer


def block(c_in, c_out):
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Dropout(0.2)]


def build():
    return nn.Sequential(
        *block(1, 32), *block(32, 64), *block(64, 128),      # 28 -> 14 -> 7 -> 4
        nn.Flatten(), nn.Linear(128 * 4 * 4, 625), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(625, 10))


def main(argv=None):
    args = parse_args(__doc__, argv, epochs=15, lr=1e-3)
    tg.manual_seed(args.seed)
    model = build()
    return run(model, optimizer(model, args.lr), args, flatten=False)


if __name__ == "__main__":
    main()
