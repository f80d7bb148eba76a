"""The ops, and the binding of them to Tensor methods and Python operators.

Each op lives in the module of its kind (elementwise, reduce, movement, linalg); this file only
makes ``a + b``, ``x.sum()``, ``x.T`` etc. call them.
"""
from ..tensor import Tensor
from .broadcast import broadcast_to, sum_to
from .elementwise import (abs, add, cast, clip, div, eq, exp, ge, gt, le, log, lt, maximum,
                          minimum, mul, ne, neg, pow, relu, sigmoid, sqrt, sub, tanh, where)
from .linalg import dot, matmul
from .movement import (cat, clone, contiguous, flatten, getitem, masked_fill, pad, permute,
                       reshape, squeeze, stack, to, transpose, unsqueeze)
from .reduce import ValuesIndices, amax, amin, argmax, argmin, max, mean, min, sum, var

expand = broadcast_to
concatenate = cat
clamp = clip


def _swap(fn):
    return lambda a, b: fn(b, a)


_methods = dict(
    __add__=add, __radd__=_swap(add), __sub__=sub, __rsub__=_swap(sub),
    __mul__=mul, __rmul__=_swap(mul), __truediv__=div, __rtruediv__=_swap(div),
    __pow__=pow, __rpow__=_swap(pow), __neg__=neg, __matmul__=matmul,
    __rmatmul__=_swap(matmul), __getitem__=getitem,
    __eq__=eq, __ne__=ne, __lt__=lt, __le__=le, __gt__=gt, __ge__=ge,
    add=add, sub=sub, mul=mul, div=div, pow=pow, neg=neg, matmul=matmul,
    exp=exp, log=log, sqrt=sqrt, abs=abs, tanh=tanh, sigmoid=sigmoid, relu=relu,
    maximum=maximum, minimum=minimum, clip=clip, clamp=clip,
    sum=sum, mean=mean, max=max, min=min, amax=amax, amin=amin, var=var, argmax=argmax,
    argmin=argmin, dot=dot, clone=clone, contiguous=contiguous, masked_fill=masked_fill,
    reshape=reshape, view=reshape, permute=permute, transpose=transpose, flatten=flatten,
    squeeze=squeeze, unsqueeze=unsqueeze, expand=broadcast_to, broadcast_to=broadcast_to,
    sum_to=sum_to, pad=pad, to=to, astype=cast,
    float=lambda x: cast(x, "float32"), double=lambda x: cast(x, "float64"),
    long=lambda x: cast(x, "int64"),
    T=property(lambda x: permute(x, *range(x.ndim - 1, -1, -1))),
    mT=property(lambda x: transpose(x, -2, -1)),
)


def _dlpack(x, **kwargs):
    """Export without a copy (``np.from_dlpack(t)``, ``torch.from_dlpack(t)``, CuPy)."""
    if x.requires_grad:
        raise RuntimeError("can't export a tensor that requires grad through DLPack; "
                           "use t.detach()")
    return x.data.__dlpack__(**kwargs)


# PyTorch's conveniences: x.size() is the shape and x.size(d) one extent
_methods.update(
    size=lambda x, dim=None: x.shape if dim is None else x.shape[dim],
    numel=lambda x: x.data.size, dim=lambda x: x.data.ndim, tolist=lambda x: x.numpy().tolist(),
    cpu=lambda x: to(x, "cpu"), cuda=lambda x: to(x, "cuda"),
    __dlpack__=_dlpack, __dlpack_device__=lambda x: x.data.__dlpack_device__(),
)
for _name, _fn in _methods.items():
    setattr(Tensor, _name, _fn)
