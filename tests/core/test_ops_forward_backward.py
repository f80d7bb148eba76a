"""Every op of the op table (tests/op_table.py) on the CPU: forward against the NumPy reference,
backward against central differences, second derivatives.

Hypothesis draws each row's cases, 0-d and broadcasting shapes included, in float64 and from a
domain where the op is smooth, so that a check never fails by chance. ``tg.gradcheck`` projects
the output on a fixed random tensor, so the upstream gradient is random too, not all ones. The
same rows run on the GPU in tests/gpu/test_gpu_ops.py: add an op to the table, not here.
"""
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_edu as tg
from tinygrad_edu.ops.elementwise import Tanh
from tinygrad_edu.testing import strategies as tst

from op_table import EXACT, NN_OPS, OPS, ids, sigmoid_ref


def tensors(case, all_grad=False):
    """The case's arrays as CPU tensors; ``all_grad``: every float input requires grad."""
    return [tg.Tensor(a, requires_grad=(all_grad or g) and a.dtype.kind == "f")
            for a, g in zip(case.arrays, case.requires_grad)]


def check(fn, ref, inputs):
    """The op's forward equals the NumPy reference; a float output passes gradcheck, any other
    (bool, int) is compared exactly and records no graph."""
    got = fn(*inputs)
    want = ref(*[x.numpy() if isinstance(x, tg.Tensor) else x for x in inputs])
    assert got.shape == np.shape(want)
    if np.result_type(want).kind != "f":
        assert got.dtype == np.result_type(want)
        assert not got.requires_grad and got.grad_fn is None
        np.testing.assert_array_equal(got.numpy(), want)
        return
    assert got.dtype == np.float64
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-12)
    assert tg.gradcheck(fn, inputs)


def run_case(op, case):
    check(partial(op.fn, **case.params), partial(op.ref, **case.params), tensors(case))


@pytest.mark.parametrize("op", OPS, ids=ids(OPS))
@given(data=st.data())
def test_op(op, data):
    run_case(op, data.draw(op.cases("small")))


SECOND_ORDER = [op for op in OPS if op.gradgrad and op.tol is not EXACT]


@pytest.mark.parametrize("op", SECOND_ORDER, ids=ids(SECOND_ORDER))
@settings(max_examples=3)
@given(data=st.data())
def test_op_second_derivative(op, data):
    case = data.draw(op.cases("tiny"))
    assert tg.gradgradcheck(partial(op.fn, **case.params), tensors(case, all_grad=True))


@pytest.mark.parametrize("op", NN_OPS, ids=ids(NN_OPS))
@settings(max_examples=10)  # tests/nn/test_functional_grad.py checks these in depth
@given(data=st.data())
def test_nn_function(op, data):
    run_case(op, data.draw(op.cases("small")))


# ---- what a table row cannot say ----------------------------------------------------------------
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


def test_getitem_repeated_indices_accumulate():
    x = tg.Tensor(np.arange(4.0), requires_grad=True)
    (x[[0, 2, 0, 0]] * tg.Tensor(np.array([1.0, 10.0, 100.0, 1000.0]))).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1101.0, 0.0, 10.0, 0.0])

    m = tg.Tensor(np.zeros((2, 3)), requires_grad=True)
    m[tg.Tensor(np.array([1, 1])), 1:].sum().backward()  # int Tensor index mixed with a slice
    np.testing.assert_array_equal(m.grad.numpy(), [[0, 0, 0], [0, 2, 2]])


def test_pad_known_shapes():
    x = tg.zeros(2, 3)
    assert x.pad((1, 2)).shape == (2, 6)
    assert x.pad((1, 2, 3, 0)).shape == (5, 6)


def test_table_ids_are_unique():
    rows = ids(OPS + NN_OPS)
    assert len(rows) == len(set(rows)), sorted(r for r in rows if rows.count(r) > 1)


# ---- negative controls: the machinery above can fail --------------------------------------------
class TanhWrongBackward(Tanh):
    """Tanh whose gradient is 10% too large."""
    def backward(ctx, gy, y):
        return super().backward(gy, y) * 1.1


@given(data=st.data())
def test_table_catches_a_wrong_backward(data):
    x = data.draw(tst.tensors(tst.shapes(min_dims=1, max_dims=3, max_side=3)))
    check(tg.tanh, np.tanh, [x])  # the real op passes...
    with pytest.raises(tg.GradcheckError):  # ...the broken one does not
        check(TanhWrongBackward.apply, np.tanh, [x])


@given(data=st.data())
def test_table_catches_a_wrong_forward(data):
    x = data.draw(tst.tensors(tst.shapes(min_dims=1, max_dims=3, max_side=3), domain="positive"))
    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        check(tg.tanh, np.sin, [x])


def test_table_compares_bool_and_int_outputs_exactly():
    x = tg.Tensor(np.array([1.0, 1.5, 2.0]), requires_grad=True)
    check(lambda t: t >= 1.5, lambda a: a >= 1.5, [x])
    with pytest.raises(AssertionError, match="Arrays are not equal"):
        check(lambda t: t >= 1.5, lambda a: a > 1.5, [x])  # differs at the tie only
