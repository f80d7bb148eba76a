"""The test tools themselves: the Hypothesis strategies produce what they promise, and
tg.gradcheck accepts right gradients and rejects wrong ones with a useful message."""
import re

import numpy as np
import pytest
from hypothesis import find, given
from hypothesis import strategies as st

import tinygrad_edu as tg
from tinygrad_edu.testing import strategies as tst


# ---- strategies ---------------------------------------------------------------------------------
@given(tst.shapes(min_dims=1, max_dims=3, min_side=2, max_side=4))
def test_shapes_respect_their_bounds(shape):
    assert 1 <= len(shape) <= 3 and all(2 <= n <= 4 for n in shape)


def test_shapes_include_0d_and_size_1_axes():
    assert find(tst.shapes(), lambda s: s == ()) == ()
    assert 1 in find(tst.shapes(min_dims=2), lambda s: 1 in s)


def in_domain(values, domain):
    return all(any(lo <= v <= hi for lo, hi in tst.DOMAINS[domain]) for v in values.ravel())


@pytest.mark.parametrize("domain", sorted(tst.DOMAINS))
@given(data=st.data())
def test_tensors_stay_in_their_domain(domain, data):
    x = data.draw(tst.tensors(domain=domain))
    assert x.dtype == np.float64 and x.requires_grad
    assert in_domain(x.numpy(), domain)


def test_domains_keep_away_from_kinks():
    assert all(lo > 0 for lo, _ in tst.DOMAINS["positive"])
    assert all(lo >= 0.1 or hi <= -0.1 for lo, hi in tst.DOMAINS["nonzero"])


@given(tst.arrays((3, 4), dtype=np.float32, domain="positive"))
def test_float32_arrays_are_drawn_in_float64_then_converted(a):
    assert a.dtype == np.float32 and a.shape == (3, 4)
    assert (a >= np.float32(0.5)).all() and (a <= 3).all()


@given(tst.tensors(dtype=np.int64), tst.elements([(-1, -0.5), (2, 3)]))
def test_integer_tensors_and_custom_intervals(x, value):
    assert x.dtype == np.int64 and not x.requires_grad  # integers cannot require grad
    assert (np.abs(x.numpy()) <= 5).all()
    assert -1 <= value <= -0.5 or 2 <= value <= 3


def test_unknown_domain():
    with pytest.raises(ValueError, match="unknown domain 'posative'"):
        tst.elements("posative")


def min_gap(*arrays):
    values = np.sort(np.concatenate([a.ravel() for a in arrays]))
    return np.diff(values).min() if values.size > 1 else np.inf


@given(tst.broadcastable_shapes(n=3, max_dims=3).flatmap(tst.separated_arrays))
def test_separated_arrays_are_apart_across_all_arrays(arrays):
    assert len(arrays) == 3
    assert min_gap(*arrays) >= (1 - 2 * 0.25) * tst.DISTINCT_SPACING - 1e-12


@given(tst.tensors(tst.shapes(max_dims=3), domain="distinct"))
def test_distinct_tensors(x):
    assert min_gap(x.numpy()) >= 0.5 * tst.DISTINCT_SPACING - 1e-12


def test_separated_arrays_checks_its_jitter():
    with pytest.raises(ValueError, match="jitter must be in"):
        find(tst.separated_arrays([(2,)], jitter=0.5), lambda a: True)


@given(tst.broadcastable_shapes(n=3))
def test_broadcastable_shapes_broadcast(shapes):
    assert len(shapes) == 3
    np.broadcast_shapes(*shapes)  # raises if they do not


@given(tst.matmul_shapes())
def test_matmul_shapes_are_accepted_by_numpy(shapes):
    a, b = shapes
    np.matmul(np.ones(a), np.ones(b))


def test_matmul_shapes_include_1d_and_batched_operands():
    assert find(tst.matmul_shapes(), lambda s: len(s[0]) == 1 and len(s[1]) == 1)
    assert find(tst.matmul_shapes(), lambda s: len(s[0]) > 2 and len(s[0]) != len(s[1]))


# ---- gradcheck ----------------------------------------------------------------------------------
class Double(tg.Function):
    """y = 2x, with a deliberately wrong gradient where ``ctx.error`` says."""
    def forward(ctx, x, error):
        ctx.error = error
        return 2 * x

    def backward(ctx, gy, y):
        return gy * 2 + gy * tg.Tensor(ctx.error)


def leaf(shape, seed=0):
    return tg.Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def test_gradcheck_accepts_right_gradients():
    x, w = leaf((2, 3)), leaf((3,), seed=1)
    assert tg.gradcheck(lambda a, b: (a * b).tanh(), [x, w]) is True
    assert tg.gradcheck(lambda a: Double.apply(a, error=np.zeros((2, 3))), [x]) is True
    before = x.numpy().copy()
    tg.gradcheck(lambda a, b: a @ b, [x, w])
    np.testing.assert_array_equal(x.numpy(), before)  # every perturbation was undone


def test_gradcheck_names_the_input_and_the_worst_element():
    error = np.zeros((2, 3))
    error[1, 2], error[0, 0] = 0.3, 0.01  # analytic = 2.3 / 2 = 1.15 times the numeric at (1, 2)
    c, x = leaf((2, 3)), leaf((2, 3), seed=1)
    with pytest.raises(tg.GradcheckError) as info:
        tg.gradcheck(lambda a, b: a * Double.apply(b, error=error), [c, x])
    message = str(info.value)
    assert message.startswith("gradcheck: input 1 (shape (2, 3)) at index (1, 2): analytic ")
    analytic, numeric = map(float, re.search(r"analytic (\S+), numeric (\S+),", message).groups())
    assert np.isclose(analytic / numeric, 1.15, rtol=1e-6)


def test_gradcheck_projects_on_random_weights_not_ones():
    """A backward that ignores its upstream gradient would pass a check of plain sum()."""
    class IgnoresUpstream(Double):
        def backward(ctx, gy, y):
            return tg.Tensor(2 * np.ones(gy.shape))

    x = leaf((4,))
    with pytest.raises(tg.GradcheckError):
        tg.gradcheck(lambda a: IgnoresUpstream.apply(a, error=None), [x])


def test_gradcheck_rejects_nan_gradients():
    class NanBackward(Double):
        def backward(ctx, gy, y):
            return gy * float("nan")

    with pytest.raises(tg.GradcheckError, match="analytic nan"):
        tg.gradcheck(lambda a: NanBackward.apply(a, error=None), [leaf((3,))])


def test_gradcheck_several_outputs_non_tensor_arguments_and_strided_inputs():
    x = tg.Tensor(np.random.default_rng(2).standard_normal((3, 2)).T, requires_grad=True)
    assert not x.data.flags.c_contiguous
    assert tg.gradcheck(lambda a, k: (a * k, (a ** 2).sum(axis=1)), [x, 3])
    error = np.zeros((2, 3))
    error[0, 1] = 0.5
    with pytest.raises(tg.GradcheckError, match=r"index \(0, 1\)"):
        tg.gradcheck(lambda a: (a * 3, Double.apply(a, error=error)), [x])


def test_gradcheck_of_an_output_that_does_not_depend_on_the_input():
    assert tg.gradcheck(lambda a: tg.Tensor(np.ones(2)), [leaf((2,))])


def test_gradcheck_needs_float64_inputs_that_require_grad():
    with pytest.raises(TypeError, match="input 0 is float32; use float64"):
        tg.gradcheck(tg.tanh, [tg.Tensor(np.ones(3, dtype=np.float32), requires_grad=True)])
    with pytest.raises(ValueError, match="no input requires grad"):
        tg.gradcheck(tg.tanh, [tg.Tensor(np.ones(3))])


class DetachedSquare(tg.Function):
    """y = x^2 with the right gradient 2x, but computed from a detached x: the second
    derivative through it comes out 0 instead of 2."""
    def forward(ctx, x):
        return x * x

    def backward(ctx, gy, y):
        return gy * ctx.inputs[0].detach() * 2


def test_gradgradcheck():
    x, w = leaf((2, 2)), leaf((2, 2), seed=1)
    assert tg.gradgradcheck(lambda a, b: (a @ b).tanh(), [x, w])
    assert tg.gradcheck(DetachedSquare.apply, [x])
    with pytest.raises(tg.GradcheckError):
        tg.gradgradcheck(DetachedSquare.apply, [x])
