"""Movement ops: they rearrange elements without computing new values, so every backward
moves the gradient back the opposite way (reshape back, permute with the inverse order,
scatter an indexed gradient into zeros).

Names follow PyTorch: ``transpose(dim0, dim1)`` swaps two axes, ``permute(*dims)`` reorders all
of them, ``.T`` reverses all axes, ``pad`` takes PyTorch's flat (before, after) pairs starting
from the LAST axis.
"""
import numpy as np

from ..backend import DEVICES, check_device, get_xp, to_device
from ..tensor import Function, Tensor
from .broadcast import broadcast_to  # noqa: F401 (re-exported as expand)
from .elementwise import cast, where


def _shape_arg(shape):
    """Accept ``f(2, 3)`` and ``f((2, 3))``."""
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


class Reshape(Function):
    """y = x with a new shape (same elements in C order);  gx = gy reshaped back."""
    keeps = ()
    needs_output = False
    is_view = True
    def forward(ctx, x, shape): return x.reshape(shape)
    def backward(ctx, gy, y): return gy.reshape(ctx.inputs[0].shape)


class Permute(Function):
    """y = x with its axes reordered;  gx = gy with the inverse order."""
    keeps = ()
    needs_output = False
    is_view = True

    def forward(ctx, x, dims):
        ctx.dims = dims
        return x.transpose(dims)

    def backward(ctx, gy, y):
        # axis i of x became axis dims.index(i) of y; np.argsort(dims) says the same, slowly
        inverse = tuple([ctx.dims.index(i) for i in range(len(ctx.dims))])
        return Permute.apply(gy, dims=inverse)


class GetItem(Function):
    """y = x[index];  gx = zeros with gy added at the indexed places (repeats accumulate)."""
    keeps = ()
    needs_output = False
    is_view = True  # basic slicing returns a view

    def forward(ctx, x, index):
        ctx.index = index
        return x[index]

    def backward(ctx, gy, y):
        return ScatterAdd.apply(gy, index=ctx.index, shape=ctx.inputs[0].shape)


class ScatterAdd(Function):
    """y = zeros(shape) with y[index] += x (np.add.at semantics);  gx = gy[index]."""
    keeps = ()
    needs_output = False
    def forward(ctx, x, index, shape):
        ctx.index = index
        xp = get_xp(x)
        y = xp.zeros(shape, dtype=x.dtype)
        if _has_int_array(index):  # repeated indices must add up, which plain assignment loses
            xp.add.at(y, index, x)
        else:
            y[index] = x
        return y

    def backward(ctx, gy, y): return gy[ctx.index]


def _has_int_array(index):
    parts = index if isinstance(index, tuple) else (index,)
    return any(hasattr(p, "dtype") and p.dtype.kind in "iu" or isinstance(p, list) for p in parts)


class Concatenate(Function):
    """y = inputs joined along ``axis``;  each input's gradient is its slice of gy."""
    keeps = ()
    needs_output = False
    def forward(ctx, *xs, axis):
        ctx.axis = axis
        return get_xp(xs[0]).concatenate(xs, axis=axis)

    def backward(ctx, gy, y):
        grads, start = [], 0
        for x in ctx.inputs:
            index = (slice(None),) * ctx.axis + (slice(start, start + x.shape[ctx.axis]),)
            grads.append(gy[index] if x.requires_grad else None)
            start += x.shape[ctx.axis]
        return tuple(grads)


class Pad(Function):
    """y = x surrounded by ``value``;  gx = the middle part of gy."""
    keeps = ()
    needs_output = False
    def forward(ctx, x, width, value):
        ctx.inner = tuple(slice(b, b + n) for (b, _), n in zip(width, x.shape))
        return get_xp(x).pad(x, width, constant_values=value)

    def backward(ctx, gy, y): return gy[ctx.inner]


# ---- public wrappers ------------------------------------------------------------------------
def reshape(x, *shape):
    shape = _shape_arg(shape)
    return x if shape == x.shape else Reshape.apply(x, shape=shape)


def _dim(op, d, ndim):
    """A non-negative axis, or a clear error (a bare modulo would wrap 5 round to a valid axis)."""
    if not -max(ndim, 1) <= d < max(ndim, 1):
        raise ValueError(f"{op}: dim {d} is out of range for a tensor with {ndim} dims")
    return d % max(ndim, 1)


def permute(x, *dims):
    dims = tuple(_dim("permute", d, x.ndim) for d in _shape_arg(dims))
    if sorted(dims) != list(range(x.ndim)):
        raise ValueError(f"permute: {dims} is not an order of the {x.ndim} axes of shape {x.shape}")
    return x if dims == tuple(range(x.ndim)) else Permute.apply(x, dims=dims)


def transpose(x, dim0=-2, dim1=-1):
    """Swap two axes (PyTorch's meaning; NumPy's ``transpose`` is our ``permute``)."""
    dims = list(range(x.ndim))
    try:
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    except IndexError:
        raise ValueError(f"transpose: axes {dim0}, {dim1} out of range for shape {x.shape}") from None
    # a swap of two valid axes is a valid order, so permute's checks can be skipped
    return x if dims[dim0] == dims[dim1] else Permute.apply(x, dims=tuple(dims))


def flatten(x, start_dim=0, end_dim=-1):
    """Merge axes start_dim..end_dim into one (PyTorch's ``flatten``)."""
    s, e = _dim("flatten", start_dim, x.ndim), _dim("flatten", end_dim, x.ndim)
    if x.ndim == 0:
        return reshape(x, 1)
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} "
                         f"for shape {x.shape}")
    return reshape(x, x.shape[:s] + (-1,) + x.shape[e + 1:])


def squeeze(x, dim=None, *, axis=None):
    """Remove size-1 axes (all of them, or just ``dim`` when it has size 1, as PyTorch)."""
    dim = axis if dim is None else dim
    if dim is None:
        return reshape(x, tuple(n for n in x.shape if n != 1))
    dims = {_dim("squeeze", d, x.ndim) for d in ((dim,) if isinstance(dim, int) else dim)}
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if not (i in dims and n == 1)))


def unsqueeze(x, dim=None, *, axis=None):
    """Insert a size-1 axis at ``dim`` (negative counts from the end of the result)."""
    dim = axis if dim is None else dim
    if not -x.ndim - 1 <= dim <= x.ndim:
        raise ValueError(f"unsqueeze: dim {dim} out of range for shape {x.shape}")
    dim %= x.ndim + 1
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


def getitem(x, index):
    """NumPy indexing: ints, slices (negative steps too), None, Ellipsis, bool masks and integer
    arrays (Tensors, lists or arrays; repeated indices accumulate in backward)."""
    if isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    elif isinstance(index, Tensor):
        index = index.data
    if isinstance(index, list):  # a list is an integer-array index, as in NumPy (made on x's
        index = get_xp(x.data).asarray(index)  # device once, not copied there in every use)
    return GetItem.apply(x, index=index)


def cat(tensors, axis=0, *, dim=None):
    """Join tensors along an existing axis (``concatenate``)."""
    axis = axis if dim is None else dim
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: needs at least one tensor")
    t0 = tensors[0]
    for t in tensors[1:]:
        if t.dtype != t0.dtype:
            raise TypeError(f"cat: dtypes differ ({t0.dtype} and {t.dtype})")
        if t.ndim != t0.ndim:
            raise ValueError(f"cat: shapes {t0.shape} and {t.shape} have different ranks")
    if not -t0.ndim <= axis < t0.ndim:
        raise ValueError(f"cat: axis {axis} out of range for shape {t0.shape}")
    return Concatenate.apply(*tensors, axis=axis % t0.ndim)


def stack(tensors, axis=0, *, dim=None):
    """Join tensors of one shape along a new axis."""
    axis = axis if dim is None else dim
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    for t in tensors[1:]:
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: shapes {tensors[0].shape} and {t.shape} differ")
    if not -tensors[0].ndim - 1 <= axis <= tensors[0].ndim:
        raise ValueError(f"stack: axis {axis} out of range for {len(tensors)} tensors of shape "
                         f"{tensors[0].shape}")
    return cat([unsqueeze(t, axis) for t in tensors], axis if axis >= 0 else axis + 1 + tensors[0].ndim)


def pad(x, pad, value=0.0):
    """Constant padding, PyTorch's convention: ``pad=(left, right)`` pads the last axis,
    ``(left, right, top, bottom)`` the last two, and so on backwards."""
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim or any(p < 0 for p in pad):
        raise ValueError(f"pad: {pad} must be non-negative (before, after) pairs for at most "
                         f"{x.ndim} axes of shape {x.shape}")
    pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)][::-1]
    width = [(0, 0)] * (x.ndim - len(pairs)) + pairs
    return Pad.apply(x, width=tuple(width), value=value)


class ToDevice(Function):
    """y = x copied to another device;  gx = gy copied back."""
    keeps = ()
    needs_output = False
    def forward(ctx, x, device): return to_device(x, device)
    def backward(ctx, gy, y): return ToDevice.apply(gy, device=ctx.inputs[0].device)


def to(x, device=None, dtype=None):
    """``t.to("cuda")``, ``t.to(np.float64)`` or both; differentiable, no copy when nothing changes."""
    if device is not None and not (isinstance(device, str) and device.split(":")[0] in DEVICES):
        device, dtype = None, device
        try:
            np.dtype(dtype)
        except TypeError:
            raise ValueError(f"to: {dtype!r} is neither a device ('cpu', 'cuda') nor a dtype") \
                from None
    if device is not None and check_device(device) != x.device:
        x = ToDevice.apply(x, device=check_device(device))
    return x if dtype is None else cast(x, dtype)


class Clone(Function):
    """y = a copy of x (its own memory, C-contiguous);  gx = gy."""
    keeps = ()
    needs_output = False
    def forward(ctx, x): return x.copy()
    def backward(ctx, gy, y): return gy


def clone(x):
    return Clone.apply(x)


def contiguous(x):
    """x itself when its data is C-contiguous, else a contiguous copy (``clone``)."""
    return x if x.data.flags.c_contiguous else Clone.apply(x)


def masked_fill(x, mask, value):
    """``value`` where the bool ``mask`` (broadcastable to x's shape) is True, x elsewhere."""
    mask = mask if isinstance(mask, Tensor) else Tensor(mask, device=x.device)
    if mask.dtype != np.bool_:
        raise TypeError(f"masked_fill: mask must be bool, got {mask.dtype}")
    try:
        fits = np.broadcast_shapes(mask.shape, x.shape) == x.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"masked_fill: mask of shape {mask.shape} does not broadcast to the "
                         f"tensor's shape {x.shape}")
    if isinstance(value, Tensor) and value.ndim:
        raise ValueError(f"masked_fill: value must be a number or a 0-d tensor, "
                         f"got shape {value.shape}")
    return where(mask, value, x)
