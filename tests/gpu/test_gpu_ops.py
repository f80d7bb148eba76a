"""Every op of the op table (tests/op_table.py) on the GPU against the same op on the CPU:
values, gradients, and where data lives.

Skipped unless CuPy imports and sees a GPU. Each row's cases are drawn by Hypothesis as on the
CPU (tests/core/test_ops_forward_backward.py, which checks the CPU against NumPy and central
differences), converted to float32, and run on both devices: one graph, the output projected
on fixed weights in [0.5, 1.5), backpropagated; the CPU run is the reference for the GPU run's
output and for the gradient of every input, within the row's tolerance class (ELEMENTWISE,
SUMMED or EXACT, explained in op_table.py). Every output and gradient must be a CuPy array.
"""
import collections

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_edu as tg
import tinygrad_edu.nn.functional as F
from tinygrad_edu.backend import cuda_available
from tinygrad_edu.ops.elementwise import Tanh

from op_table import ELEMENTWISE, NN_OPS, OPS, SUMMED, Case, ids, sigmoid_ref

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA GPU")]

GPU = "cuda"
EXAMPLES = settings(max_examples=10)  # per row; the CPU side draws 25 of the same cases


@pytest.fixture(scope="module")
def cp():
    import cupy
    return cupy


def assert_on_gpu(t, cp):
    """The tensor says "cuda" and really holds a CuPy array (no silent copy to the host)."""
    assert t.device == GPU and isinstance(t.data, cp.ndarray), (t.device, type(t.data))


def sample(shape, kind="normal", seed=0):
    """float32 inputs for the tests below the table: "normal", or "positive" in [0.5, 2)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 2.0, shape) if kind == "positive" else rng.standard_normal(shape)
    return x.astype(np.float32)


def run(fn, case, device, dtype):
    """fn on the case's arrays as Tensors on ``device`` (floats as ``dtype``), its output
    projected on fixed weights and backpropagated; returns (output, input gradients)."""
    xs = [tg.Tensor(a.astype(dtype) if a.dtype.kind == "f" else a, device=device,
                    requires_grad=g and a.dtype.kind == "f")
          for a, g in zip(case.arrays, case.requires_grad)]
    y = fn(*xs, **case.params)
    if y.requires_grad:
        weights = np.random.default_rng(99).uniform(0.5, 1.5, y.shape).astype(y.dtype)
        (y * tg.Tensor(weights, device=device)).sum().backward()
    return y, [x.grad for x in xs]


def compare(fn, case, tol, cp, dtype=np.float32):
    y_cpu, grads_cpu = run(fn, case, "cpu", dtype)
    y_gpu, grads_gpu = run(fn, case, GPU, dtype)
    assert_on_gpu(y_gpu, cp)
    assert (y_gpu.shape, y_gpu.dtype) == (y_cpu.shape, y_cpu.dtype)
    assert y_gpu.requires_grad == y_cpu.requires_grad
    if y_cpu.dtype.kind != "f":  # comparisons, argmax: exact, and no graph
        assert y_gpu.grad_fn is None
        np.testing.assert_array_equal(y_gpu.numpy(), y_cpu.numpy(), err_msg="forward")
        return
    np.testing.assert_allclose(y_gpu.numpy(), y_cpu.numpy(), **tol, err_msg="forward")
    for i, (g_gpu, g_cpu) in enumerate(zip(grads_gpu, grads_cpu)):
        if g_cpu is None:  # a constant input
            assert g_gpu is None, f"input {i}"
            continue
        assert_on_gpu(g_gpu, cp)
        assert (g_gpu.shape, g_gpu.dtype) == (g_cpu.shape, g_cpu.dtype)
        np.testing.assert_allclose(g_gpu.numpy(), g_cpu.numpy(), **tol,
                                   err_msg=f"gradient of input {i}")


@pytest.mark.parametrize("op", OPS, ids=ids(OPS))
@EXAMPLES
@given(data=st.data())
def test_op_matches_cpu(op, data, cp):
    compare(op.fn, data.draw(op.cases("gpu")), op.tol, cp)


@pytest.mark.parametrize("op", NN_OPS, ids=ids(NN_OPS))
@EXAMPLES
@given(data=st.data())
def test_nn_function_matches_cpu(op, data, cp):
    compare(op.fn, data.draw(op.cases("gpu")), op.tol, cp)


# ---- negative controls: the comparison can fail ---------------------------------------------
class TanhWrongOnTheGPU(Tanh):
    """Tanh whose gradient is 10% too large on the GPU only."""
    def backward(ctx, gy, y):
        return super().backward(gy, y) * (1.1 if gy.device == GPU else 1.0)


CASE = Case((np.linspace(-1, 1, 6).reshape(2, 3),), (True,), {})


def test_comparison_catches_a_wrong_gpu_gradient(cp):
    compare(Tanh.apply, CASE, ELEMENTWISE, cp)
    with pytest.raises(AssertionError, match="gradient of input 0"):
        compare(TanhWrongOnTheGPU.apply, CASE, ELEMENTWISE, cp)


def test_comparison_catches_data_that_left_the_gpu(cp):
    with pytest.raises(AssertionError, match="cpu"):
        compare(lambda x: x.to("cpu").tanh(), CASE, ELEMENTWISE, cp)


# ---- what a table row cannot say ---------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_stable_for_large_inputs(dtype, cp):
    x = tg.Tensor(np.array([-1000, -30, -1, 0, 1, 30, 1000], dtype=dtype), requires_grad=True,
                  device=GPU)
    y = x.sigmoid()
    y.sum().backward()
    assert_on_gpu(y, cp)
    want = sigmoid_ref(x.numpy().astype(np.float64))
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), want * (1 - want), rtol=1e-5, atol=1e-12)
    assert y.numpy()[0] == 0 and y.numpy()[-1] == 1


def test_float64_graphs_run_on_the_gpu_too(cp):
    """Ops without a hand-written kernel run in float64 as well (cross_entropy then takes the
    CuPy path instead of the float32 kernel); the two devices then agree to float64 rounding."""
    def fn(a, b, labels):
        return F.cross_entropy((a @ b).tanh() * 3, labels) + (a.exp().sum() / b.abs().sum())
    case = Case((sample((6, 4), seed=1), sample((4, 5), seed=2), np.array([0, 3, 1, 4, 4, 2])),
                (True, True, False), {})
    compare(fn, case, dict(rtol=1e-10, atol=1e-12), cp, dtype=np.float64)


def test_gradcheck_on_the_gpu_in_float64(cp):
    x = tg.Tensor(sample((3, 4), seed=3).astype(np.float64), requires_grad=True, device=GPU)
    w = tg.Tensor(sample((4, 2), seed=4).astype(np.float64), requires_grad=True, device=GPU)
    assert tg.gradcheck(lambda x, w: ((x @ w).sigmoid() * x.sum(axis=1, keepdims=True)), [x, w])
    assert tg.gradgradcheck(lambda x: (x * x).tanh().sum(axis=0), [x])


def test_second_derivatives_match_cpu(cp):
    """create_graph=True through elementwise ops, matmul and conv2d (im2col/col2im kernels)."""
    def second(device):
        x = tg.Tensor(sample((2, 2, 5, 5), seed=5), requires_grad=True, device=device)
        # small weights keep tanh away from saturation, where 1 - tanh^2 cancels badly
        w = tg.Tensor(sample((3, 2, 3, 3), seed=6) * 0.3, requires_grad=True, device=device)
        y = (F.conv2d(x, w, padding=1).tanh() ** 2).sum()
        gx, = tg.grad(y, [x], create_graph=True)
        (gx * gx).sum().backward()
        return x.grad, w.grad
    for got, want in zip(second(GPU), second("cpu")):
        assert_on_gpu(got, cp)
        np.testing.assert_allclose(got.numpy(), want.numpy(), **SUMMED)


MAX_POOL = next(op for op in NN_OPS if op.id == "max_pool2d")


@EXAMPLES
@given(data=st.data())
def test_max_pool2d_forward_is_exact(data, cp):
    """A max picks one of its inputs: the GPU's forward equals the CPU's to the bit."""
    case = data.draw(MAX_POOL.cases("gpu"))
    x = case.arrays[0].astype(np.float32)
    pooled = MAX_POOL.fn(tg.Tensor(x, device=GPU), **case.params)
    assert_on_gpu(pooled, cp)
    np.testing.assert_array_equal(pooled.numpy(), MAX_POOL.fn(tg.Tensor(x), **case.params).numpy())


# ---- the CUDA kernels are the ones that run --------------------------------------------------
KERNELS = ("im2col", "col2im", "maxpool2d_forward", "maxpool2d_backward", "softmax_ce_forward",
           "softmax_ce_backward")


def test_conv_pool_and_cross_entropy_run_the_cuda_kernels(monkeypatch, cp):
    from tinygrad_edu.ops import cpu_kernels, cuda_kernels
    calls = collections.Counter()
    for name in KERNELS:
        def counted(*args, _real=getattr(cuda_kernels, name), _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)
        monkeypatch.setattr(cuda_kernels, name, counted)
    for name in KERNELS[:4]:
        def refused(*args, _name=name, **kwargs):
            raise AssertionError(f"cpu_kernels.{_name} called for GPU data")
        monkeypatch.setattr(cpu_kernels, name, refused)

    x = tg.Tensor(sample((2, 3, 8, 8), seed=10), requires_grad=True, device=GPU)
    w = tg.Tensor(sample((4, 3, 3, 3), seed=11), requires_grad=True, device=GPU)
    labels = tg.Tensor(np.array([5, 60]), device=GPU)
    y = F.max_pool2d(F.conv2d(x, w, padding=1).relu(), 2, ceil_mode=True)  # (2, 4, 4, 4)
    F.cross_entropy(y.reshape(2, -1), labels).backward()
    assert dict(calls) == {name: 1 for name in KERNELS}
    assert_on_gpu(x.grad, cp)
    assert_on_gpu(w.grad, cp)


def test_kernel_launchers_assert_their_preconditions_before_launching(cp):
    """nn.functional validates user input; a launcher given what no caller should pass stops on
    an assert instead of letting the raw kernel read out of bounds."""
    from tinygrad_edu.ops import cuda_kernels
    with pytest.raises(AssertionError, match="im2col: x must be a C-contiguous 4-D float32"):
        cuda_kernels.im2col(cp.zeros((1, 1, 4, 4), cp.float64), 3, 3, 1, 1, 1, 1)
    with pytest.raises(AssertionError, match="C-contiguous"):
        cuda_kernels.maxpool2d_forward(cp.zeros((1, 1, 4, 8), cp.float32)[..., ::2],
                                       2, 2, 2, 2, 0, 0, 2, 2)
    with pytest.raises(AssertionError, match="one label per row"):
        cuda_kernels.softmax_ce_forward(cp.zeros((3, 4), cp.float32), cp.zeros(2, cp.int64))
    with pytest.raises(TypeError, match="CuPy arrays"):
        cuda_kernels.im2col(np.zeros((1, 1, 4, 4), np.float32), 3, 3, 1, 1, 1, 1)


# ---- creation, transfers, randomness ----------------------------------------------------------
def test_constructors_make_gpu_tensors(cp):
    made = {"Tensor(list)": tg.Tensor([1.0, 2.0], device=GPU),
            "Tensor(numpy)": tg.Tensor(np.ones((2, 2)), device="cuda:0"),
            "zeros": tg.zeros(2, 3, device=GPU), "ones": tg.ones((2,), device=GPU),
            "full": tg.full((2,), 3.0, device=GPU), "eye": tg.eye(3, device=GPU),
            "arange": tg.arange(4, device=GPU), "randn": tg.randn(2, 3, device=GPU),
            "rand": tg.rand(5, device=GPU), "zeros_like": tg.zeros_like(tg.ones(2, device=GPU)),
            "randn_like": tg.randn_like(tg.ones(2, device=GPU))}
    for name, t in made.items():
        assert_on_gpu(t, cp)
    assert made["Tensor(list)"].dtype == np.float32 and made["arange"].dtype == np.int64
    assert made["Tensor(numpy)"].dtype == np.float64  # an array keeps its dtype
    array = cp.arange(3, dtype=cp.float32)
    assert tg.Tensor(array).data.data.ptr == array.data.ptr  # a CuPy array is used, not copied


def test_explicit_transfers_and_a_gradient_across_devices(cp):
    x = tg.Tensor(sample((3,), seed=12), requires_grad=True)
    y = x.to(GPU)
    assert_on_gpu(y, cp)
    assert x.to("cpu") is x and y.to(GPU) is y
    (y * 2.0).sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])
    assert isinstance(y.numpy(), np.ndarray) and isinstance(y.sum().item(), float)
    assert y.tolist() == x.tolist()
    assert "device='cuda'" in repr(y)


def test_seeded_randomness_is_reproducible_on_the_gpu(cp):
    tg.manual_seed(3)
    a, mask_a = tg.randn(100, device=GPU), F.dropout(tg.ones(100, device=GPU), 0.5)
    tg.manual_seed(3)
    b, mask_b = tg.randn(100, device=GPU), F.dropout(tg.ones(100, device=GPU), 0.5)
    assert_on_gpu(mask_a, cp)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(mask_a.numpy(), mask_b.numpy())


def test_dropout_on_the_gpu(cp):
    """GPU and CPU draw from different generators, so compare the rule, not the values."""
    x = tg.Tensor(sample((200, 100), "positive", seed=13), requires_grad=True, device=GPU)
    y = F.dropout(x, 0.3)
    y.sum().backward()
    assert_on_gpu(y, cp)
    assert_on_gpu(x.grad, cp)
    kept = y.numpy() != 0
    assert abs(kept.mean() - 0.7) < 0.02  # 20,000 draws: the standard deviation is 0.003
    np.testing.assert_allclose(y.numpy()[kept], x.numpy()[kept] / 0.7, rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), kept / np.float32(0.7), rtol=1e-6)
    assert F.dropout(x, 0.3, training=False) is x


def test_init_fills_gpu_parameters_in_place(cp):
    layer = tg.nn.Linear(300, 200).to(GPU)
    weight = layer.weight.data
    tg.nn.init.kaiming_normal_(layer.weight)
    assert layer.weight.data is weight and isinstance(weight, cp.ndarray)
    assert abs(float(weight.std()) - np.sqrt(2 / 300)) < 0.01
