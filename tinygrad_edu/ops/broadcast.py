"""Broadcasting and its adjoint.

When a binary op broadcasts an input of shape (3, 1) to (2, 3, 4), every element of the input
was used several times, so its gradient is the *sum* of the gradients of all its copies:
``sum_to(grad, (3, 1))`` sums over the leading axis that broadcasting added, then over the axes
where the input had size 1. ``SumTo`` and ``BroadcastTo`` are each other's backward.
"""
from ..backend import get_xp
from ..tensor import Function


def _sum_axes(shape, target):
    """Axes of ``shape`` to sum (keeping dims) so that it reduces to ``target``."""
    lead = len(shape) - len(target)
    return tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(target) if n == 1 and shape[lead + i] != 1)


class SumTo(Function):
    """y = x summed down to ``shape`` (the adjoint of broadcasting); dy/dx broadcasts back."""
    keeps = ()
    needs_output = False

    def forward(ctx, x, shape):
        lead = x.ndim - len(shape)
        y = x.sum(axis=_sum_axes(x.shape, shape), keepdims=True)
        return y.reshape(shape) if lead else y

    def backward(ctx, gy, y):
        return broadcast_to(gy, ctx.inputs[0].shape)


class BroadcastTo(Function):
    """y = x repeated along new leading axes and size-1 axes; dy/dx = sum_to(gy, x.shape)."""
    keeps = ()
    needs_output = False
    is_view = True

    def forward(ctx, x, shape):
        return get_xp(x).broadcast_to(x, shape)

    def backward(ctx, gy, y):
        return sum_to(gy, ctx.inputs[0].shape)


def sum_to(x, shape):
    """Sum ``x`` down to ``shape``; returns ``x`` itself when it already has that shape."""
    shape = tuple(shape)
    return x if x.shape == shape else SumTo.apply(x, shape=shape)


def broadcast_to(x, *shape):
    """Broadcast ``x`` to ``shape`` (a read-only view, like NumPy's); PyTorch's ``expand``."""
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    if -1 in shape:  # PyTorch's expand: -1 keeps that axis
        lead = len(shape) - x.ndim
        if lead < 0 or -1 in shape[:lead]:
            raise ValueError(f"expand: -1 in {shape} must stand for an existing axis of the "
                             f"tensor's shape {x.shape}, aligned from the right")
        shape = tuple(x.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
    return x if x.shape == shape else BroadcastTo.apply(x, shape=shape)
