"""Reductions. Each backward re-inserts the reduced axes (size 1) and broadcasts the gradient back
over them. Axis arguments: an int, a tuple of ints or None (all axes); negative axes count from
the end; both spellings ``axis=``/``dim=`` and ``keepdims=``/``keepdim=`` are accepted.
"""
import builtins
import operator
from collections import namedtuple

from ..backend import get_xp
from ..tensor import Function, Tensor, array_call
from .broadcast import broadcast_to
from .elementwise import maximum, minimum


def normalize_axes(op, axis, ndim):
    """A sorted tuple of non-negative axes, or a clear error."""
    if axis is None:
        return tuple(range(ndim))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in axes:
        try:
            a = operator.index(a)  # an int, np.int64 too, but not 1.0
        except TypeError:
            raise TypeError(f"{op}: axis must be an int, a tuple of ints or None, "
                            f"not {axis!r}") from None
        # a 0-d tensor accepts axis 0 and -1, as in PyTorch, and reduces over nothing
        if not -builtins.max(ndim, 1) <= a < builtins.max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dims")
        out.append(a % builtins.max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return tuple(sorted(out)) if ndim else ()


def resolve(op, axis, dim, keepdims, keepdim):
    """Merge the NumPy and PyTorch spellings of the axis and keepdims keywords."""
    if dim is not None:
        if axis is not None:
            raise TypeError(f"{op}: give axis= or dim=, not both")
        axis = dim
    return axis, bool(keepdims or keepdim)


def _keep_shape(shape, axes):
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _count(shape, axes):
    """How many elements a reduction over ``axes`` combines into each output element."""
    n = 1
    for a in axes:
        n *= shape[a]
    return n


class Sum(Function):
    """y = sum of x over ``axes``;  dy/dx = 1, so gx is gy broadcast back over those axes."""
    keeps = ()
    needs_output = False
    def forward(ctx, x, axes, keepdims):
        ctx.axes = axes
        return x.sum(axis=axes, keepdims=keepdims)

    def backward(ctx, gy, y):
        x = ctx.inputs[0]
        if gy.ndim:  # put the reduced axes back as size 1 (a 0-d gy broadcasts as it is)
            gy = gy.reshape(_keep_shape(x.shape, ctx.axes))
        return broadcast_to(gy, x.shape)


class Mean(Sum):
    """y = (sum of x over ``axes``) / n, n the number of elements summed;  gx = Sum's gx / n."""
    def forward(ctx, x, axes, keepdims):
        ctx.axes, ctx.n = axes, _count(x.shape, axes)
        return x.sum(axis=axes, keepdims=keepdims) / ctx.n  # np.mean is slower on small arrays

    def backward(ctx, gy, y):
        return Sum.backward(ctx, gy * (1.0 / builtins.max(ctx.n, 1)), y)  # n = 0: gx is empty


class Max(Function):
    """y = max of x over ``axes``;  the gradient goes to the maximal entries, shared equally
    between ties (PyTorch's rule for a full reduction), so it always sums to gy."""
    def forward(ctx, x, axes, keepdims):
        ctx.axes = axes
        return x.max(axis=axes, keepdims=keepdims)

    def backward(ctx, gy, y):
        x = ctx.inputs[0]
        keep = _keep_shape(x.shape, ctx.axes)
        mask = x.data == y.data.reshape(keep)
        share = mask / mask.sum(axis=ctx.axes, keepdims=True)
        return broadcast_to(gy.reshape(keep), x.shape) * Tensor._wrap(share.astype(gy.dtype))


def sum(x, axis=None, keepdims=False, *, dim=None, keepdim=False):  # noqa: A001
    axis, keepdims = resolve("sum", axis, dim, keepdims, keepdim)
    return Sum.apply(x, axes=normalize_axes("sum", axis, x.ndim), keepdims=keepdims)


def _amax(op, x, axis, keepdims, dim, keepdim):
    axis, keepdims = resolve(op, axis, dim, keepdims, keepdim)
    axes = normalize_axes(op, axis, x.ndim)
    if x.data.size == 0 and (not axes or _count(x.shape, axes) == 0):
        raise ValueError(f"{op}: empty tensor of shape {x.shape}, reduced over an empty axis "
                         "(which has no maximum; along a non-empty axis the result is empty)")
    return Max.apply(x, axes=axes, keepdims=keepdims)


def amax(x, axis=None, keepdims=False, *, dim=None, keepdim=False):
    """Maximum over ``axis`` (an int, a tuple or None: all); ties share the gradient equally."""
    return _amax("amax", x, axis, keepdims, dim, keepdim)


def amin(x, axis=None, keepdims=False, *, dim=None, keepdim=False):
    return -_amax("amin", -x, axis, keepdims, dim, keepdim)


ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])


def _max_along(op, x, dim, keepdim, arg):
    """PyTorch's ``x.max(dim)``: (values, indices); the gradient goes to the index returned."""
    dim = normalize_axes(op, dim, x.ndim)
    if x.ndim == 0:
        return ValuesIndices(x + 0, Tensor._wrap(get_xp(x.data).zeros((), "int64")))
    idx = arg(x, dim[0], keepdims=True)
    if x.shape[dim[0]] == 0:
        raise ValueError(f"{op}: dim {dim[0]} of a tensor of shape {x.shape} is empty")
    xp = get_xp(x.data)
    grids = xp.ix_(*[xp.arange(n) for n in idx.shape])
    index = tuple(idx.data if i == dim[0] else g for i, g in enumerate(grids))
    values, indices = x[index], idx
    if not keepdim:
        values, indices = values.squeeze(dim[0]), indices.squeeze(dim[0])
    return ValuesIndices(values, indices)


def max(x, dim=None, keepdim=False, *, axis=None, keepdims=False):  # noqa: A001
    """``x.max()``: the largest element (ties share the gradient equally). ``x.max(dim)``: the
    named tuple (values, indices) along ``dim``, as in PyTorch; ``max(a, b)`` with a tensor
    ``b`` is ``maximum(a, b)``. ``axis=`` (an int or tuple) gives the values only, as amax."""
    if isinstance(dim, Tensor):
        return maximum(x, dim)
    if dim is None:
        return _amax("max", x, axis, keepdims, None, False)
    return _max_along("max", x, dim, keepdim or keepdims, argmax)


def min(x, dim=None, keepdim=False, *, axis=None, keepdims=False):  # noqa: A001
    """The smallest element, or (values, indices) along ``dim``; see :func:`max`."""
    if isinstance(dim, Tensor):
        return minimum(x, dim)
    if dim is None:
        return -_amax("min", -x, axis, keepdims, None, False)
    return _max_along("min", x, dim, keepdim or keepdims, argmin)


def mean(x, axis=None, keepdims=False, *, dim=None, keepdim=False):
    """Arithmetic mean: the sum divided by the number of reduced elements."""
    axis, keepdims = resolve("mean", axis, dim, keepdims, keepdim)
    if x.dtype.kind != "f":
        raise TypeError(f"mean: needs a floating-point tensor, not {x.dtype}; use .float()")
    return Mean.apply(x, axes=normalize_axes("mean", axis, x.ndim), keepdims=keepdims)


def var(x, axis=None, keepdims=False, *, correction=1, dim=None, keepdim=False):
    """Variance sum((x - mean)^2) / (n - correction); PyTorch's default correction=1 is the
    unbiased estimate, correction=0 the biased one (NumPy's default)."""
    axis, keepdims = resolve("var", axis, dim, keepdims, keepdim)
    axes = normalize_axes("var", axis, x.ndim)
    n = _count(x.shape, axes)
    d = x - mean(x, axes, keepdims=True)
    scale = 1.0 / (n - correction) if n > correction else float("nan")  # as NumPy and PyTorch
    return sum(d * d, axes, keepdims) * scale


def _indices(x, find, axis, shape):
    """argmax/argmin's work (in array_call, so a tg.compile replay finds them afresh)."""
    out = find(get_xp(x), x, axis)
    return (out if shape is None else out.reshape(shape)).astype("int64")


def _arg(name, fn):
    def arg(x, axis=None, keepdims=False, *, dim=None, keepdim=False):
        axis, keepdims = resolve(name, axis, dim, keepdims, keepdim)
        if axis is not None:
            axis = (normalize_axes(name, axis, x.ndim) or (None,))[0]  # () for a 0-d tensor
        shape = _keep_shape(x.shape, range(x.ndim) if axis is None else (axis,)) \
            if keepdims else None
        return Tensor._wrap(array_call(_indices, x.data, find=fn, axis=axis, shape=shape))
    arg.__name__ = name
    arg.__doc__ = f"Indices of the {name[3:]}imum along ``axis`` (int64, not differentiable)."
    return arg


argmax = _arg("argmax", lambda xp, a, axis: xp.argmax(a, axis=axis))
argmin = _arg("argmin", lambda xp, a, axis: xp.argmin(a, axis=axis))
