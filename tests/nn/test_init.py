"""Initializers: gains, fans, sample statistics against the formulas, bounds, seeds, in place."""
import math

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu.nn import Parameter, init


def big(*shape, dtype=np.float32):
    return Parameter(np.zeros(shape, dtype=dtype))


def test_calculate_gain():
    assert init.calculate_gain("linear") == 1 and init.calculate_gain("conv2d") == 1
    assert init.calculate_gain("sigmoid") == 1  # the Theano tutorial's 4x is gain=4.0, by hand
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2)))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_gain("leaky_relu", 0) == pytest.approx(math.sqrt(2))
    with pytest.raises(ValueError, match="unknown nonlinearity 'swish'"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="negative slope"):
        init.calculate_gain("leaky_relu", "x")


def test_fans_include_the_receptive_field():
    assert init._calculate_fan_in_and_fan_out(big(10, 20)) == (20, 10)       # Linear (out, in)
    assert init._calculate_fan_in_and_fan_out(big(64, 32, 3, 3)) == (288, 576)  # Conv2d
    with pytest.raises(ValueError, match=r"at least 2 dimensions, got shape \(5,\)"):
        init.xavier_uniform_(big(5))


# (initializer, kwargs, expected std for a (400, 100, 3, 3) weight: fan_in 900, fan_out 3600)
FAN_IN, FAN_OUT = 900, 3600
CASES = [
    (init.xavier_uniform_, {}, math.sqrt(2 / (FAN_IN + FAN_OUT))),
    (init.xavier_uniform_, {"gain": 4.0}, 4 * math.sqrt(2 / (FAN_IN + FAN_OUT))),
    (init.xavier_normal_, {}, math.sqrt(2 / (FAN_IN + FAN_OUT))),
    (init.kaiming_normal_, {}, math.sqrt(2 / FAN_IN)),
    (init.kaiming_normal_, {"mode": "fan_out"}, math.sqrt(2 / FAN_OUT)),
    (init.kaiming_uniform_, {"a": 0.1, "nonlinearity": "leaky_relu"},
     math.sqrt(2 / 1.01) / math.sqrt(FAN_IN)),
    (init.kaiming_uniform_, {"nonlinearity": "tanh"}, 5 / 3 / math.sqrt(FAN_IN)),
    (init.normal_, {"mean": 0.0, "std": 0.01}, 0.01),
    (init.uniform_, {"a": -0.5, "b": 0.5}, 1 / math.sqrt(12)),
]


@pytest.mark.parametrize("fn, kwargs, std", CASES, ids=lambda v: getattr(v, "__name__", ""))
def test_sample_std_matches_the_formula(fn, kwargs, std):
    tg.manual_seed(0)
    t = big(400, 100, 3, 3)
    version = t._version[0]
    assert fn(t, **kwargs) is t                     # in place, returns its argument
    assert t.dtype == np.float32 and t._version[0] == version + 1
    assert t.data.std() == pytest.approx(std, rel=0.02)
    assert abs(t.data.mean()) < 0.01 * std + 1e-6
    if fn in (init.xavier_uniform_, init.kaiming_uniform_, init.uniform_):
        bound = math.sqrt(3) * std
        assert np.abs(t.data).max() <= bound * (1 + 1e-6)
        assert np.abs(t.data).max() > 0.99 * bound  # the whole range is used


def test_normal_mean_and_uniform_bounds():
    tg.manual_seed(1)
    t = init.normal_(big(100_000), mean=3.0, std=0.5)
    assert t.data.mean() == pytest.approx(3.0, abs=0.01)
    u = init.uniform_(big(100_000), 2.0, 5.0).data
    assert u.min() >= 2.0 and u.max() < 5.0 and u.mean() == pytest.approx(3.5, abs=0.02)


def test_seed_reproducibility_and_dtype():
    tg.manual_seed(42)
    a = init.he_normal_(big(20, 30)).numpy().copy()
    b = init.he_normal_(big(20, 30)).numpy().copy()
    tg.manual_seed(42)
    np.testing.assert_array_equal(init.kaiming_normal_(big(20, 30)).numpy(), a)
    assert not np.array_equal(a, b)
    t = init.glorot_uniform(big(50, 60, dtype=np.float64))
    assert t.dtype == np.float64 and np.abs(t.data).max() <= math.sqrt(6 / 110)


def test_constants_and_aliases():
    t = big(3, 4)
    assert (init.ones_(t).data == 1).all() and (init.zeros_(t).data == 0).all()
    assert (init.constant_(t, 0.25).data == 0.25).all()
    ints = tg.zeros(3, dtype=np.int64)
    assert (init.constant_(ints, 7).data == 7).all() and ints.dtype == np.int64
    with pytest.raises(TypeError, match="normal_: needs a floating-point tensor"):
        init.normal_(ints)
    assert init.glorot_uniform_ is init.xavier_uniform_ and init.he_uniform is init.kaiming_uniform_
    assert init.glorot_normal is init.xavier_normal_ and init.he_normal is init.kaiming_normal_


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode must be 'fan_in' or 'fan_out'"):
        init.kaiming_normal_(big(3, 3), mode="fan_avg")
    with pytest.raises(ValueError, match="std must be >= 0"):
        init.normal_(big(3), std=-1)
    with pytest.raises(ValueError, match="need a <= b"):
        init.uniform_(big(3), 1, 0)


def test_initializers_work_on_parameters_that_require_grad_and_record_nothing():
    p = big(10, 10)
    with tg.enable_grad():
        init.xavier_normal_(p)
    assert p.is_leaf and p.requires_grad and p.grad is None
