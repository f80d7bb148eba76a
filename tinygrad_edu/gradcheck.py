"""Numerical gradient checking: compare backward() with central differences.

For a function f with tensor output y, project the output on fixed random weights
r ~ U[0.5, 1.5) (so a constant ``sum()`` cannot hide a wrong sign or a wrong broadcast, and the
upstream gradient is not all ones), L = sum(r * y). Then for each input element x_i:

    dL/dx_i  ~=  (L(x_i + eps) - L(x_i - eps)) / (2 eps)         (error O(eps^2))

which must match the analytic gradient up to ``atol + rtol * |numeric|``. This needs float64:
in float32 the rounding error of L, about 1e-7 * |L|, divided by 2 eps swamps the comparison.
"""
import numpy as np

from .backend import to_device
from .tensor import Tensor, grad


class GradcheckError(AssertionError):
    """A gradient disagrees with its numerical estimate; the message names the worst element."""


def _outputs(fn, inputs):
    ys = fn(*inputs)
    return (ys,) if isinstance(ys, Tensor) else tuple(ys)


def _projection(ys, seed):
    rng = np.random.default_rng(seed)
    return [Tensor(rng.uniform(0.5, 1.5, y.shape).astype(y.dtype), device=y.device) for y in ys]


def _projected(ys, weights):
    total = None
    for y, r in zip(ys, weights):
        term = (y * r).sum()
        total = term if total is None else total + term
    return total


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Check the gradients of ``fn(*inputs)`` for every input that requires grad.

    ``fn`` returns a Tensor (any shape) or a tuple of Tensors. Inputs that require grad must be
    float64. Returns True, or raises :class:`GradcheckError` naming the input, the worst element's
    index, the analytic and numeric values and the error.
    """
    inputs = tuple(inputs)
    wrt = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not wrt:
        raise ValueError("gradcheck: no input requires grad")
    for i in wrt:
        if inputs[i].dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {inputs[i].dtype}; use float64, central "
                            "differences in float32 are dominated by rounding error")
    ys = _outputs(fn, inputs)
    weights = _projection(ys, seed)
    total = _projected(ys, weights)
    analytic = (grad(total, [inputs[i] for i in wrt], allow_unused=True) if total.requires_grad
                else [None] * len(wrt))  # the output does not depend on the inputs at all

    def loss():
        return float(_projected(_outputs(fn, inputs), weights).item())

    for i, g in zip(wrt, analytic):
        x = inputs[i]
        a = np.zeros(x.shape) if g is None else to_device(g.data, "cpu")
        numeric = np.zeros(x.shape)
        for k in np.ndindex(x.shape):  # index x.data itself: reshape(-1) of a strided array copies
            old = x.data[k].item()
            x.data[k] = old + eps
            up = loss()
            x.data[k] = old - eps
            down = loss()
            x.data[k] = old
            numeric[k] = (up - down) / (2 * eps)
        excess = np.abs(a - numeric) - (atol + rtol * np.abs(numeric))
        excess = np.where(np.isnan(excess), np.inf, excess)  # NaN > 0 is False: count it as worst
        if excess.size and excess.max() > 0:
            k = np.unravel_index(int(np.argmax(excess)), x.shape)
            raise GradcheckError(
                f"gradcheck: input {i} (shape {x.shape}) at index {tuple(int(j) for j in k)}: "
                f"analytic {a[k]:.8g}, numeric {numeric[k]:.8g}, abs error "
                f"{abs(a[k] - numeric[k]):.3g} > atol {atol} + rtol {rtol} * |numeric|")
    return True


def gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=1):
    """Check second derivatives: gradcheck the function ``inputs -> grad(fn(inputs), inputs)``
    (with a fixed random upstream gradient), whose backward needs ``create_graph=True``."""
    inputs = tuple(inputs)
    wrt = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    weights = _projection(_outputs(fn, inputs), seed + 1)

    def first_derivative(*xs):
        ys = _outputs(fn, xs)
        gs = grad(ys, wrt, grad_outputs=list(weights), create_graph=True, allow_unused=True)
        return tuple(g for g in gs if g is not None)

    return gradcheck(first_derivative, inputs, eps, atol, rtol, seed)
