"""Gradient clipping (tinygrad_edu/nn/utils.py).

Expected values are small hand computations: gradients (3, 4) and (12,) have 2-norm 13,
1-norm 19 and max-norm 12.
"""
import math

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu.nn.utils import clip_grad_norm_, clip_grad_value_


def params_with_grads(dtype=np.float32):
    p = tg.Tensor(np.zeros(2, dtype), requires_grad=True)
    q = tg.Tensor(np.zeros(1, dtype), requires_grad=True)
    r = tg.Tensor(np.zeros(3, dtype), requires_grad=True)  # no gradient: ignored
    p.grad = tg.Tensor(np.array([3.0, -4.0], dtype))
    q.grad = tg.Tensor(np.array([12.0], dtype))
    return p, q, r


@pytest.mark.parametrize("norm_type, total", [(2.0, 13.0), (1, 19.0), (math.inf, 12.0),
                                              (3.0, (27 + 64 + 1728) ** (1 / 3))])
def test_total_norm_and_scaling(norm_type, total):
    p, q, r = params_with_grads()
    got = clip_grad_norm_([p, q, r], max_norm=6.5, norm_type=norm_type)
    assert isinstance(got, float) and got == pytest.approx(total, rel=1e-6)
    scale = 6.5 / (total + 1e-6)
    np.testing.assert_allclose(p.grad.data, np.array([3.0, -4.0]) * scale, rtol=1e-6)
    np.testing.assert_allclose(q.grad.data, [12.0 * scale], rtol=1e-6)
    assert p.grad.dtype == np.float32 and r.grad is None


def test_small_gradients_are_left_alone():
    p, q, _ = params_with_grads(np.float64)
    before = p.grad
    assert clip_grad_norm_(iter([p, q]), max_norm=13.5) == 13.0  # any iterable, e.g. a generator
    assert p.grad is before
    assert clip_grad_norm_(p, max_norm=1.0) == 5.0  # a single tensor
    np.testing.assert_allclose(p.grad.data, [0.6, -0.8], rtol=1e-6)
    assert clip_grad_norm_([tg.Tensor([1.0], requires_grad=True)], 1.0) == 0.0  # no grads at all


def test_shared_gradient_memory_is_scaled_once_and_not_mutated():
    shared = np.array([3.0, 4.0])
    p, q = (tg.Tensor(np.zeros(2), requires_grad=True) for _ in range(2))
    p.grad, q.grad = tg.Tensor(shared), tg.Tensor(shared)  # one array behind both grads
    total = clip_grad_norm_([p, q], max_norm=1.0)
    assert total == pytest.approx(math.sqrt(50))
    expected = shared / (math.sqrt(50) + 1e-6)
    np.testing.assert_allclose(p.grad.data, expected)
    np.testing.assert_allclose(q.grad.data, expected)
    np.testing.assert_array_equal(shared, [3.0, 4.0])


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_nonfinite_norm():
    p, q, _ = params_with_grads()
    q.grad = tg.Tensor(np.array([np.inf], np.float32))
    with pytest.raises(RuntimeError, match="inf"):
        clip_grad_norm_([p, q], 1.0, error_if_nonfinite=True)
    assert clip_grad_norm_([p, q], 1.0) == math.inf  # scale 0: finite grads 0, inf ones NaN
    np.testing.assert_array_equal(p.grad.data, [0.0, -0.0])
    assert np.isnan(q.grad.data).all()


def test_clip_grad_value():
    p, q, r = params_with_grads()
    clip_grad_value_([p, q, r], 3.5)
    np.testing.assert_array_equal(p.grad.data, [3.0, -3.5])
    np.testing.assert_array_equal(q.grad.data, [3.5])
    assert p.grad.dtype == np.float32 and r.grad is None
    with pytest.raises(ValueError, match="clip_value"):
        clip_grad_value_([p], -1)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_([p], -1)
