"""A first taste: fit a tiny two-layer network to y = sin(x) with plain gradient descent.

Everything here is a Tensor op recorded on the tape; loss.backward() walks the tape backwards
and leaves dloss/dparameter in each parameter's .grad. The recipe: 64 points in [-3, 3], a
1 -> 32 tanh -> 1 network, full-batch gradient descent with lr 0.1 for 500 steps, which brings
the mean squared error from about 0.9 to below 0.02. No published figure: it takes a second.
    python examples/demo.py
"""
import argparse

import numpy as np

import tinygrad_edu as tg


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500,
                        help="gradient descent steps (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=0.1,
                        help="learning rate (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the initial weights (default: %(default)s)")
    args = parser.parse_args(argv)

    tg.manual_seed(args.seed)
    x = tg.Tensor(np.linspace(-3, 3, 64, dtype=np.float32).reshape(-1, 1))
    y = tg.Tensor(np.sin(x.numpy()))

    w1 = tg.randn(1, 32, requires_grad=True)
    b1 = tg.zeros(32, requires_grad=True)
    w2 = (tg.randn(32, 1) * 0.1).detach().requires_grad_()
    b2 = tg.zeros(1, requires_grad=True)
    params = [w1, b1, w2, b2]

    for step in range(args.steps + 1):
        pred = (x @ w1 + b1).tanh() @ w2 + b2
        loss = ((pred - y) ** 2).mean()
        for p in params:
            p.grad = None
        loss.backward()
        with tg.no_grad():
            for p in params:
                p -= args.lr * p.grad
        if step % 50 == 0 or step == args.steps:
            print(f"step {step:4d}  loss {loss.item():.5f}")
    return loss.item()


if __name__ == "__main__":
    main()
