"""Elementwise ops. Each backward multiplies the incoming gradient by the local derivative and,
for binary ops, sums it back to the input's shape (see broadcast.py).

Subgradients follow PyTorch: relu'(0) = 0, |x|'(0) = 0, maximum/minimum split ties 50/50,
clip passes the gradient where lo <= x <= hi.
"""
import operator

import numpy as np

from ..backend import get_xp
from ..tensor import Function, Tensor, array_call
from .broadcast import sum_to


def _const(array):
    """Wrap an array that is a constant of the backward pass (a mask, a sign)."""
    return Tensor._wrap(array)


def _operands(op, a, b):
    """Both operands as Tensors of one dtype. A Python or NumPy number (or a list) takes the dtype
    of the tensor operand, so ``t * np.float64(2)`` stays float32; two tensors must agree."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError(f"{op}: at least one operand must be a Tensor, got {type(a).__name__} "
                        f"and {type(b).__name__}")
    if not isinstance(b, Tensor):
        b = _scalar(op, b, a)
    elif not isinstance(a, Tensor):
        a = _scalar(op, a, b)
    if a.dtype != b.dtype:
        raise TypeError(f"{op}: dtypes differ ({a.dtype} and {b.dtype}); convert one first, "
                        "e.g. with .float(), .double() or .to(dtype)")
    return a, b


def _scalar(op, value, like):
    if not isinstance(value, (int, float)):  # (bools are ints) anything else: is it numeric?
        _check_numeric(op, value, like)
    elif like.dtype.kind != "f" and isinstance(value, float):
        raise TypeError(f"{op}: a float operand with a {like.dtype} tensor; convert it with .float()")
    return Tensor._wrap(get_xp(like.data).asarray(value, dtype=like.dtype))


def _check_numeric(op, value, like):
    if not isinstance(value, (np.number, np.bool_, np.ndarray, list, tuple)) \
            and not hasattr(value, "__cuda_array_interface__"):
        raise TypeError(f"{op}: unsupported operand of type {type(value).__name__} with a "
                        f"{like.dtype} tensor; expected a Tensor, a number or an array")
    kind = (value.dtype if hasattr(value, "dtype") else np.asarray(value).dtype).kind
    if kind not in "biuf":
        raise TypeError(f"{op}: operand of dtype kind {kind!r} ({type(value).__name__}); "
                        "expected real numbers or bools")


class Neg(Function):
    """y = -x;  dy/dx = -1."""
    elementwise = True
    keeps = ()
    needs_output = False
    def forward(ctx, x): return -x
    def backward(ctx, gy, y): return -gy


class Add(Function):
    """y = a + b;  dy/da = dy/db = 1."""
    elementwise = True
    keeps = ()
    needs_output = False
    def forward(ctx, a, b): return a + b

    def backward(ctx, gy, y):
        a, b = ctx.inputs
        return (sum_to(gy, a.shape) if a.requires_grad else None,
                sum_to(gy, b.shape) if b.requires_grad else None)


class Sub(Function):
    """y = a - b;  dy/da = 1, dy/db = -1."""
    elementwise = True
    keeps = ()
    needs_output = False
    def forward(ctx, a, b): return a - b

    def backward(ctx, gy, y):
        a, b = ctx.inputs
        return (sum_to(gy, a.shape) if a.requires_grad else None,
                sum_to(-gy, b.shape) if b.requires_grad else None)


class Mul(Function):
    """y = a * b;  dy/da = b, dy/db = a."""
    elementwise = True
    needs_output = False
    def forward(ctx, a, b): return a * b

    def backward(ctx, gy, y):
        a, b = ctx.inputs
        return (sum_to(gy * b, a.shape) if a.requires_grad else None,
                sum_to(gy * a, b.shape) if b.requires_grad else None)


class Div(Function):
    """y = a / b;  dy/da = 1 / b, dy/db = -a / b^2 = -y / b."""
    elementwise = True
    keeps = (1,)
    def forward(ctx, a, b): return a / b

    def backward(ctx, gy, y):
        a, b = ctx.inputs
        ga = gy / b
        return (sum_to(ga, a.shape) if a.requires_grad else None,
                sum_to(-ga * y, b.shape) if b.requires_grad else None)


class Pow(Function):
    """y = a ** b;  dy/da = b a^(b-1), dy/db = y log(a)."""
    def forward(ctx, a, b): return a ** b

    def backward(ctx, gy, y):
        a, b = ctx.inputs
        return (sum_to(gy * b * a ** (b - 1), a.shape) if a.requires_grad else None,
                sum_to(gy * y * log(a), b.shape) if b.requires_grad else None)


class Exp(Function):
    """y = e^x;  dy/dx = y."""
    keeps = ()
    def forward(ctx, x): return get_xp(x).exp(x)
    def backward(ctx, gy, y): return gy * y


class Log(Function):
    """y = log x;  dy/dx = 1 / x."""
    needs_output = False
    def forward(ctx, x): return get_xp(x).log(x)
    def backward(ctx, gy, y): return gy / ctx.inputs[0]


class Sqrt(Function):
    """y = sqrt x;  dy/dx = 1 / (2 y)."""
    elementwise = True
    keeps = ()
    def forward(ctx, x): return get_xp(x).sqrt(x)
    def backward(ctx, gy, y): return gy / (y * 2)


class Abs(Function):
    """y = |x|;  dy/dx = sign(x) (0 at x = 0)."""
    def forward(ctx, x): return get_xp(x).abs(x)
    def backward(ctx, gy, y): return gy * _const(get_xp(y.data).sign(ctx.inputs[0].data))


class Tanh(Function):
    """y = tanh x;  dy/dx = 1 - y^2."""
    keeps = ()
    def forward(ctx, x): return get_xp(x).tanh(x)
    def backward(ctx, gy, y): return gy * (1 - y * y)


class Sigmoid(Function):
    """y = 1 / (1 + e^-x), computed as (1 + tanh(x/2)) / 2, which never overflows;
    dy/dx = y (1 - y)."""
    keeps = ()
    def forward(ctx, x):
        y = get_xp(x).tanh(x * 0.5)
        y += 1
        y *= 0.5
        return y

    def backward(ctx, gy, y): return gy * y * (1 - y)


class Relu(Function):
    """y = max(x, 0);  dy/dx = 1 where x > 0, else 0 (from y: y > 0 exactly where x > 0)."""
    keeps = ()
    elementwise = True
    def forward(ctx, x): return get_xp(x).maximum(x, 0)
    def backward(ctx, gy, y): return ReluGrad.apply(gy, y)


class ReluGrad(Function):
    """gx = gy * (y > 0): relu's backward as one op (tg.compile can fuse it). It is linear in
    gy, with (y > 0) a constant, so its own gradient is ReluGrad again (and none for y)."""
    keeps = (1,)
    needs_output = False
    elementwise = True
    def forward(ctx, gy, y): return gy * (y > 0).astype(gy.dtype)
    def backward(ctx, ggx, gx): return ReluGrad.apply(ggx, ctx.inputs[1]), None


class Maximum(Function):
    """y = max(a, b);  the gradient goes to the larger input, split equally on ties."""
    elementwise = True
    needs_output = False
    def forward(ctx, a, b): return get_xp(a).maximum(a, b)

    def backward(ctx, gy, y):
        a, b = ctx.inputs
        mask = (a.data > b.data) + 0.5 * (a.data == b.data)
        mask = _const(mask.astype(gy.dtype))
        return (sum_to(gy * mask, a.shape) if a.requires_grad else None,
                sum_to(gy * (1 - mask), b.shape) if b.requires_grad else None)


class Where(Function):
    """y = a where cond else b;  the gradient is routed the same way (cond gets none)."""
    def forward(ctx, cond, a, b): return get_xp(a).where(cond, a, b)

    def backward(ctx, gy, y):
        cond, a, b = ctx.inputs
        zero = _const(get_xp(gy.data).zeros((), dtype=gy.dtype))
        return (None,
                sum_to(where(cond, gy, zero), a.shape) if a.requires_grad else None,
                sum_to(where(cond, zero, gy), b.shape) if b.requires_grad else None)


class Clip(Function):
    """y = min(max(x, lo), hi);  dy/dx = 1 where lo <= x <= hi, else 0."""
    needs_output = False
    def forward(ctx, x, lo, hi):
        ctx.lo, ctx.hi = lo, hi
        return get_xp(x).clip(x, lo, hi)

    def backward(ctx, gy, y):
        x = ctx.inputs[0].data
        inside = get_xp(x).ones(x.shape, dtype=bool)
        if ctx.lo is not None:
            inside &= x >= ctx.lo
        if ctx.hi is not None:
            inside &= x <= ctx.hi
        return gy * _const(inside.astype(gy.dtype))


# ---- public wrappers (bound to Tensor methods and operators in ops/__init__.py) ------------
def add(a, b): return Add.apply(*_operands("add", a, b))
def sub(a, b): return Sub.apply(*_operands("sub", a, b))
def mul(a, b): return Mul.apply(*_operands("mul", a, b))
def div(a, b):
    a, b = _operands("div", a, b)
    if a.dtype.kind != "f":  # true division of integers gives float32, the default (as PyTorch)
        a, b = cast(a, np.float32), cast(b, np.float32)
    return Div.apply(a, b)
def pow(a, b): return Pow.apply(*_operands("pow", a, b))  # noqa: A001 (the PyTorch name)
def maximum(a, b): return Maximum.apply(*_operands("maximum", a, b))
def minimum(a, b): return -maximum(-a, -b)
def neg(x): return Neg.apply(x)
def _float(x):
    """Float ops on integer or bool tensors compute in float32, PyTorch's default float."""
    return x if x.dtype.kind == "f" else cast(x, np.float32)
def exp(x): return Exp.apply(_float(x))
def log(x): return Log.apply(_float(x))
def sqrt(x): return Sqrt.apply(_float(x))
def abs(x): return Abs.apply(x)  # noqa: A001
def tanh(x): return Tanh.apply(_float(x))
def sigmoid(x): return Sigmoid.apply(_float(x))
def relu(x): return Relu.apply(x)


def clip(x, min=None, max=None):  # noqa: A002 (PyTorch's keyword names)
    """Clamp to [min, max]; either bound may be None. Also called ``clamp``."""
    if min is None and max is None:
        raise ValueError("clip: give at least one of min and max")
    return Clip.apply(x, lo=None if min is None else float(min), hi=None if max is None else float(max))


def where(cond, a, b):
    """Elementwise ``a if cond else b``; ``cond`` is a bool tensor (or array), no gradient."""
    cond = cond if isinstance(cond, Tensor) else Tensor(cond)
    if cond.dtype != np.bool_:
        raise TypeError(f"where: condition must be bool, got {cond.dtype}")
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError("where: at least one of a and b must be a Tensor")
    a, b = _operands("where", a, b)
    return Where.apply(cond, a, b)


def _compare(name, fn):
    """Comparison ops give bool tensors and are not differentiable."""
    def compare(a, b):
        a, b = _operands(name, a, b)
        if a.device != b.device:
            raise ValueError(f"{name}: tensors on different devices: {a.device} and {b.device}")
        return Tensor._wrap(array_call(fn, a.data, b.data))  # (tg.compile repeats it)
    compare.__name__ = name
    return compare


eq, ne = _compare("eq", operator.eq), _compare("ne", operator.ne)
lt, le = _compare("lt", operator.lt), _compare("le", operator.le)
gt, ge = _compare("gt", operator.gt), _compare("ge", operator.ge)


class Cast(Function):
    """y = x converted to another dtype;  gx = gy converted back (floats only)."""
    keeps = ()
    needs_output = False
    def forward(ctx, x, dtype): return x.astype(dtype)
    def backward(ctx, gy, y): return Cast.apply(gy, dtype=ctx.inputs[0].dtype)


def cast(x, dtype):
    dtype = np.dtype(dtype)
    if x.dtype == dtype:
        return x
    if dtype.kind != "f":  # integers and bools carry no gradient, so nothing is recorded
        return Tensor._wrap(array_call(_astype, x.data, dtype=dtype))
    return Cast.apply(x, dtype=dtype)


def _astype(x, dtype):
    return x.astype(dtype)
