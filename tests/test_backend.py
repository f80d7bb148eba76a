"""Devices without a GPU: what "cpu" and "cuda" mean, and the errors a CPU-only machine gives.

The GPU itself is tested in tests/gpu/ (skipped here). What does not need one is tested here:
device strings are checked, a missing CuPy and a missing GPU give different clear errors, data
stays NumPy on "cpu" through ops, gradients, layers and optimizers, and an op that mixes devices
names itself and both devices. A GPU array is played by a stand-in object that is not a NumPy
array, which is all ``Tensor.device`` and ``Function.apply`` look at.
"""
import sys
import types

import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.nn.functional as F
from tinygrad_edu import backend, nn, optim
from tinygrad_edu.backend import check_device, cuda_available, device_of, get_xp, to_device
from tinygrad_edu.tensor import Tensor

no_gpu = pytest.mark.skipif(cuda_available(), reason="this machine has CuPy and a GPU")
RNG = np.random.default_rng(0)


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


# ---- device strings --------------------------------------------------------------------------
@pytest.mark.parametrize("device, expected", [("cpu", "cpu"), ("cuda", "cuda"), ("cuda:0", "cuda")])
def test_device_strings_are_normalised(device, expected):
    assert check_device(device) == expected


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "gpu", "CUDA", "cuda:", "cudax", ""])
def test_unknown_device_strings_raise_a_value_error_naming_them(device):
    pattern = f"unknown device {device!r}"
    with pytest.raises(ValueError, match=pattern):
        check_device(device)
    with pytest.raises(ValueError, match=pattern):
        Tensor([1.0, 2.0], device=device)
    with pytest.raises(ValueError, match=pattern):
        tg.zeros(2, device=device)
    with pytest.raises(ValueError, match=pattern):
        nn.Linear(2, 2).to(device)
    with pytest.raises(ValueError, match=pattern):
        get_xp(device)


def test_another_gpu_index_is_refused_rather_than_ignored():
    with pytest.raises(ValueError, match="one GPU"):
        check_device("cuda:1")
    with pytest.raises(ValueError, match="one GPU"):
        Tensor([1.0]).to("cuda:1")


@pytest.mark.parametrize("target", ["tpu", "gpu", "floaty"])
def test_tensor_to_with_a_string_that_is_neither_device_nor_dtype(target):
    with pytest.raises(ValueError, match=f"{target!r} is neither a device"):
        Tensor([1.0]).to(target)
    with pytest.raises(ValueError, match="unknown device 'cuda:x'"):
        Tensor([1.0]).to("cuda:x")


def test_tensor_to_cpu_or_a_dtype_still_works():
    t = Tensor([1.0, 2.0])
    assert t.to("cpu") is t
    assert t.to("float64").dtype == np.float64 and t.to(np.float64).dtype == np.float64
    assert t.to("cpu", np.float64).dtype == np.float64


# ---- no CuPy or no GPU: clear errors -----------------------------------------------------------
@no_gpu
def test_cuda_without_a_gpu_raises_a_clear_error_everywhere(tmp_path):
    t = Tensor([1.0, 2.0], requires_grad=True)
    attempts = {
        "Tensor(device=)": lambda: Tensor([1.0], device="cuda"),
        "Tensor.to": lambda: t.to("cuda"),
        "Tensor.to('cuda:0')": lambda: t.to("cuda:0"),
        "zeros": lambda: tg.zeros(2, 3, device="cuda"),
        "randn": lambda: tg.randn(2, device="cuda"),
        "arange": lambda: tg.arange(3, device="cuda"),
        "get_xp": lambda: get_xp("cuda"),
        "to_device": lambda: to_device(np.ones(2), "cuda"),
    }
    tg.save({"w": np.ones(2, np.float32)}, tmp_path / "ckpt")
    attempts["load"] = lambda: tg.load(tmp_path / "ckpt", device="cuda")
    for name, attempt in attempts.items():
        with pytest.raises(RuntimeError, match="device 'cuda'.*CuPy") as info:
            attempt()
        assert "CuPy" in str(info.value), name
    assert not cuda_available()


@no_gpu
def test_module_to_cuda_without_a_gpu_fails_before_moving_anything():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    before = [t.data for t in model.parameters() + model.buffers()]
    with pytest.raises(RuntimeError, match="CuPy"):
        model.to("cuda")
    with pytest.raises(RuntimeError, match="CuPy"):
        model.cuda()
    after = [t.data for t in model.parameters() + model.buffers()]
    assert all(a is b for a, b in zip(before, after))
    with pytest.raises(RuntimeError, match="CuPy"):
        nn.ReLU().to("cuda")  # no tensors to move, the same error


@no_gpu
def test_a_foreign_gpu_array_needs_cupy_too():
    class GpuArray:  # what Numba's or PyTorch's GPU arrays show to us
        __cuda_array_interface__ = {"shape": (2,), "typestr": "<f4", "data": (0, False),
                                    "version": 3}
    with pytest.raises(RuntimeError, match="CuPy"):
        Tensor(GpuArray())


def _fresh_cupy(monkeypatch, module):
    """Make the next CuPy import see ``module`` (None: not installed)."""
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setitem(sys.modules, "cupy", module)


def test_missing_cupy_and_missing_gpu_give_different_messages(monkeypatch):
    _fresh_cupy(monkeypatch, None)  # `import cupy` raises ImportError
    with pytest.raises(RuntimeError, match="needs CuPy, which is not installed"):
        get_xp("cuda")
    assert not cuda_available()

    def fake_cupy(get_count):
        runtime = types.SimpleNamespace(getDeviceCount=get_count)
        return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime))

    _fresh_cupy(monkeypatch, fake_cupy(lambda: 0))
    with pytest.raises(RuntimeError, match="CuPy is installed but there is no GPU"):
        Tensor([1.0], device="cuda")

    def broken_driver():
        raise OSError("libcuda.so: cannot open shared object file")
    _fresh_cupy(monkeypatch, fake_cupy(broken_driver))
    with pytest.raises(RuntimeError, match="no usable GPU.*libcuda"):
        tg.zeros(1, device="cuda")
    assert not cuda_available()


# ---- "cpu" all the way through ---------------------------------------------------------------
def test_get_xp_and_device_of_say_numpy_for_host_data():
    for x in (np.ones(3), np.float32(1.0), np.float64(2.0), 1.0, 3, [1.0, 2.0], np.ones(()),
              Tensor([1.0]).data, "cpu"):
        assert get_xp(x) is np
    assert device_of(np.ones(2)) == "cpu"
    assert to_device(a := np.ones(2), "cpu") is a  # no copy when it is already there


def _all_ops(a, b, m, img, w, labels):
    """Every kind of op once, returned as a dict name -> Tensor."""
    x = img
    return {
        "add": a + b, "sub": a - 1.0, "mul": a * b, "div": a / (b * b + 1), "pow": (a * a + 1) ** b,
        "neg": -a, "exp": a.exp(), "log": (a * a + 1).log(), "sqrt": (a * a + 1).sqrt(),
        "abs": a.abs(), "tanh": a.tanh(), "sigmoid": a.sigmoid(), "relu": a.relu(),
        "maximum": tg.maximum(a, b), "minimum": tg.minimum(a, b), "clip": a.clip(-0.5, 0.5),
        "where": tg.where(a > b, a, b), "sum": a.sum(), "mean": a.mean(axis=0), "max": a.max(1).values, "amax": a.amax(1),
        "min": a.min(), "var": a.var(), "reshape": a.reshape(-1), "permute": m.permute(2, 0, 1),
        "transpose": a.T, "getitem": a[1:, [0, 0, 2]], "pad": a.pad((1, 1)),
        "cat": tg.cat([a, b]), "stack": tg.stack([a, b]), "expand": a[:1].expand(3, 4),
        "matmul": a @ b.T, "batched_matmul": m @ a.T, "double": a.double(),
        "conv2d": F.conv2d(x, w, padding=1), "max_pool2d": F.max_pool2d(x, 2, ceil_mode=True),
        "avg_pool2d": F.avg_pool2d(x, 2), "softmax": F.softmax(a), "log_softmax": F.log_softmax(a),
        "cross_entropy": F.cross_entropy(a, labels),
        "nll_loss": F.nll_loss(F.log_softmax(a), labels),
        "mse_loss": F.mse_loss(a, b), "bce": F.binary_cross_entropy(a.sigmoid(), b.sigmoid()),
        "bce_with_logits": F.binary_cross_entropy_with_logits(a, b.sigmoid()),
        "dropout": F.dropout(a, 0.5), "batch_norm": F.batch_norm(a, None, None, training=True),
    }


def test_cpu_propagates_through_every_op_and_its_gradients():
    a, b = (Tensor(randn(3, 4), requires_grad=True) for _ in range(2))
    m = Tensor(randn(2, 3, 4), requires_grad=True)
    img = Tensor(randn(2, 3, 5, 5), requires_grad=True)
    w = Tensor(randn(4, 3, 3, 3), requires_grad=True)
    labels = Tensor(np.array([0, 3, 1]))
    outputs = _all_ops(a, b, m, img, w, labels)
    for name, y in outputs.items():
        assert y.device == "cpu" and isinstance(y.data, np.ndarray), name
    total = sum((y.float().sum() for y in outputs.values()), Tensor(np.float32(0)))
    total.backward()
    for t in (a, b, m, img, w):
        assert t.grad.device == "cpu" and isinstance(t.grad.data, np.ndarray)
    assert (a > b).device == "cpu" and a.argmax(1).device == "cpu"


def test_layers_module_to_cpu_and_an_optimizer_stay_on_the_cpu():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(),
                          nn.MaxPool2d(2), nn.AvgPool2d(1), nn.Dropout(0.1), nn.Flatten(),
                          nn.Linear(8, 3))
    assert model.to("cpu") is model and model.cpu() is model
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss = F.cross_entropy(model(Tensor(randn(2, 1, 4, 4))), [0, 2])
    loss.backward()
    opt.step()
    assert loss.device == "cpu"
    for t in model.parameters() + model.buffers():
        assert t.device == "cpu" and isinstance(t.data, np.ndarray)
    for state in opt.state.values():
        assert all(isinstance(v, np.ndarray) for v in state.values() if hasattr(v, "shape"))


def test_creation_functions_default_to_and_accept_cpu():
    made = [tg.zeros(2), tg.ones(2, device="cpu"), tg.full((2,), 3.0, device="cpu"),
            tg.eye(2, device="cpu"), tg.arange(3, device="cpu"), tg.randn(2, device="cpu"),
            tg.rand(2, device="cpu"), tg.zeros_like(Tensor([1.0])), Tensor([1.0], device="cpu"),
            Tensor([1.0]).to("cpu")]
    assert all(t.device == "cpu" and isinstance(t.data, np.ndarray) for t in made)


# ---- mixing devices: a stand-in GPU array -----------------------------------------------------
class FakeGpuArray:
    """Not a NumPy array, so a Tensor holding it reports device "cuda". It has just what the
    checks before a forward pass look at; computing with it would fail."""

    def __init__(self, shape, dtype=np.float32):
        self.shape, self.dtype, self.ndim = tuple(shape), np.dtype(dtype), len(shape)
        self.size = int(np.prod(shape))


def fake_gpu_tensor(*shape):
    return Tensor._wrap(FakeGpuArray(shape))


@pytest.mark.parametrize("op, name", [
    (lambda a, g: a + g, "Add"), (lambda a, g: g * a, "Mul"), (lambda a, g: a - g, "Sub"),
    (lambda a, g: a / g, "Div"), (lambda a, g: a @ g, "MatMul"),
    (lambda a, g: tg.maximum(a, g), "Maximum"), (lambda a, g: tg.cat([a, g]), "Concatenate"),
])
def test_an_op_mixing_devices_names_itself_and_both_devices(op, name):
    a, g = Tensor(randn(3, 3), requires_grad=True), fake_gpu_tensor(3, 3)
    assert g.device == "cuda"
    pattern = rf"{name}: inputs are on different devices \((cpu, cuda|cuda, cpu)\)"
    with pytest.raises(ValueError, match=pattern):
        op(a, g)


def test_comparisons_and_in_place_ops_refuse_mixed_devices_too():
    a, g = Tensor(randn(3)), fake_gpu_tensor(3)
    with pytest.raises(ValueError, match="lt: tensors on different devices: cpu and cuda"):
        a < g
    with pytest.raises(ValueError, match=r"\+= on a tensor of shape \(3,\): .*\(cpu, cuda\)"):
        a += g
    with pytest.raises(ValueError, match=r"\*= on a tensor of shape \(3,\): .*\(cpu, cuda\)"):
        a *= g


def test_layers_on_the_cpu_refuse_an_input_from_another_device():
    with pytest.raises(ValueError, match=r"Linear: inputs are on different devices \(cuda, cpu, cpu\)"):
        nn.Linear(3, 2)(fake_gpu_tensor(4, 3))


def test_arrays_of_numpy_subclasses_are_on_the_cpu_and_mix_freely(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((2, 3), np.float32))
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")  # np.memmap, and its slices too
    t = Tensor(mapped)
    assert t.device == "cpu"
    np.testing.assert_array_equal((t[0] + Tensor(np.ones(3, np.float32))).numpy(), [2, 2, 2])
    np.testing.assert_array_equal((t @ Tensor(np.ones((3, 1), np.float32))).numpy(), [[3], [3]])
