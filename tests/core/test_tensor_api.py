"""The Tensor's public face: attributes, conversions, dtype rules, argument spellings,
constructors, the random seed and the "cuda" device on a machine without one."""
import importlib.util
import operator

import numpy as np
import pytest

import tinygrad_edu as tg


# ---- attributes and conversions -----------------------------------------------------------------
def test_attributes():
    data = np.arange(6.0).reshape(2, 3)
    x = tg.Tensor(data, requires_grad=True)
    assert x.data is not data and not np.shares_memory(x.data, data)  # copied, as torch.tensor
    assert x.grad is None and x.requires_grad and x.is_leaf and x.grad_fn is None
    assert x.shape == (2, 3) and x.ndim == 2 and x.numel() == 6 and len(x) == 2
    assert x.dtype == np.float64 and x.device == "cpu"
    y = x * 2
    assert not y.is_leaf and type(y.grad_fn).__name__ == "Mul"


def test_item_numpy_tolist():
    x = tg.Tensor([[1.5, 2.0]])
    assert x.numpy() is x.data
    assert x.tolist() == [[1.5, 2.0]]
    value = x[0, 1].item()
    assert value == 2.0 and type(value) is float
    assert type(tg.Tensor(3).item()) is int
    with pytest.raises(ValueError, match=r"one element.*\(1, 2\)"):
        x.item()


def test_detach_and_to():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    assert x.to("cpu") is x  # nothing to move, nothing recorded
    d = x.to(np.float64)
    assert d.dtype == np.float64 and d.grad_fn is not None  # a differentiable cast
    assert x.double().dtype == np.float64 and x.long().dtype == np.int64
    assert x.double().float().dtype == np.float32


def test_repr_shows_values_dtype_and_tape():
    assert repr(tg.Tensor([1.0, 2.0])) == "Tensor([1., 2.])"
    assert repr(tg.Tensor([1, 2])) == "Tensor([1, 2], dtype=int64)"
    x = tg.Tensor([1.0], requires_grad=True, name="w")
    assert repr(x) == "Tensor([1.], requires_grad=True, name='w')"
    assert repr(x * 2) == "Tensor([2.], grad_fn=Mul)"


def test_truth_value_of_several_elements_is_refused():
    assert tg.Tensor([3.0]) > 2
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(tg.Tensor([1.0, 2.0]) > 0)


# ---- dtype rules --------------------------------------------------------------------------------
@pytest.mark.parametrize("data, dtype", [
    (1.5, np.float32), ([1.0, 2.0], np.float32), ([1, 2.5], np.float32), ([[1.0]], np.float32),
    (3, np.int64), ([1, 2], np.int64), (True, np.bool_), ([True, False], np.bool_),
    (np.arange(3, dtype=np.int32), np.int32), (np.ones(2), np.float64),
    (np.ones(2, dtype=np.float16), np.float16), (np.float64(2.0), np.float64),
])
def test_dtype_of_new_tensors(data, dtype):
    assert tg.Tensor(data).dtype == dtype


def test_dtype_argument_overrides():
    assert tg.Tensor([1, 2], dtype=np.float64).dtype == np.float64
    assert tg.Tensor(np.ones(2), dtype="float32").dtype == np.float32


BINARY_OPS = [(operator.add, np.add), (operator.sub, np.subtract), (operator.mul, np.multiply),
              (operator.truediv, np.divide), (operator.pow, np.power),
              (tg.maximum, np.maximum), (tg.minimum, np.minimum)]
NUMBERS = [2.0, 2, np.float64(2.0), np.float32(2.0), np.int64(2)]


@pytest.mark.parametrize("op, ref", BINARY_OPS, ids=[op.__name__ for op, _ in BINARY_OPS])
@pytest.mark.parametrize("number", NUMBERS, ids=lambda n: type(n).__name__)
def test_numbers_take_the_dtype_of_the_tensor(op, ref, number):
    """NumPy 2 would make float32 * np.float64(2) a float64; here the tensor's dtype wins."""
    for dtype in (np.float32, np.float64):
        t = tg.Tensor(np.array([1.0, 3.0], dtype=dtype))
        a = np.array([1.0, 3.0])
        for result, want in ((op(t, number), ref(a, 2.0)), (op(number, t), ref(2.0, a))):
            assert result.dtype == dtype
            np.testing.assert_allclose(result.numpy(), want, rtol=1e-6)


def test_integer_tensors_with_numbers():
    t = tg.Tensor([1, 2])
    assert (t + 2).dtype == np.int64 and (3 * t).dtype == np.int64
    assert (tg.Tensor(np.array([1, 2], dtype=np.int32)) * 2).dtype == np.int32
    assert (t.float() * 2.5).dtype == np.float32


def test_true_division_of_integers_gives_the_default_float32():
    t = tg.Tensor([1, 2, 3])                     # int64
    for q in (t / 2, 6 / t, t / t, tg.Tensor(np.array([1, 3], np.int32)) / 2):
        assert q.dtype == np.float32             # NumPy would give float64; PyTorch float32
    np.testing.assert_array_equal((t / 2).numpy(), [0.5, 1.0, 1.5])


def test_comparisons_give_bool_tensors():
    t = tg.Tensor([1.0, 2.0, 3.0])
    np.testing.assert_array_equal((t > 2.0).numpy(), [False, False, True])
    np.testing.assert_array_equal((2 <= t).numpy(), [False, True, True])
    assert (t == t).dtype == np.bool_


# ---- argument spellings -------------------------------------------------------------------------
def test_shape_as_tuple_or_separate_ints():
    x = tg.arange(24).reshape(2, 3, 4)
    np.testing.assert_array_equal(x.reshape(4, 6).numpy(), x.reshape((4, 6)).numpy())
    np.testing.assert_array_equal(x.permute(2, 0, 1).numpy(), x.permute((2, 0, 1)).numpy())
    assert x[:, :1].expand(2, 3, 4).shape == x[:, :1].expand((2, 3, 4)).shape == (2, 3, 4)
    assert x[:1].expand(5, -1, 3, -1).shape == (5, 1, 3, 4)  # -1 keeps an axis, as PyTorch
    for make in (tg.zeros, tg.ones, tg.randn, tg.rand):
        assert make(2, 3).shape == make((2, 3)).shape == (2, 3)


def test_axis_and_dim_keywords_agree():
    x = tg.Tensor(np.arange(6.0).reshape(2, 3))
    for name in ("sum", "mean", "amax", "amin", "var", "argmax", "argmin"):
        numpy_style = getattr(x, name)(axis=1, keepdims=True)
        torch_style = getattr(x, name)(dim=1, keepdim=True)
        assert numpy_style.shape == (2, 1)
        np.testing.assert_array_equal(numpy_style.numpy(), torch_style.numpy())
    assert tg.cat([x, x], dim=1).shape == tg.concatenate([x, x], axis=1).shape == (2, 6)
    assert tg.stack([x, x], dim=2).shape == (2, 3, 2)
    assert x.squeeze(axis=0).shape == x.squeeze(dim=0).shape == (2, 3)


def test_pytorch_meanings_of_movement_names():
    x = tg.zeros(2, 3, 4)
    assert x.transpose(0, 2).shape == (4, 3, 2)  # swaps two axes (NumPy's would permute)
    assert x.T.shape == (4, 3, 2) and x.mT.shape == (2, 4, 3)
    assert x.flatten().shape == (24,) and x.flatten(1).shape == (2, 12)
    assert tg.zeros(()).flatten().shape == (1,)
    assert tg.zeros(3).sum(axis=0).shape == () and tg.zeros(()).sum(dim=0).shape == ()
    assert tg.zeros(1, 3, 1).squeeze().shape == (3,) and tg.zeros(2, 3).squeeze(0).shape == (2, 3)


def test_var_is_unbiased_by_default():
    x = tg.Tensor(np.array([1.0, 2.0, 4.0]))
    assert np.isclose(x.var().item(), np.var(x.numpy(), ddof=1))
    assert np.isclose(x.var(correction=0).item(), np.var(x.numpy()))


# ---- constructors -------------------------------------------------------------------------------
def test_constructors():
    checks = [
        (tg.zeros(2, 3), np.zeros((2, 3))), (tg.ones(2), np.ones(2)),
        (tg.full((2, 2), 7.0), np.full((2, 2), 7.0)), (tg.full(3, 1.5), np.full(3, 1.5)),
        (tg.eye(3), np.eye(3)), (tg.eye(2, 3), np.eye(2, 3)),
        (tg.arange(0.0, 1.0, 0.25), np.arange(0, 1, 0.25)),
    ]
    for t, want in checks:
        assert t.dtype == np.float32 and t.device == "cpu" and not t.requires_grad
        np.testing.assert_array_equal(t.numpy(), want)
    assert tg.arange(5).dtype == np.int64 and tg.arange(5).tolist() == [0, 1, 2, 3, 4]
    assert tg.zeros(2, dtype=np.float64).dtype == np.float64
    assert tg.ones(2, requires_grad=True).requires_grad


def test_like_constructors_copy_shape_dtype_and_device():
    x = tg.Tensor(np.zeros((2, 3)))
    for t in (tg.zeros_like(x), tg.ones_like(x), tg.full_like(x, 3.0), tg.randn_like(x),
              tg.rand_like(x)):
        assert t.shape == (2, 3) and t.dtype == np.float64 and t.device == "cpu"
    assert tg.full_like(x, 3.0).numpy().tolist() == [[3.0] * 3] * 2
    assert tg.zeros_like(x, dtype=np.float32).dtype == np.float32


def test_random_values_and_manual_seed():
    tg.manual_seed(123)
    a, u = tg.randn(1000), tg.rand(1000)
    tg.manual_seed(123)
    b, v = tg.randn(1000), tg.rand(1000)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(u.numpy(), v.numpy())
    assert not np.array_equal(a.numpy(), tg.randn(1000).numpy())  # the stream moves on
    assert abs(a.numpy().mean()) < 0.2 and 0.8 < a.numpy().std() < 1.2
    assert u.numpy().min() >= 0 and u.numpy().max() < 1
    assert a.dtype == u.dtype == np.float32


# ---- the cuda device without a GPU --------------------------------------------------------------
@pytest.mark.skipif(tg.cuda_available(), reason="this machine has CuPy and a GPU")
@pytest.mark.parametrize("make", [
    lambda: tg.Tensor([1.0], device="cuda"),
    lambda: tg.zeros(2, device="cuda"),
    lambda: tg.Tensor([1.0]).to("cuda"),
], ids=["Tensor", "zeros", "to"])
def test_cuda_without_gpu_says_what_is_missing(make):
    if importlib.util.find_spec("cupy") is None:
        missing = r"needs CuPy, which is not installed: pip install"
    else:
        missing = r"CuPy is installed but .*(no usable GPU|no GPU)"
    with pytest.raises(RuntimeError, match=missing):
        make()


def test_unknown_device():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        tg.zeros(2, device="tpu")
