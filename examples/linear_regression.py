"""Linear regression: fit y = w x to 101 points made as y = 2 x + noise, by SGD on the squared
error, one point at a time (lr 0.01, 100 epochs).

The Theano tutorial (1_linear_regression.py) finds w close to 2.
    python examples/linear_regression.py
"""
import argparse

import numpy as np

import tinygrad_edu as tg


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=100,
                   help="passes over the 101 points (default: %(default)s)")
    p.add_argument("--lr", type=float, default=0.01, help="learning rate (default: %(default)s)")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    x = np.linspace(-1, 1, 101).astype(np.float32)
    y = (2 * x + rng.normal(size=x.shape) * 0.33).astype(np.float32)
    w = tg.Tensor(0.0, requires_grad=True)
    for epoch in range(args.epochs):
        for xi, yi in zip(x, y):              # one example at a time, as in the tutorial
            loss = (w * float(xi) - float(yi)) ** 2
            w.grad = None
            loss.backward()
            with tg.no_grad():
                w -= args.lr * w.grad
        if epoch % 20 == 0 or epoch == args.epochs - 1:
            print(f"epoch {epoch:3d}  w = {w.item():.4f}")
    print(f"fitted w = {w.item():.4f} (the data were made with w = 2)")
    return w.item()


if __name__ == "__main__":
    main()
