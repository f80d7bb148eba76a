"""Module.load_state_dict refuses what it cannot load faithfully, and changes nothing then;
Parameter(array) copies, Parameter(tensor) shares."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_edu as tg
from tinygrad_edu import nn, optim
from tinygrad_edu.nn import Module, Parameter


class Counted(Module):
    """A float32 parameter, an int64 counter, an int32 and a bool buffer."""

    def __init__(self):
        super().__init__()
        self.weight = Parameter(np.arange(6, dtype=np.float32).reshape(2, 3))
        self.register_buffer("num_batches_tracked", tg.Tensor(np.array(4, dtype=np.int64)))
        self.register_buffer("small", tg.Tensor(np.array([1, 2], dtype=np.int32)))
        self.register_buffer("mask", tg.Tensor(np.array([True, False])))


def good():
    return {"weight": np.full((2, 3), 0.5), "num_batches_tracked": np.array(9),
            "small": np.array([3, 4], dtype=np.int32), "mask": np.array([False, True])}


def assert_unchanged(m, before):
    after = m.state_dict()
    assert list(after) == list(before)
    for k, v in before.items():
        assert after[k].dtype == v.dtype and np.array_equal(after[k], v), k


REFUSED = [
    ("weight", np.full((2, 3), 1 + 2j), "weight: complex dtype complex128 .*imaginary part"),
    ("weight", np.full((2, 3), 1 + 2j, np.complex64), "weight: complex dtype complex64"),
    ("weight", np.array([["a"] * 3] * 2), "weight: dtype <U1 is not a number type"),
    ("weight", np.array([[b"a"] * 3] * 2), "weight: dtype |S1 is not a number type"),
    ("weight", np.full((2, 3), None, dtype=object), "weight: dtype object is not a number type"),
    ("weight", np.ones((2, 3), dtype=np.int64), "weight: dtype int64 .*only floats load"),
    ("weight", np.ones((2, 3), dtype=bool), "weight: dtype bool .*only floats load"),
    ("weight", np.zeros((2, 3), "datetime64[s]"), "weight: dtype datetime64"),
    ("num_batches_tracked", np.array(9.0), "num_batches_tracked: dtype float64 .* integer int64"),
    ("num_batches_tracked", np.array(9 + 0j), "num_batches_tracked: complex"),
    ("num_batches_tracked", np.array(True), "num_batches_tracked: dtype bool"),
    ("small", np.array([1, 2**40]), r"small: values in \[1, 1099511627776\] do not fit .*int32"),
    ("mask", np.array([1, 0]), "mask: dtype int64 .* bool"),
]


@pytest.mark.parametrize("key, value, match", REFUSED,
                         ids=[f"{k}-{v.dtype}" for k, v, _ in REFUSED])
@pytest.mark.parametrize("strict", [True, False])
def test_values_that_would_lose_meaning_are_refused_and_nothing_changes(key, value, match,
                                                                        strict):
    m = Counted()
    sd = {**good(), key: value}
    before = m.state_dict()
    for check in (m._validate_state_dict, m.load_state_dict):
        with pytest.raises(ValueError, match="nothing was loaded") as info:
            check(sd, strict=strict)
        assert info.match(match)
        assert_unchanged(m, before)


def test_every_bad_key_is_named_in_one_error():
    m = Counted()
    sd = {**good(), "weight": np.ones((2, 3), complex), "mask": np.array([1, 0]),
          "small": np.array(["x", "y"])}
    before = m.state_dict()
    with pytest.raises(ValueError) as info:
        m.load_state_dict(sd)
    for key in ("weight: complex", "small: dtype <U1", "mask: dtype int64"):
        assert key in str(info.value)
    assert_unchanged(m, before)


def test_real_floats_convert_and_integers_convert_when_they_fit():
    """The documented casts: any real float into a float tensor (rounded), integers into
    integer buffers when the values fit, bools into bools."""
    m = Counted()
    sd = {"weight": np.full((2, 3), 1 / 3), "num_batches_tracked": np.array(9, np.int32),
          "small": np.array([-1, 2], np.int64), "mask": np.array([False, True])}
    m.load_state_dict(sd)
    assert m.weight.dtype == np.float32 and m.weight.data[0, 0] == np.float32(1 / 3)
    assert m.num_batches_tracked.dtype == np.int64 and m.num_batches_tracked.data == 9
    assert m.small.dtype == np.int32 and m.small.data.tolist() == [-1, 2]
    m.load_state_dict({**sd, "weight": np.full((2, 3), 2.0, np.float16)})
    assert m.weight.data[1, 2] == 2.0
    m.load_state_dict({**sd, "num_batches_tracked": np.array(3, np.uint8)})
    assert m.num_batches_tracked.data == 3


DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int32, np.int64, np.uint8, np.bool_,
          np.complex64, np.complex128, np.str_, np.object_]


@given(dtype=st.sampled_from(DTYPES))
def test_a_float_parameter_loads_exactly_the_real_floating_dtypes(dtype):
    m = nn.Linear(2, 2, bias=False)
    before = m.state_dict()
    value = np.ones((2, 2)).astype(dtype)
    if np.dtype(dtype).kind == "f":
        m.load_state_dict({"weight": value})
        assert m.weight.dtype == np.float32 and (m.weight.data == 1).all()
    else:
        with pytest.raises(ValueError, match="weight: "):
            m.load_state_dict({"weight": value})
        assert_unchanged(m, before)


def test_batchnorm_counter_loads_from_integers_only():
    bn = nn.BatchNorm1d(3)
    sd = bn.state_dict()
    before = bn.state_dict()
    with pytest.raises(ValueError, match="num_batches_tracked: dtype float64"):
        bn.load_state_dict({**sd, "num_batches_tracked": np.array(2.0)})
    assert_unchanged(bn, before)
    bn.load_state_dict({**sd, "num_batches_tracked": np.array(2, np.int32)})
    assert int(bn.num_batches_tracked.data) == 2


def test_validate_returns_what_load_would_and_changes_nothing():
    m = Counted()
    before = m.state_dict()
    sd = good()
    sd.pop("mask")
    sd["extra"] = np.zeros(1)
    updates, keys = m._validate_state_dict(sd, strict=False)
    assert keys == (["mask"], ["extra"]) and [t for t, _ in updates][0] is m.weight
    assert_unchanged(m, before)
    with pytest.raises(ValueError, match="missing key: mask"):
        m._validate_state_dict(sd)
    assert m.load_state_dict(sd, strict=False) == keys
    assert (m.weight.data == 0.5).all()


# ---- Parameter: copies arrays, shares tensors ----------------------------------------------------
def test_parameter_from_an_array_copies_it_so_training_never_writes_into_it():
    a = np.ones(3, dtype=np.float32)
    whole = np.ones((2, 3), dtype=np.float32)
    ps = [Parameter(a), Parameter(whole[1])]  # a view too
    for p in ps:
        p.grad = tg.Tensor._wrap(np.ones(3, dtype=np.float32))
    optim.SGD(ps, lr=0.5).step()
    assert (a == 1).all() and (whole == 1).all()
    assert (ps[0].data == 0.5).all() and (ps[1].data == 0.5).all()
    assert not np.shares_memory(ps[0].data, a)


def test_parameter_from_a_tensor_shares_its_data_and_version():
    t = tg.Tensor(np.ones(3, dtype=np.float32))
    p = Parameter(t)
    assert p.data is t.data and p.requires_grad and not t.requires_grad
    p.grad = tg.Tensor._wrap(np.ones(3, dtype=np.float32))
    optim.SGD([p], lr=0.5).step()
    assert (t.data == 0.5).all()  # as torch.nn.Parameter(tensor): one storage
    assert t._version[0] == p._version[0] == 1
    q = Parameter(t, dtype=np.float64)  # a conversion copies
    assert q.dtype == np.float64 and not np.shares_memory(q.data, t.data)
    with pytest.raises(TypeError, match="floating-point"):
        Parameter(tg.Tensor([1, 2]))
