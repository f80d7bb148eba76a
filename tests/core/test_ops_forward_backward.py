"""Every op: forward against a NumPy reference, backward against central differences.

The ops are listed in tables, one row per op: (name, our op, NumPy reference, input domains).
Hypothesis draws the shapes, 0-d and broadcasting pairs included, and the values from a domain
where the op is smooth (positive for log, away from 0 for abs, no ties for max, ...), so that a
check never fails by chance. ``tg.gradcheck`` projects the output on a fixed random tensor, so
the upstream gradient is random too, not all ones.
"""
import operator
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_edu as tg
from tinygrad_edu.ops.elementwise import Tanh
from tinygrad_edu.testing import strategies as tst

SMALL = dict(max_dims=3, max_side=3)  # at most 27 elements: gradcheck perturbs each one
CLIP_AWAY = [(-3, -1.1), (-0.9, 0.9), (1.1, 3)]  # no value within 0.1 of clip's bounds -1, 1


def draw_inputs(data, shapes, domains, requires_grad=None):
    """One float64 tensor per shape, values from its domain; the "distinct" ones are drawn
    together, so no two values tie even across tensors (maximum(a, b) needs that)."""
    distinct = [s for s, d in zip(shapes, domains) if d == "distinct"]
    separated = iter(data.draw(tst.separated_arrays(distinct)) if distinct else ())
    arrays = [next(separated) if d == "distinct" else data.draw(tst.arrays(s, domain=d))
              for s, d in zip(shapes, domains)]
    flags = requires_grad or [True] * len(arrays)
    return [tg.Tensor(a, requires_grad=f) for a, f in zip(arrays, flags)]


def check(fn, ref, inputs):
    """The op's forward equals the NumPy reference; its backward passes gradcheck."""
    got = fn(*inputs)
    want = ref(*[x.numpy() if isinstance(x, tg.Tensor) else x for x in inputs])
    assert got.shape == np.shape(want)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-12)
    assert tg.gradcheck(fn, inputs)


def table(rows):
    return [pytest.param(*row[1:], id=row[0]) for row in rows]


def sigmoid_ref(x):
    return np.exp(-np.logaddexp(0, -x))


# ---- elementwise --------------------------------------------------------------------------------
UNARY = [
    ("neg", lambda x: -x, np.negative, "real"),
    ("tg.neg", tg.neg, np.negative, "real"),
    ("exp", lambda x: x.exp(), np.exp, "bounded_exp"),
    ("log", lambda x: x.log(), np.log, "positive"),
    ("sqrt", tg.sqrt, np.sqrt, "positive"),
    ("abs", lambda x: x.abs(), np.abs, "nonzero"),
    ("tanh", tg.tanh, np.tanh, "real"),
    ("sigmoid", lambda x: x.sigmoid(), sigmoid_ref, "real"),
    ("relu", lambda x: x.relu(), lambda x: np.maximum(x, 0), "nonzero"),
    ("clip", lambda x: x.clip(-1, 1), lambda x: np.clip(x, -1, 1), CLIP_AWAY),
    ("clamp min only", lambda x: x.clamp(min=-1), lambda x: np.maximum(x, -1), CLIP_AWAY),
    ("tg.clip max only", lambda x: tg.clip(x, max=1), lambda x: np.minimum(x, 1), CLIP_AWAY),
    ("x ** 3", lambda x: x ** 3, lambda x: x ** 3, "real"),
    ("x ** -1.5", lambda x: x ** -1.5, lambda x: x ** -1.5, "positive"),
]


@pytest.mark.parametrize("fn, ref, domain", table(UNARY))
@given(data=st.data())
def test_unary(fn, ref, domain, data):
    check(fn, ref, draw_inputs(data, [data.draw(tst.shapes(**SMALL))], [domain]))


# (x, c) -> the op with a Python float c, in both orders; the lambdas are their own reference
SCALAR = [
    ("x + c", lambda x, c: x + c, "real", "real"),
    ("c + x", lambda x, c: c + x, "real", "real"),
    ("x - c", lambda x, c: x - c, "real", "real"),
    ("c - x", lambda x, c: c - x, "real", "real"),
    ("x * c", lambda x, c: x * c, "real", "real"),
    ("c * x", lambda x, c: c * x, "real", "real"),
    ("x / c", lambda x, c: x / c, "real", "nonzero"),
    ("c / x", lambda x, c: c / x, "nonzero", "real"),
    ("x ** c", lambda x, c: x ** c, "positive", "real"),
    ("c ** x", lambda x, c: c ** x, "real", "positive"),
]


@pytest.mark.parametrize("fn, x_domain, c_domain", table(SCALAR))
@given(data=st.data())
def test_with_python_scalar(fn, x_domain, c_domain, data):
    (x,) = draw_inputs(data, [data.draw(tst.shapes(**SMALL))], [x_domain])
    c = data.draw(tst.scalars(c_domain))
    check(lambda t: fn(t, c), lambda a: fn(a, c), [x])


BINARY = [
    ("a + b", operator.add, np.add, "real", "real"),
    ("tg.add", tg.add, np.add, "real", "real"),
    ("a - b", operator.sub, np.subtract, "real", "real"),
    ("tg.sub", tg.sub, np.subtract, "real", "real"),
    ("a * b", operator.mul, np.multiply, "real", "real"),
    ("tg.mul", tg.mul, np.multiply, "real", "real"),
    ("a / b", operator.truediv, np.divide, "real", "nonzero"),
    ("tg.div", tg.div, np.divide, "real", "nonzero"),
    ("a ** b", operator.pow, np.power, "positive", "real"),
    ("tg.pow", tg.pow, np.power, "positive", "real"),
    ("maximum", tg.maximum, np.maximum, "distinct", "distinct"),
    ("a.minimum(b)", lambda a, b: a.minimum(b), np.minimum, "distinct", "distinct"),
]
# which operands require grad: both, or only one (the other one's gradient must be skipped)
GRAD_FLAGS = st.sampled_from([[True, True], [True, False], [False, True]])


@pytest.mark.parametrize("fn, ref, domain_a, domain_b", table(BINARY))
@given(data=st.data())
def test_binary_with_broadcasting(fn, ref, domain_a, domain_b, data):
    shapes = data.draw(tst.broadcastable_shapes(2, **SMALL))
    inputs = draw_inputs(data, shapes, [domain_a, domain_b], data.draw(GRAD_FLAGS))
    check(fn, ref, inputs)


@given(data=st.data())
def test_maximum_minimum_with_scalar(data):
    x, c = draw_inputs(data, [data.draw(tst.shapes(**SMALL)), ()], ["distinct"] * 2)
    c = float(c.data)  # from the same grid as x, so no element of x ties with it
    check(lambda t: tg.maximum(t, c), lambda a: np.maximum(a, c), [x])
    check(lambda t: tg.minimum(c, t), lambda a: np.minimum(c, a), [x])


@given(data=st.data())
def test_where(data):
    shape_c, shape_a, shape_b = data.draw(tst.broadcastable_shapes(3, **SMALL))
    cond = tg.Tensor(data.draw(hnp.arrays(np.bool_, shape_c)))
    a, b = draw_inputs(data, [shape_a, shape_b], ["real"] * 2, data.draw(GRAD_FLAGS))
    check(tg.where, np.where, [cond, a, b])
    a.requires_grad = True
    check(lambda c, t: tg.where(c, t, 0.5), lambda c, t: np.where(c, t, 0.5), [cond, a])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_stable_for_large_inputs(dtype):
    x = tg.Tensor(np.array([-1000, -30, -1, 0, 1, 30, 1000], dtype=dtype), requires_grad=True)
    with np.errstate(all="raise"):  # no overflow on the way, not even a hidden one
        y = x.sigmoid()
        y.sum().backward()
    want = sigmoid_ref(x.numpy().astype(np.float64))
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), want * (1 - want), rtol=1e-5, atol=1e-12)
    assert y.numpy()[0] == 0 and y.numpy()[-1] == 1


# ---- reductions ---------------------------------------------------------------------------------
@st.composite
def axes(draw, ndim):
    """None, one axis or a tuple of distinct axes, any of them negative."""
    if ndim == 0:
        return None
    one = st.integers(-ndim, ndim - 1)
    many = st.lists(one, min_size=1, max_size=ndim, unique_by=lambda a: a % ndim).map(tuple)
    return draw(st.none() | one | many)


AT_LEAST_TWO = tst.shapes(min_dims=1, max_dims=3, min_side=2, max_side=3)  # var needs n > 1
REDUCTIONS = [
    ("sum", tg.sum, np.sum, "real", tst.shapes(**SMALL)),
    ("mean", tg.mean, np.mean, "real", tst.shapes(**SMALL)),
    ("amax", tg.amax, np.max, "distinct", tst.shapes(**SMALL)),
    ("amin", tg.amin, np.min, "distinct", tst.shapes(**SMALL)),
    ("var", tg.var, partial(np.var, ddof=1), "real", AT_LEAST_TWO),
    ("var(correction=0)", partial(tg.var, correction=0), np.var, "real", AT_LEAST_TWO),
]
# NumPy's spelling of the keywords, and PyTorch's
KEYWORDS = st.sampled_from([("axis", "keepdims"), ("dim", "keepdim")])


@pytest.mark.parametrize("fn, ref, domain, shapes", table(REDUCTIONS))
@given(data=st.data())
def test_reduction(fn, ref, domain, shapes, data):
    (x,) = draw_inputs(data, [data.draw(shapes)], [domain])
    axis, keep = data.draw(axes(x.ndim)), data.draw(st.booleans())
    axis_kw, keep_kw = data.draw(KEYWORDS)
    check(lambda t: fn(t, **{axis_kw: axis, keep_kw: keep}),
          lambda a: ref(a, axis=axis, keepdims=keep), [x])


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@given(data=st.data())
def test_argmax_argmin_match_numpy_and_have_no_gradient(name, data):
    (x,) = draw_inputs(data, [data.draw(tst.shapes(**SMALL))], ["distinct"])
    axis = data.draw(st.none() | st.integers(-x.ndim, x.ndim - 1)) if x.ndim else None
    keep = data.draw(st.booleans())
    axis_kw, keep_kw = data.draw(KEYWORDS)
    got = getattr(x, name)(**{axis_kw: axis, keep_kw: keep})
    want = getattr(np, name)(x.numpy(), axis=axis, keepdims=keep)
    assert got.dtype == np.int64 and not got.requires_grad and got.grad_fn is None
    np.testing.assert_array_equal(got.numpy(), want)
    assert got.shape == np.shape(want)


# ---- movement -----------------------------------------------------------------------------------
def any_tensor(data, min_dims=0, max_side=3):
    return data.draw(tst.tensors(tst.shapes(min_dims=min_dims, max_dims=3, max_side=max_side)))


@given(data=st.data())
def test_reshape(data):
    x = any_tensor(data)
    new = data.draw(st.sampled_from([(-1,), x.shape[::-1], (1,) + x.shape, (x.numel(), 1)]))
    check(lambda t: t.reshape(*new), lambda a: a.reshape(new), [x])
    check(lambda t: tg.reshape(t.T, new), lambda a: a.T.reshape(new), [x])  # from a strided view


@given(data=st.data())
def test_transpose_swaps_two_axes(data):
    x = any_tensor(data, min_dims=1)
    dim0, dim1 = data.draw(st.tuples(*[st.integers(-x.ndim, x.ndim - 1)] * 2))
    check(lambda t: t.transpose(dim0, dim1), lambda a: np.swapaxes(a, dim0, dim1), [x])


@given(data=st.data())
def test_T_and_mT(data):
    x = any_tensor(data)
    check(lambda t: t.T, lambda a: a.T, [x])  # all axes reversed, as NumPy's .T
    if x.ndim >= 2:
        check(lambda t: t.mT, lambda a: np.swapaxes(a, -1, -2), [x])


@given(data=st.data())
def test_permute(data):
    x = any_tensor(data)
    order = data.draw(st.permutations(range(x.ndim)))
    negative = data.draw(st.lists(st.booleans(), min_size=x.ndim, max_size=x.ndim))
    dims = [d - x.ndim if neg else d for d, neg in zip(order, negative)]
    check(lambda t: t.permute(*dims), lambda a: np.transpose(a, order), [x])
    check(lambda t: tg.permute(t, dims), lambda a: np.transpose(a, order), [x])


@given(data=st.data())
def test_flatten(data):
    x = any_tensor(data, min_dims=1)
    start = data.draw(st.integers(0, x.ndim - 1))
    end = data.draw(st.integers(start, x.ndim - 1))
    end_spelled = data.draw(st.sampled_from([end, end - x.ndim]))
    check(lambda t: t.flatten(start, end_spelled),
          lambda a: a.reshape(a.shape[:start] + (-1,) + a.shape[end + 1:]), [x])


@given(data=st.data())
def test_expand_and_broadcast_to(data):
    x = any_tensor(data)
    other = data.draw(hnp.broadcastable_shapes(x.shape, max_dims=4, max_side=3))
    target = np.broadcast_shapes(x.shape, other)
    check(lambda t: t.expand(*target), lambda a: np.broadcast_to(a, target), [x])
    check(lambda t: tg.broadcast_to(t, target), lambda a: np.broadcast_to(a, target), [x])


@given(data=st.data())
def test_squeeze_and_unsqueeze(data):
    x = any_tensor(data, max_side=2)  # many size-1 axes
    check(lambda t: t.squeeze(), np.squeeze, [x])
    if x.ndim:
        d = data.draw(st.integers(-x.ndim, x.ndim - 1))
        # PyTorch's rule: squeeze(d) of an axis that is not of size 1 leaves the tensor as it is
        check(lambda t: t.squeeze(d), lambda a: np.squeeze(a, d) if a.shape[d] == 1 else a, [x])
    d = data.draw(st.integers(-x.ndim - 1, x.ndim))
    check(lambda t: t.unsqueeze(d), lambda a: np.expand_dims(a, d), [x])


@given(data=st.data())
def test_getitem_basic_indices(data):
    """Ints, slices with any step (negative too), None and Ellipsis."""
    x = any_tensor(data)
    index = data.draw(hnp.basic_indices(x.shape, allow_newaxis=True, allow_ellipsis=True))
    check(lambda t: t[index], lambda a: a[index], [x])


@given(data=st.data())
def test_getitem_integer_arrays(data):
    """Integer array indices repeat elements, whose gradients must then add up."""
    x = any_tensor(data, min_dims=1)
    index = data.draw(hnp.integer_array_indices(x.shape, result_shape=tst.shapes(max_dims=2)))
    check(lambda t: t[index], lambda a: a[index], [x])


@given(data=st.data())
def test_getitem_boolean_mask(data):
    x = any_tensor(data, min_dims=1)
    mask = data.draw(hnp.arrays(np.bool_, x.shape))
    check(lambda t: t[mask], lambda a: a[mask], [x])
    check(lambda t: t[tg.Tensor(mask[..., 0])], lambda a: a[mask[..., 0]], [x])


def test_getitem_repeated_indices_accumulate():
    x = tg.Tensor(np.arange(4.0), requires_grad=True)
    (x[[0, 2, 0, 0]] * tg.Tensor(np.array([1.0, 10.0, 100.0, 1000.0]))).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1101.0, 0.0, 10.0, 0.0])

    m = tg.Tensor(np.zeros((2, 3)), requires_grad=True)
    m[tg.Tensor(np.array([1, 1])), 1:].sum().backward()  # int Tensor index mixed with a slice
    np.testing.assert_array_equal(m.grad.numpy(), [[0, 0, 0], [0, 2, 2]])


@st.composite
def concat_shapes(draw):
    """Two or three shapes that agree except along ``axis``, and that axis."""
    shape = draw(tst.shapes(min_dims=1, **SMALL))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    sizes = draw(st.lists(st.integers(1, 3), min_size=2, max_size=3))
    shapes = [shape[:axis % len(shape)] + (n,) + shape[axis % len(shape) + 1:] for n in sizes]
    return shapes, axis


@given(data=st.data())
def test_cat_and_concatenate(data):
    shapes, axis = data.draw(concat_shapes())
    xs = draw_inputs(data, shapes, ["real"] * len(shapes))
    xs[0].requires_grad = False  # a constant among the inputs
    check(lambda *ts: tg.cat(ts, axis), lambda *a: np.concatenate(a, axis), xs)
    check(lambda *ts: tg.concatenate(ts, dim=axis), lambda *a: np.concatenate(a, axis), xs)


@given(data=st.data())
def test_stack(data):
    shape = data.draw(tst.shapes(**SMALL))
    n = data.draw(st.integers(1, 3))
    xs = draw_inputs(data, [shape] * n, ["real"] * n)
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    check(lambda *ts: tg.stack(ts, axis), lambda *a: np.stack(a, axis), xs)


@given(data=st.data())
def test_pad_takes_pytorch_pairs_from_the_last_axis(data):
    x = any_tensor(data, min_dims=1)
    n_axes = data.draw(st.integers(1, x.ndim))
    pad = data.draw(st.lists(st.integers(0, 2), min_size=2 * n_axes, max_size=2 * n_axes))
    value = data.draw(tst.scalars())
    pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]  # last axis first
    width = [(0, 0)] * (x.ndim - n_axes) + pairs[::-1]
    check(lambda t: t.pad(pad, value), lambda a: np.pad(a, width, constant_values=value), [x])


def test_pad_known_shapes():
    x = tg.zeros(2, 3)
    assert x.pad((1, 2)).shape == (2, 6)
    assert x.pad((1, 2, 3, 0)).shape == (5, 6)


# ---- linear algebra -----------------------------------------------------------------------------
@given(data=st.data())
def test_matmul_1d_2d_and_batched(data):
    shapes = data.draw(tst.matmul_shapes(max_side=3))
    a, b = draw_inputs(data, shapes, ["real"] * 2, data.draw(GRAD_FLAGS))
    check(operator.matmul, np.matmul, [a, b])
    check(tg.matmul, np.matmul, [a, b])


# ---- second derivatives -------------------------------------------------------------------------
@pytest.mark.parametrize("fn, ref, domain", table(UNARY))
@settings(max_examples=3)
@given(data=st.data())
def test_unary_second_derivative(fn, ref, domain, data):
    assert tg.gradgradcheck(fn, draw_inputs(data, [data.draw(tst.shapes(max_dims=2, max_side=2))],
                                            [domain]))


@pytest.mark.parametrize("fn, ref, domain_a, domain_b", table(BINARY))
@settings(max_examples=3)
@given(data=st.data())
def test_binary_second_derivative(fn, ref, domain_a, domain_b, data):
    shapes = data.draw(tst.broadcastable_shapes(2, max_dims=2, max_side=2))
    assert tg.gradgradcheck(fn, draw_inputs(data, shapes, [domain_a, domain_b]))


# ---- negative controls: the machinery above can fail --------------------------------------------
class TanhWrongBackward(Tanh):
    """Tanh whose gradient is 10% too large."""
    def backward(ctx, gy, y):
        return super().backward(gy, y) * 1.1


@given(data=st.data())
def test_table_catches_a_wrong_backward(data):
    x = data.draw(tst.tensors(tst.shapes(min_dims=1, **SMALL)))
    check(tg.tanh, np.tanh, [x])  # the real op passes...
    with pytest.raises(tg.GradcheckError):  # ...the broken one does not
        check(TanhWrongBackward.apply, np.tanh, [x])


@given(data=st.data())
def test_table_catches_a_wrong_forward(data):
    x = data.draw(tst.tensors(tst.shapes(min_dims=1, **SMALL), domain="positive"))
    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        check(tg.tanh, np.sin, [x])
