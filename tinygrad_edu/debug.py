"""Debugging the tape: anomaly mode and the backward trace, as hooks of the engine.

The engine (tensor.py) knows only the hook protocol: an object with
``forward(ctx, y)``, called by ``Function.apply`` after each op, and
``backward(ctx, y, gy, gxs)``, called after each node's backward with the gradients it returned.
``add_hook(hook)`` installs one for a block, in the calling thread.

    with tg.detect_anomaly():        # stop at the first NaN/inf, naming the op and your line
        loss = model(x).sum(); loss.backward()
    loss.backward(trace=True)        # print each step of backpropagation
    with tg.viz.trace_backward():    # the same for every backward pass (and tg.grad) inside
        loss.backward()
"""
import os
import traceback

import numpy as np

from .backend import get_xp, to_device
from .tensor import NAMED_HOOKS, add_hook

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _creation_site():
    """The innermost stack frame outside this package: where the user called the op."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE):
            return f'{frame.filename}:{frame.lineno}, in {frame.name}: "{frame.line}"'
    return "(inside tinygrad_edu)"


def _check_finite(array, what, ctx):
    xp = get_xp(array)
    if array.dtype.kind == "f" and not bool(xp.isfinite(array).all()):
        bad = "NaN" if bool(xp.isnan(array).any()) else "inf"
        where = getattr(ctx, "created_at", None)
        where = (f"the op was created at {where}" if where else "where the op was created is "
                 "unknown: run the forward pass under detect_anomaly() too")
        raise FloatingPointError(f"anomaly: {what} of {type(ctx).__name__} contains {bad}; "
                                 + where)


class _Anomaly:
    """Every op's output and every gradient must be finite; an error names the op and the line
    of your code that created it."""

    def forward(self, ctx, y):
        ctx.created_at = _creation_site()
        _check_finite(y.data, "the output", ctx)

    def backward(self, ctx, y, gy, gxs):
        for i, gx in enumerate(gxs):
            if gx is not None:
                _check_finite(gx.data, f"the gradient for input {i}", ctx)


class _Trace:
    """Print one line per node as backward passes it (see :func:`trace_line`)."""

    def forward(self, ctx, y):
        pass

    def backward(self, ctx, y, gy, gxs):
        print(trace_line(ctx, y, gy, gxs))


ANOMALY, TRACE = _Anomaly(), _Trace()
NAMED_HOOKS["trace"] = TRACE  # what backward(trace=True) installs


class detect_anomaly(add_hook):
    """Anomaly mode: every op's output and every gradient is checked for NaN/inf, and an error
    names the op and the line of *your* code that created it. Slow; for debugging."""

    def __init__(self):
        super().__init__(ANOMALY)


def trace_backward():
    """Every backward pass inside the block (``backward()``, ``tg.grad``) prints its trace, as
    ``backward(trace=True)`` does."""
    return add_hook(TRACE)


def _norm(t):
    """The Euclidean norm of a tensor, computed in float64 on the CPU."""
    return float(np.sqrt((to_device(t.data, "cpu").astype(np.float64) ** 2).sum()))


def _who(x):
    """How the trace names a tensor: its name, the op that made it, or what kind of leaf."""
    if x.name:
        return x.name
    if x._ctx is not None:
        return type(x._ctx).__name__
    return "leaf" if x.requires_grad else "const"


def trace_line(ctx, y, gy, gxs):
    """One line of the backward trace, printed when a node's backward has run:

        Mul            grad in (2,)         |g|=1.414      -> 0:x (2,) |g|=2.828, 1:const -

    the node (and the name of its output, if any), the shape and norm of the gradient it
    received, then for each input ``position:who`` and the shape and norm of the gradient sent
    to it, or ``-`` when nothing is sent (the input requires no grad).
    """
    node = type(ctx).__name__ + (f"({y.name})" if y.name else "")
    sent = []
    for i, (x, gx) in enumerate(zip(ctx.inputs, gxs)):
        if gx is None or not x.requires_grad:
            sent.append(f"{i}:{_who(x)} -")
        else:
            sent.append(f"{i}:{_who(x)} {tuple(gx.shape)} |g|={_norm(gx):.4g}")
    return (f"{node:<14} grad in {str(tuple(gy.shape)):<12} |g|={_norm(gy):<10.4g}"
            f" -> " + ", ".join(sent))
