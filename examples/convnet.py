"""A convolutional net on MNIST: three blocks of 3x3 convolution (32, 64, 128 filters), ReLU,
2x2 max-pooling (ceil mode: Theano's ignore_border=False) and dropout 0.2, then a 625-unit
dense layer with dropout 0.5 and a softmax output; RMSprop (lr 1e-3, rho 0.9, eps 1e-6).

The Theano tutorial (5_convolutional_net.py) reaches 99.5% test accuracy.
    python examples/convnet.py --epochs 15
"""
import time

import tinygrad_edu as tg
from tinygrad_edu import nn, optim
from tinygrad_edu.training import evaluate, fit

from _common import data, fit_options, parse_args


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
    model = build().to(args.device)
    # the tutorial's RMSprop, as in modern_net.py: eps inside the square root
    optimizer = optim.RMSprop(model.parameters(), lr=args.lr, alpha=0.9, eps=1e-6,
                              eps_inside_sqrt=True)
    train, valid, test = data(args, flatten=False)             # images as (N, 1, 28, 28)
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
