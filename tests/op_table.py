"""The op table: every op once, tested on every device.

One row per op (PyTorch calls such a row an OpInfo): an id, the function of Tensors, its NumPy
reference, a Hypothesis strategy for its inputs, and the tolerance class of the GPU comparison.
Two test files read it:

* ``tests/core/test_ops_forward_backward.py`` (CPU, float64): the forward pass against the NumPy
  reference, ``tg.gradcheck`` of every input that requires grad, ``tg.gradgradcheck``;
* ``tests/gpu/test_gpu_ops.py`` (float32): the same cases on the GPU against the CPU, forward
  and gradients, and every result still a CuPy array.

So a row added here is tested on both devices. ``fn(*tensors, **params)`` and
``ref(*arrays, **params)`` take the drawn :class:`Case`; an output that is not floating point
(comparisons, argmax) is compared exactly and must not record a graph. ``cases(size)`` gives
the strategy: "small" for gradcheck (at most 27 elements: it perturbs each one), "tiny" for
gradgradcheck, "gpu" for the GPU comparison (as small, but images large enough that the CUDA
kernels launch several thread blocks).

Values come from domains where the op is smooth (``tinygrad_edu.testing.strategies``): positive
for log, away from 0 for abs, no ties for max, ... so that a check never fails by chance.
"""
import operator
from functools import partial
from typing import Callable, NamedTuple

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_edu as tg
import tinygrad_edu.nn.functional as F
from tinygrad_edu.testing import strategies as tst

from refs import conv2d as conv2d_ref, log_softmax as log_softmax_ref, pool2d as pool_ref
from refs import reduce as reduce_ref

# GPU against CPU in float32 (one float32 ulp is ~1.2e-7 relative):
# ELEMENTWISE: one function per element; CUDA's exp, log, tanh and pow differ from the CPU's by
#   a few ulps, and a gradient chains two or three of them.
# SUMMED: anything that adds float32 terms (reductions, matmul, convolution, pooling and loss
#   gradients, the gradient of a broadcast or repeated input): cuBLAS, CuPy's reductions and our
#   CUDA kernels add in another order than NumPy and Numba. Inputs are O(1), sums are short.
# EXACT: outputs that are not floats (comparisons, argmax): equal, not close.
ELEMENTWISE = dict(rtol=1e-5, atol=1e-6)
SUMMED = dict(rtol=1e-4, atol=1e-5)
EXACT = dict(rtol=0, atol=0)

SIZES = {"small": dict(max_dims=3, max_side=3), "tiny": dict(max_dims=2, max_side=2),
         "gpu": dict(max_dims=3, max_side=3)}
IMAGES = {"small": 5, "tiny": 4, "gpu": 10}  # the largest height and width of an image
CLIP_AWAY = [(-3, -1.1), (-0.9, 0.9), (1.1, 3)]  # no value within 0.1 of clip's bounds -1, 1
# which operands require grad: both, or only one (the other one's gradient must be skipped)
GRAD_FLAGS = st.sampled_from([(True, True), (True, False), (False, True)])
KEYWORDS = st.sampled_from([("axis", "keepdims"), ("dim", "keepdim")])  # NumPy's, PyTorch's


class Case(NamedTuple):
    """One drawn input: arrays (float64 unless bool or int), which of them require grad, and
    the keyword arguments of ``fn`` and ``ref``."""
    arrays: tuple
    requires_grad: tuple
    params: dict


class OpInfo(NamedTuple):
    id: str
    fn: Callable
    ref: Callable
    cases: Callable  # size -> strategy of Case
    tol: dict
    gradgrad: bool = True  # gradgradcheck on the CPU


def sigmoid_ref(x):
    return np.exp(-np.logaddexp(0, -x))


# ---- strategies of cases: each builder returns size -> strategy --------------------------------
def shapes(size, **kw):
    return tst.shapes(**{**SIZES[size], **kw})


@st.composite
def values(draw, shapes, domains):
    """One float64 array per shape, values from its domain; the "distinct" ones are drawn
    together, so no two values tie even across arrays (maximum(a, b) needs that)."""
    distinct = [s for s, d in zip(shapes, domains) if d == "distinct"]
    separated = iter(draw(tst.separated_arrays(distinct)) if distinct else ())
    return tuple(next(separated) if d == "distinct" else draw(tst.arrays(s, domain=d))
                 for s, d in zip(shapes, domains))


def fixed(*inputs):
    """Inputs of fixed shapes, given as (shape, domain) pairs, all requiring grad."""
    shapes_, domains = zip(*inputs)
    return lambda size: values(shapes_, domains).map(lambda a: Case(a, (True,) * len(a), {}))


def unary(domain):
    @st.composite
    def cases(draw, size):
        return Case(draw(values([draw(shapes(size))], [domain])), (True,), {})
    return cases


def with_scalar(x_domain, c_domain):
    @st.composite
    def cases(draw, size):
        x = draw(values([draw(shapes(size))], [x_domain]))
        return Case(x, (True,), {"c": draw(tst.scalars(c_domain))})
    return cases


@st.composite
def with_distinct_scalar(draw, size):
    """x and a Python float c from one grid, so no element of x ties with c."""
    x, c = draw(values([draw(shapes(size)), ()], ["distinct"] * 2))
    return Case((x,), (True,), {"c": float(c)})


def binary(domain_a, domain_b):
    @st.composite
    def cases(draw, size):
        pair = draw(tst.broadcastable_shapes(2, **SIZES[size]))
        return Case(draw(values(pair, [domain_a, domain_b])), draw(GRAD_FLAGS), {})
    return cases


@st.composite
def where_cases(draw, size, scalar_b=False):
    shape_c, shape_a, shape_b = draw(tst.broadcastable_shapes(3, **SIZES[size]))
    cond = draw(hnp.arrays(np.bool_, shape_c))
    if scalar_b:
        return Case((cond,) + draw(values([shape_a], ["real"])), (False, True), {})
    return Case((cond,) + draw(values([shape_a, shape_b], ["real"] * 2)),
                (False,) + draw(GRAD_FLAGS), {})


GRID = st.sampled_from([-1.0, 0.0, 0.5, 2.0])  # few values: ties, which <= and == must see


@st.composite
def comparison_cases(draw, size, scalar=False):
    if scalar:
        a = draw(hnp.arrays(np.float64, draw(shapes(size)), elements=GRID))
        return Case((a,), (True,), {"c": draw(GRID)})
    pair = draw(tst.broadcastable_shapes(2, **SIZES[size]))
    return Case(tuple(draw(hnp.arrays(np.float64, s, elements=GRID)) for s in pair),
                (True, True), {})


@st.composite
def axes(draw, ndim):
    """None, one axis or a tuple of distinct axes, any of them negative."""
    if ndim == 0:
        return None
    one = st.integers(-ndim, ndim - 1)
    many = st.lists(one, min_size=1, max_size=ndim, unique_by=lambda a: a % ndim).map(tuple)
    return draw(st.none() | one | many)


def reduction(domain, min_side=1, one_axis=False, spellings=KEYWORDS):
    """An axis (None, an int or a tuple; one int or None with ``one_axis``), keepdims, and the
    keyword spelling (axis/keepdims or dim/keepdim)."""
    @st.composite
    def cases(draw, size):
        shape = draw(shapes(size, min_dims=1 if min_side > 1 else 0, min_side=min_side))
        (x,) = draw(values([shape], [domain]))
        if one_axis:
            axis = draw(st.none() | st.integers(-x.ndim, x.ndim - 1)) if x.ndim else None
        else:
            axis = draw(axes(x.ndim))
        return Case((x,), (True,), {"axis": axis, "keep": draw(st.booleans()),
                                    "spelling": draw(spellings)})
    return cases


def reduce_op(tg_fn, np_fn):
    """(fn, ref) of a reduction called with the drawn spelling of its keywords."""
    return (lambda t, axis, keep, spelling: tg_fn(t, **{spelling[0]: axis, spelling[1]: keep}),
            lambda a, axis, keep, spelling: np_fn(a, axis=axis, keepdims=keep))


@st.composite
def along_dim(draw, size):
    """PyTorch's x.max(dim, keepdim): one dim (0 and -1 for a 0-d tensor too)."""
    (x,) = draw(values([draw(shapes(size))], ["distinct"]))
    dim = draw(st.integers(-max(x.ndim, 1), max(x.ndim, 1) - 1))
    return Case((x,), (True,), {"dim": dim, "keep": draw(st.booleans())})


def along_dim_ref(np_fn):
    return lambda a, dim, keep: a.copy() if a.ndim == 0 else np_fn(a, axis=dim, keepdims=keep)


def movement(draw_params, min_dims=0, max_side=3):
    """One real array and parameters drawn from its shape: ``draw_params(draw, shape)``."""
    @st.composite
    def cases(draw, size):
        side = min(max_side, SIZES[size]["max_side"])
        (x,) = draw(values([draw(shapes(size, min_dims=min_dims, max_side=side))], ["real"]))
        return Case((x,), (True,), draw_params(draw, x.shape))
    return cases


def _reshape_target(draw, shape):
    n = int(np.prod(shape))
    return {"shape": draw(st.sampled_from([(-1,), shape[::-1], (1,) + shape, (n, 1)]))}


def _two_dims(draw, shape):
    axis = st.integers(-len(shape), len(shape) - 1)
    return {"dim0": draw(axis), "dim1": draw(axis)}


def _broadcast_target(draw, shape):
    other = draw(hnp.broadcastable_shapes(shape, max_dims=4, max_side=3))
    return {"target": np.broadcast_shapes(shape, other)}


def _no_params(draw, shape):
    return {}


def _squeeze_dim(draw, shape):
    return {"d": draw(st.integers(-len(shape), len(shape) - 1))}


def _unsqueeze_dim(draw, shape):
    return {"d": draw(st.integers(-len(shape) - 1, len(shape)))}


def _basic_index(draw, shape):
    return {"index": draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))}


def _integer_arrays(draw, shape):
    return {"index": draw(hnp.integer_array_indices(shape, result_shape=tst.shapes(max_dims=2)))}


def _bool_mask(draw, shape):
    return {"mask": draw(hnp.arrays(np.bool_, shape))}


def _permutation(draw, shape):
    order = draw(st.permutations(range(len(shape))))
    negative = draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
    return {"order": order, "dims": [d - len(shape) if n else d for d, n in zip(order, negative)]}


def _flatten_range(draw, shape):
    start = draw(st.integers(0, len(shape) - 1))
    end = draw(st.integers(start, len(shape) - 1))
    return {"start": start, "end": end, "spelled": draw(st.sampled_from([end, end - len(shape)]))}


def _pad(draw, shape):
    n_axes = draw(st.integers(1, len(shape)))
    pad = draw(st.lists(st.integers(0, 2), min_size=2 * n_axes, max_size=2 * n_axes))
    pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]  # last axis first
    return {"pad": pad, "value": draw(tst.scalars()),
            "width": [(0, 0)] * (len(shape) - n_axes) + pairs[::-1]}


@st.composite
def concat_cases(draw, size):
    """Two or three arrays that agree except along ``axis``; the first one is a constant."""
    shape = draw(shapes(size, min_dims=1))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    sizes = draw(st.lists(st.integers(1, 3), min_size=2, max_size=3))
    ax = axis % len(shape)
    xs = draw(values([shape[:ax] + (n,) + shape[ax + 1:] for n in sizes], ["real"] * len(sizes)))
    return Case(xs, (False,) + (True,) * (len(xs) - 1), {"axis": axis})


@st.composite
def stack_cases(draw, size):
    shape, n = draw(shapes(size)), draw(st.integers(1, 3))
    axis = draw(st.integers(-len(shape) - 1, len(shape)))
    return Case(draw(values([shape] * n, ["real"] * n)), (True,) * n, {"axis": axis})


@st.composite
def matmul_cases(draw, size):
    pair = draw(tst.matmul_shapes(max_side=SIZES[size]["max_side"]))
    return Case(draw(values(pair, ["real"] * 2)), draw(GRAD_FLAGS), {})


@st.composite
def square(draw, size):
    n = draw(st.integers(1, SIZES[size]["max_side"]))
    return Case(draw(values([(n, n)], ["real"])), (True,), {})


R = "real"
# ---- the core ops -------------------------------------------------------------------------------
OPS = [
    # elementwise, one input
    OpInfo("neg", lambda x: -x, np.negative, unary(R), ELEMENTWISE),
    OpInfo("tg.neg", tg.neg, np.negative, unary(R), ELEMENTWISE),
    OpInfo("exp", lambda x: x.exp(), np.exp, unary("bounded_exp"), ELEMENTWISE),
    OpInfo("log", lambda x: x.log(), np.log, unary("positive"), ELEMENTWISE),
    OpInfo("sqrt", tg.sqrt, np.sqrt, unary("positive"), ELEMENTWISE),
    OpInfo("abs", lambda x: x.abs(), np.abs, unary("nonzero"), ELEMENTWISE),
    OpInfo("tanh", tg.tanh, np.tanh, unary(R), ELEMENTWISE),
    OpInfo("sigmoid", lambda x: x.sigmoid(), sigmoid_ref, unary(R), ELEMENTWISE),
    OpInfo("relu", lambda x: x.relu(), lambda x: np.maximum(x, 0), unary("nonzero"), ELEMENTWISE),
    OpInfo("clip", lambda x: x.clip(-1, 1), lambda x: np.clip(x, -1, 1), unary(CLIP_AWAY),
           ELEMENTWISE),
    OpInfo("clamp min only", lambda x: x.clamp(min=-1), lambda x: np.maximum(x, -1),
           unary(CLIP_AWAY), ELEMENTWISE),
    OpInfo("tg.clip max only", lambda x: tg.clip(x, max=1), lambda x: np.minimum(x, 1),
           unary(CLIP_AWAY), ELEMENTWISE),
    OpInfo("x ** 3", lambda x: x ** 3, lambda x: x ** 3, unary(R), ELEMENTWISE),
    OpInfo("x ** -1.5", lambda x: x ** -1.5, lambda x: x ** -1.5, unary("positive"), ELEMENTWISE),
    OpInfo("scalars chained", lambda x: (2.5 * x - 1.0) / 3.0 + x ** 2,
           lambda x: (2.5 * x - 1.0) / 3.0 + x ** 2, unary(R), ELEMENTWISE),
    # float64 throughout on the CPU (gradcheck needs it): there the casts are identities; on the
    # GPU (float32) this casts up and back, and the gradient is cast down and up
    OpInfo("cast up, exp, cast back", lambda x: x.double().exp().astype(x.dtype), np.exp,
           unary("bounded_exp"), ELEMENTWISE),
]
# (x, c) -> the op with a Python float c, in both orders; the lambdas are their own reference
for _id, _f, _dx, _dc in [
        ("x + c", lambda x, c: x + c, R, R), ("c + x", lambda x, c: c + x, R, R),
        ("x - c", lambda x, c: x - c, R, R), ("c - x", lambda x, c: c - x, R, R),
        ("x * c", lambda x, c: x * c, R, R), ("c * x", lambda x, c: c * x, R, R),
        ("x / c", lambda x, c: x / c, R, "nonzero"), ("c / x", lambda x, c: c / x, "nonzero", R),
        ("x ** c", lambda x, c: x ** c, "positive", R),
        ("c ** x", lambda x, c: c ** x, R, "positive")]:
    OPS.append(OpInfo(_id, _f, _f, with_scalar(_dx, _dc), ELEMENTWISE))

BROADCAST = SUMMED  # the gradient of a broadcast input is a sum
OPS += [
    OpInfo("a + b", operator.add, np.add, binary(R, R), BROADCAST),
    OpInfo("tg.add", tg.add, np.add, binary(R, R), BROADCAST),
    OpInfo("a - b", operator.sub, np.subtract, binary(R, R), BROADCAST),
    OpInfo("tg.sub", tg.sub, np.subtract, binary(R, R), BROADCAST),
    OpInfo("a * b", operator.mul, np.multiply, binary(R, R), BROADCAST),
    OpInfo("tg.mul", tg.mul, np.multiply, binary(R, R), BROADCAST),
    OpInfo("a / b", operator.truediv, np.divide, binary(R, "nonzero"), BROADCAST),
    OpInfo("tg.div", tg.div, np.divide, binary(R, "nonzero"), BROADCAST),
    OpInfo("a ** b", operator.pow, np.power, binary("positive", R), BROADCAST),
    OpInfo("tg.pow", tg.pow, np.power, binary("positive", R), BROADCAST),
    OpInfo("maximum", tg.maximum, np.maximum, binary("distinct", "distinct"), BROADCAST),
    OpInfo("a.minimum(b)", lambda a, b: a.minimum(b), np.minimum, binary("distinct", "distinct"),
           BROADCAST),
    OpInfo("maximum(x, c)", lambda x, c: tg.maximum(x, c), lambda a, c: np.maximum(a, c),
           with_distinct_scalar, ELEMENTWISE),
    OpInfo("minimum(c, x)", lambda x, c: tg.minimum(c, x), lambda a, c: np.minimum(c, a),
           with_distinct_scalar, ELEMENTWISE),
    OpInfo("where", tg.where, np.where, where_cases, BROADCAST),
    OpInfo("where(cond, x, 0.5)", lambda c, x: tg.where(c, x, 0.5),
           lambda c, a: np.where(c, a, 0.5), partial(where_cases, scalar_b=True), BROADCAST),
    OpInfo("where(a > b, a, 2 b)", lambda a, b: tg.where(a > b, a, b * 2),
           lambda a, b: np.where(a > b, a, b * 2), binary("distinct", "distinct"), BROADCAST),
]
for _id, _op in [("a < b", operator.lt), ("a <= b", operator.le), ("a > b", operator.gt),
                 ("a >= b", operator.ge), ("a == b", operator.eq), ("a != b", operator.ne)]:
    OPS.append(OpInfo(_id, _op, _op, comparison_cases, EXACT))
OPS.append(OpInfo("x > c", lambda x, c: x > c, lambda a, c: a > c,
                  partial(comparison_cases, scalar=True), EXACT))

# reductions (var needs n > 1 along every reduced axis)
OPS += [
    OpInfo("sum", *reduce_op(tg.sum, np.sum), reduction(R), SUMMED),
    OpInfo("mean", *reduce_op(tg.mean, np.mean), reduction(R), SUMMED),
    OpInfo("amax", *reduce_op(tg.amax, np.max), reduction("distinct"), SUMMED),
    OpInfo("amin", *reduce_op(tg.amin, np.min), reduction("distinct"), SUMMED),
    OpInfo("var", *reduce_op(tg.var, partial(np.var, ddof=1)), reduction(R, min_side=2), SUMMED),
    OpInfo("var(correction=0)", *reduce_op(partial(tg.var, correction=0), np.var),
           reduction(R, min_side=2), SUMMED),
    # x.max(dim=...) returns (values, indices), so the method takes axis= for the values only
    OpInfo("x.max(axis=)", *reduce_op(tg.Tensor.max, np.max),
           reduction("distinct", spellings=st.just(("axis", "keepdims"))), SUMMED),
    OpInfo("x.min(axis=)", *reduce_op(tg.Tensor.min, np.min),
           reduction("distinct", spellings=st.just(("axis", "keepdims"))), SUMMED),
    OpInfo("x.max(dim).values", lambda t, dim, keep: t.max(dim, keep).values,
           along_dim_ref(np.max), along_dim, SUMMED),
    OpInfo("x.min(dim).values", lambda t, dim, keep: t.min(dim, keepdim=keep).values,
           along_dim_ref(np.min), along_dim, SUMMED),
    OpInfo("x.max(dim).indices", lambda t, dim, keep: t.max(dim, keep).indices,
           lambda a, dim, keep: np.int64(0) if a.ndim == 0 else np.argmax(a, dim, keepdims=keep),
           along_dim, EXACT),
    OpInfo("argmax", *reduce_op(tg.Tensor.argmax, np.argmax),
           reduction("distinct", one_axis=True), EXACT),
    OpInfo("argmin", *reduce_op(tg.Tensor.argmin, np.argmin),
           reduction("distinct", one_axis=True), EXACT),
]


OPS += [
    OpInfo("reshape", lambda t, shape: t.reshape(*shape), lambda a, shape: a.reshape(shape),
           movement(_reshape_target), ELEMENTWISE),
    OpInfo("tg.reshape of a strided view", lambda t, shape: tg.reshape(t.T, shape),
           lambda a, shape: a.T.reshape(shape), movement(_reshape_target), ELEMENTWISE),
    OpInfo("transpose", lambda t, dim0, dim1: t.transpose(dim0, dim1),
           lambda a, dim0, dim1: np.swapaxes(a, dim0, dim1), movement(_two_dims, min_dims=1),
           ELEMENTWISE),
    OpInfo("T", lambda t: t.T, lambda a: a.T, movement(_no_params), ELEMENTWISE),  # as NumPy's
    OpInfo("mT", lambda t: t.mT, lambda a: np.swapaxes(a, -1, -2),
           movement(_no_params, min_dims=2), ELEMENTWISE),
    OpInfo("transpose(0, 1) + T", lambda t: t.transpose(0, 1) + t.T,
           lambda a: np.swapaxes(a, 0, 1) + a.T, square,
           ELEMENTWISE),
    OpInfo("permute", lambda t, dims, order: t.permute(*dims),
           lambda a, dims, order: np.transpose(a, order), movement(_permutation), ELEMENTWISE),
    OpInfo("tg.permute", lambda t, dims, order: tg.permute(t, dims),
           lambda a, dims, order: np.transpose(a, order), movement(_permutation), ELEMENTWISE),
    OpInfo("flatten", lambda t, start, end, spelled: t.flatten(start, spelled),
           lambda a, start, end, spelled: a.reshape(a.shape[:start] + (-1,) + a.shape[end + 1:]),
           movement(_flatten_range, min_dims=1), ELEMENTWISE),
    OpInfo("unsqueeze, flatten, squeeze", lambda t: t.unsqueeze(0).flatten(1).squeeze(0),
           lambda a: a.reshape(-1), movement(_no_params, min_dims=1), ELEMENTWISE),
    OpInfo("expand", lambda t, target: t.expand(*target),
           lambda a, target: np.broadcast_to(a, target), movement(_broadcast_target), SUMMED),
    OpInfo("tg.broadcast_to", lambda t, target: tg.broadcast_to(t, target),
           lambda a, target: np.broadcast_to(a, target), movement(_broadcast_target), SUMMED),
    OpInfo("squeeze()", lambda t: t.squeeze(), np.squeeze, movement(_no_params, max_side=2),
           ELEMENTWISE),  # many size-1 axes
    # PyTorch's rule: squeeze(d) of an axis that is not of size 1 leaves the tensor as it is
    OpInfo("squeeze(d)", lambda t, d: t.squeeze(d),
           lambda a, d: np.squeeze(a, d) if a.shape[d] == 1 else a,
           movement(_squeeze_dim, min_dims=1, max_side=2), ELEMENTWISE),
    OpInfo("unsqueeze(d)", lambda t, d: t.unsqueeze(d), lambda a, d: np.expand_dims(a, d),
           movement(_unsqueeze_dim, max_side=2), ELEMENTWISE),
    # ints, slices with any step (negative too), None and Ellipsis
    OpInfo("x[basic index]", lambda t, index: t[index], lambda a, index: a[index],
           movement(_basic_index), ELEMENTWISE),
    # integer array indices repeat elements, whose gradients must then add up
    OpInfo("x[integer arrays]", lambda t, index: t[index], lambda a, index: a[index],
           movement(_integer_arrays, min_dims=1), SUMMED),
    OpInfo("x[[0, 2, 0, 0]]", lambda t: t[[0, 2, 0, 0]], lambda a: a[[0, 2, 0, 0]],
           fixed(((3, 4), R)), SUMMED),  # np.add.at / cupy.add.at in backward
    OpInfo("x[bool mask]", lambda t, mask: t[mask], lambda a, mask: a[mask],
           movement(_bool_mask, min_dims=1), ELEMENTWISE),
    OpInfo("x[bool Tensor]", lambda t, mask: t[tg.Tensor(mask[..., 0], device=t.device)],
           lambda a, mask: a[mask[..., 0]], movement(_bool_mask, min_dims=1), ELEMENTWISE),
    OpInfo("x[x > 0]", lambda t: t[t.detach() > 0], lambda a: a[a > 0], unary("nonzero"),
           ELEMENTWISE),
    OpInfo("cat", lambda *ts, axis: tg.cat(ts, axis),
           lambda *a, axis: np.concatenate(a, axis), concat_cases, ELEMENTWISE),
    OpInfo("concatenate(dim=)", lambda *ts, axis: tg.concatenate(ts, dim=axis),
           lambda *a, axis: np.concatenate(a, axis), concat_cases, ELEMENTWISE),
    OpInfo("stack", lambda *ts, axis: tg.stack(ts, axis), lambda *a, axis: np.stack(a, axis),
           stack_cases, ELEMENTWISE),
    # PyTorch's pad: (left, right) pairs from the last axis
    OpInfo("pad", lambda t, pad, value, width: t.pad(pad, value),
           lambda a, pad, value, width: np.pad(a, width, constant_values=value),
           movement(_pad, min_dims=1), ELEMENTWISE),
    # linear algebra: 1-D, 2-D and batched operands
    OpInfo("a @ b", operator.matmul, np.matmul, matmul_cases, SUMMED),
    OpInfo("tg.matmul", tg.matmul, np.matmul, matmul_cases, SUMMED),
    OpInfo("a @ b, 5x7 @ 7x3", operator.matmul, np.matmul, fixed(((5, 7), R), ((7, 3), R)),
           SUMMED),
    OpInfo("a @ b, batch of 2 @ 2-D", operator.matmul, np.matmul,
           fixed(((2, 5, 7), R), ((7, 3), R)), SUMMED),
    OpInfo("(v @ M) @ v", lambda v, m: (v @ m) @ v, lambda v, m: (v @ m) @ v,
           fixed(((7,), R), ((7, 7), R)), SUMMED),
]


# ---- nn.functional -----------------------------------------------------------------------------
# tests/nn/test_functional_grad.py checks these functions in depth on the CPU (errors, running
# statistics, stability, second derivatives); the table gives both devices the same cases.
def cross_entropy_ref(z, labels, reduction, scale=1.0):
    return reduce_ref(-log_softmax_ref(z * scale, 1)[np.arange(len(labels)), labels], reduction)


def bce_ref(p, t, reduction):
    return reduce_ref(-(t * np.log(p) + (1 - t) * np.log(1 - p)), reduction)


def batch_norm_ref(x, w, b):
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    bshape = (1, -1) + (1,) * (x.ndim - 2)
    mean, var = x.mean(axis=axes).reshape(bshape), x.var(axis=axes).reshape(bshape)
    return (x - mean) / np.sqrt(var + 1e-5) * w.reshape(bshape) + b.reshape(bshape)


REDUCTIONS = st.sampled_from(["mean", "sum", "none"])
PROBABILITY, TARGET = st.floats(0.05, 0.95), st.floats(0, 1)  # the clamp inside bce is inactive


@st.composite
def linear_cases(draw, size):
    lead = draw(tst.shapes(max_dims=2, max_side=3))
    n_in, n_out = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    shapes_ = [lead + (n_in,), (n_out, n_in)] + ([(n_out,)] if draw(st.booleans()) else [])
    return Case(draw(values(shapes_, ["real"] * len(shapes_))), (True,) * len(shapes_), {})


@st.composite
def conv_cases(draw, size):
    """Valid conv2d arguments: non-square kernels, per-axis stride and padding, bias or not."""
    n, c, f = (draw(st.integers(1, 2)) for _ in range(3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    padding = draw(st.integers(0, 1)), draw(st.integers(0, 1))
    h = draw(st.integers(max(kh - 2 * padding[0], 1), IMAGES[size]))  # the kernel fits
    w = draw(st.integers(max(kw - 2 * padding[1], 1), IMAGES[size]))
    shapes_ = [(n, c, h, w), (f, c, kh, kw)] + ([(f,)] if draw(st.booleans()) else [])
    return Case(draw(values(shapes_, ["real"] * len(shapes_))), (True,) * len(shapes_),
                {"stride": stride, "padding": padding})


def pool_cases(domain, avg=False):
    @st.composite
    def cases(draw, size):
        k, s = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        p = draw(st.integers(0, k // 2))  # PyTorch's (and our) limit: at most half the kernel
        h, w = (draw(st.integers(max(k - 2 * p, 1), IMAGES[size])) for _ in range(2))
        shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), h, w)
        params = {"k": k, "s": s, "p": p, "ceil_mode": draw(st.booleans())}
        if avg:
            params["count_include_pad"] = draw(st.booleans())
        return Case(draw(values([shape], [domain])), (True,), params)
    return cases


def adaptive_pool_ref(x, output_size, reduce):
    """Adaptive max or mean pooling ("max", "avg") of (N, C, H, W) or (C, H, W), one output
    cell at a time: cell i along an axis of size H covers rows floor(i*H/O) to ceil((i+1)*H/O)
    (exclusive); None in output_size keeps that size."""
    h, w = x.shape[-2:]
    pair = output_size if isinstance(output_size, tuple) else (output_size, output_size)
    oh, ow = (size if o is None else o for size, o in zip((h, w), pair))
    out = np.zeros(x.shape[:-2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = x[..., i * h // oh:-(-(i + 1) * h // oh), j * w // ow:-(-(j + 1) * w // ow)]
            out[..., i, j] = win.max(axis=(-2, -1)) if reduce == "max" else win.mean(axis=(-2, -1))
    return out


def adaptive_pool_cases(domain):
    """(N, C, H, W) or (C, H, W) inputs and output sizes that divide H, W (the fast path), do
    not (overlapping windows) or exceed them, or None (keep the input size)."""
    @st.composite
    def cases(draw, size):
        h, w = (draw(st.integers(1, IMAGES[size])) for _ in range(2))
        shape = tuple(draw(st.lists(st.integers(1, 2), min_size=1, max_size=2))) + (h, w)
        sizes = st.integers(1, IMAGES[size] + 1)
        out = draw(sizes | st.tuples(sizes | st.none(), sizes | st.none()))
        return Case(draw(values([shape], [domain])), (True,), {"output_size": out})
    return cases


@st.composite
def classification(draw, size, reductions=REDUCTIONS):
    """Logits (N, K) and integer labels (N,) in [0, K)."""
    n, k = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    labels = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1)))
    return Case(draw(values([(n, k)], ["real"])) + (labels,), (True, False),
                {"reduction": draw(reductions)})


@st.composite
def softmax_cases(draw, size):
    (x,) = draw(values([draw(tst.shapes(min_dims=1, max_dims=3, max_side=4))], ["real"]))
    return Case((x,), (True,), {"dim": draw(st.integers(-x.ndim, x.ndim - 1))})


def pair_of_losses(p_elements, t_elements):
    @st.composite
    def cases(draw, size):
        shape = draw(tst.shapes(min_dims=1, max_dims=2, max_side=4))
        arrays = tuple(draw(tst.arrays(shape, elements=e)) for e in (p_elements, t_elements))
        return Case(arrays, (True, True), {"reduction": draw(REDUCTIONS)})
    return cases


@st.composite
def batch_norm_cases(draw, size):
    shape = draw(st.sampled_from([(2, 1), (4, 3), (3, 2, 2, 2), (2, 3, 1, 2), (1, 2, 2, 1)]))
    c = shape[1]  # distinct x: no channel of zero variance
    return Case(draw(values([shape, (c,), (c,)], ["distinct", "real", "real"])),
                (True,) * 3, {})


@st.composite
def flatten_linear_cases(draw, size):
    x = tuple(draw(st.integers(1, 3)) for _ in range(4))
    w = (draw(st.integers(1, 3)), x[1] * x[2] * x[3])
    return Case(draw(values([x, w], ["real"] * 2)), (True, True), {})


def _conv(*ts, stride, padding): return F.conv2d(*ts, stride=stride, padding=padding)


def _conv_ref(x, w, b=None, *, stride, padding):
    return conv2d_ref(x, w, b, stride, padding)


NN_OPS = [
    OpInfo("linear", F.linear, lambda x, w, b=0: x @ w.T + b, linear_cases, SUMMED, False),
    OpInfo("conv2d", _conv, _conv_ref, conv_cases, SUMMED, False),
    OpInfo("max_pool2d", lambda x, k, s, p, ceil_mode: F.max_pool2d(x, k, s, p, ceil_mode),
           lambda x, k, s, p, ceil_mode: pool_ref(x, k, s, p, ceil_mode, "max"),
           pool_cases("distinct"), SUMMED, False),  # tie-free: the argmax is unique
    OpInfo("avg_pool2d", lambda x, k, s, p, ceil_mode, count_include_pad:
           F.avg_pool2d(x, k, s, p, ceil_mode, count_include_pad),
           lambda x, k, s, p, ceil_mode, count_include_pad:
           pool_ref(x, k, s, p, ceil_mode, "avg", count_include_pad),
           pool_cases("real", avg=True), SUMMED, False),
    OpInfo("adaptive_avg_pool2d", F.adaptive_avg_pool2d, partial(adaptive_pool_ref, reduce="avg"),
           adaptive_pool_cases("real"), SUMMED, False),
    OpInfo("adaptive_max_pool2d", F.adaptive_max_pool2d, partial(adaptive_pool_ref, reduce="max"),
           adaptive_pool_cases("distinct"), SUMMED, False),  # tie-free: the argmax is unique
    OpInfo("cross_entropy", F.cross_entropy, cross_entropy_ref, classification, SUMMED, False),
    # logits of up to 90: the fused kernel's max shift must hold
    OpInfo("cross_entropy(30 z)", lambda z, labels, reduction:
           F.cross_entropy(z * 30, labels, reduction), partial(cross_entropy_ref, scale=30.0),
           classification, SUMMED, False),
    OpInfo("nll_loss(log_softmax)", lambda z, labels, reduction:
           F.nll_loss(F.log_softmax(z, 1), labels, reduction), cross_entropy_ref, classification,
           SUMMED, False),
    OpInfo("softmax", lambda x, dim: F.softmax(x, dim),
           lambda x, dim: np.exp(log_softmax_ref(x, dim)), softmax_cases, SUMMED, False),
    OpInfo("log_softmax", lambda x, dim: F.log_softmax(x, dim),
           lambda x, dim: log_softmax_ref(x, dim), softmax_cases, SUMMED, False),
    OpInfo("mse_loss", F.mse_loss, lambda a, b, reduction: reduce_ref((a - b) ** 2, reduction),
           pair_of_losses(st.floats(-3, 3), st.floats(-3, 3)), SUMMED, False),
    OpInfo("binary_cross_entropy", F.binary_cross_entropy, bce_ref,
           pair_of_losses(PROBABILITY, TARGET), SUMMED, False),
    OpInfo("binary_cross_entropy_with_logits", F.binary_cross_entropy_with_logits,
           lambda z, t, reduction: bce_ref(sigmoid_ref(z), t, reduction),
           pair_of_losses(st.floats(-4, 4), TARGET), SUMMED, False),
    OpInfo("batch_norm(training=True)", lambda x, w, b:
           F.batch_norm(x, None, None, w, b, training=True), batch_norm_ref, batch_norm_cases,
           SUMMED, False),
    OpInfo("linear(flatten(x, 1))", lambda x, w: F.linear(F.flatten(x, 1), w),
           lambda x, w: x.reshape(len(x), -1) @ w.T, flatten_linear_cases, SUMMED, False),
]


def ids(rows):
    return [row.id for row in rows]
