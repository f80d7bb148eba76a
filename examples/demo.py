"""A first taste: fit a tiny two-layer network to y = sin(x) with plain gradient descent.

Everything here is a Tensor op recorded on the tape; loss.backward() walks the tape backwards
and leaves dloss/dparameter in each parameter's .grad.
"""
import numpy as np

import tinygrad_edu as tg

tg.manual_seed(0)
x = tg.Tensor(np.linspace(-3, 3, 64, dtype=np.float32).reshape(-1, 1))
y = tg.Tensor(np.sin(x.numpy()))

w1 = tg.randn(1, 32, requires_grad=True)
b1 = tg.zeros(32, requires_grad=True)
w2 = (tg.randn(32, 1) * 0.1).detach().requires_grad_()
b2 = tg.zeros(1, requires_grad=True)
params = [w1, b1, w2, b2]

for step in range(501):
    pred = (x @ w1 + b1).tanh() @ w2 + b2
    loss = ((pred - y) ** 2).mean()
    for p in params:
        p.grad = None
    loss.backward()
    with tg.no_grad():
        for p in params:
            p -= 0.1 * p.grad
    if step % 50 == 0:
        print(f"step {step:4d}  loss {loss.item():.5f}")
