"""Every op on the GPU against the same op on the CPU: values, gradients, and where data lives.

Skipped unless CuPy imports and sees a GPU. Each case builds one graph from float32 inputs on
both devices, projects the output on fixed weights in [0.5, 1.5) and backpropagates; the CPU run
is the reference for the GPU run's output and for the gradient of every input. Float32
tolerances (one float32 ulp is ~1.2e-7 relative):

* ELEMENTWISE, rtol 1e-5 and atol 1e-6: one function per element; CUDA's exp, log, tanh and pow
  differ from the CPU's by a few ulps, and a gradient chains two or three of them.
* SUMMED, rtol 1e-4 and atol 1e-5: anything that adds many float32 terms (reductions, matmul,
  convolution, pooling and loss gradients, the gradient of a broadcast input): cuBLAS, CuPy's
  reductions and our CUDA kernels add in another order than NumPy and Numba. Inputs are O(1) and
  no sum here has more than a few hundred terms.
* exact: copies, comparisons, argmax and max-pooling's forward pass (a max is exact).
"""
import collections

import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.nn.functional as F
from tinygrad_edu.backend import cuda_available

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA GPU")]

GPU = "cuda"
ELEMENTWISE = dict(rtol=1e-5, atol=1e-6)
SUMMED = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def cp():
    import cupy
    return cupy


def assert_on_gpu(t, cp):
    """The tensor says "cuda" and really holds a CuPy array (no silent copy to the host)."""
    assert t.device == GPU and isinstance(t.data, cp.ndarray), (t.device, type(t.data))


def data(shape, kind="normal", seed=0):
    """float32 test inputs: "normal"; "positive" in [0.5, 2) for log, sqrt, pow; "away" with
    |x| in [0.2, 2) for functions with a kink at 0; "distinct" values at least 0.1 apart (no ties
    for max, min, maximum and max-pooling)."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if kind == "positive":
        x = rng.uniform(0.5, 2.0, n)
    elif kind == "away":
        x = rng.choice([-1.0, 1.0], n) * rng.uniform(0.2, 2.0, n)
    elif kind == "distinct":
        x = (rng.permutation(n) - n / 2) * 0.1 + rng.uniform(-0.02, 0.02, n)
    else:
        x = rng.standard_normal(n)
    return x.reshape(shape).astype(np.float32)


def run(fn, arrays, device):
    """fn on Tensors made from ``arrays`` on ``device``; returns (output, input gradients)."""
    xs = [tg.Tensor(a, requires_grad=True, device=device) for a in arrays]
    y = fn(*xs)
    weights = np.random.default_rng(99).uniform(0.5, 1.5, y.shape).astype(y.dtype)
    (y * tg.Tensor(weights, device=device)).sum().backward()
    return y, [x.grad for x in xs]


def compare(fn, arrays, tol, cp):
    y_cpu, grads_cpu = run(fn, arrays, "cpu")
    y_gpu, grads_gpu = run(fn, arrays, GPU)
    assert_on_gpu(y_gpu, cp)
    assert y_gpu.shape == y_cpu.shape and y_gpu.dtype == y_cpu.dtype
    np.testing.assert_allclose(y_gpu.numpy(), y_cpu.numpy(), **tol, err_msg="forward")
    for i, (g_gpu, g_cpu) in enumerate(zip(grads_gpu, grads_cpu)):
        assert_on_gpu(g_gpu, cp)
        np.testing.assert_allclose(g_gpu.numpy(), g_cpu.numpy(), **tol,
                                   err_msg=f"gradient of input {i}")


# ---- the op table: (id, function of Tensors, inputs as (shape, kind), tolerance) ----------------
A, B = ((3, 4), "normal"), ((3, 4), "positive")
CORE = [
    ("add_broadcast", lambda a, b: a + b, [((2, 3, 4), "normal"), ((3, 1), "normal")], SUMMED),
    ("sub", lambda a, b: a - b, [A, A], ELEMENTWISE),
    ("mul_broadcast", lambda a, b: a * b, [((2, 3, 4), "normal"), ((4,), "normal")], SUMMED),
    ("div", lambda a, b: a / b, [A, B], ELEMENTWISE),
    ("pow", lambda a, b: a ** b, [B, A], ELEMENTWISE),
    ("scalars", lambda a: (2.5 * a - 1.0) / 3.0 + a ** 2, [A], ELEMENTWISE),
    ("neg", lambda a: -a, [A], ELEMENTWISE),
    ("exp", lambda a: a.exp(), [A], ELEMENTWISE),
    ("log", lambda a: a.log(), [B], ELEMENTWISE),
    ("sqrt", lambda a: a.sqrt(), [B], ELEMENTWISE),
    ("abs", lambda a: a.abs(), [((3, 4), "away")], ELEMENTWISE),
    ("tanh", lambda a: a.tanh(), [A], ELEMENTWISE),
    ("sigmoid", lambda a: a.sigmoid(), [A], ELEMENTWISE),
    ("relu", lambda a: a.relu(), [((3, 4), "away")], ELEMENTWISE),
    ("maximum", lambda a, b: tg.maximum(a, b), [((3, 4), "distinct"), A], ELEMENTWISE),
    ("minimum", lambda a, b: tg.minimum(a, b), [((3, 4), "distinct"), A], ELEMENTWISE),
    ("clip", lambda a: a.clip(-0.5, 0.5), [((4, 5), "distinct")], ELEMENTWISE),
    ("where", lambda a, b: tg.where(a > b, a, b * 2), [A, A], ELEMENTWISE),
    ("sum", lambda a: a.sum(), [((5, 6), "normal")], SUMMED),
    ("sum_axes", lambda a: a.sum(axis=(0, 2), keepdims=True), [((3, 4, 5), "normal")], SUMMED),
    ("mean", lambda a: a.mean(dim=-1), [((3, 4, 5), "normal")], SUMMED),
    ("max_axis", lambda a: a.max(axis=1), [((3, 7), "distinct")], SUMMED),
    ("min_all", lambda a: a.min(), [((3, 7), "distinct")], SUMMED),
    ("var", lambda a: a.var(axis=0), [((6, 4), "normal")], SUMMED),
    ("reshape", lambda a: a.reshape(4, 3) * 1.5, [A], ELEMENTWISE),
    ("permute", lambda a: a.permute(2, 0, 1), [((2, 3, 4), "normal")], ELEMENTWISE),
    ("transpose_T", lambda a: a.transpose(0, 1) + a.T, [((4, 4), "normal")], ELEMENTWISE),
    ("flatten_squeeze", lambda a: a.unsqueeze(0).flatten(1).squeeze(0), [A], ELEMENTWISE),
    ("getitem_slices", lambda a: a[::-1, 1:3], [A], ELEMENTWISE),
    ("getitem_repeats", lambda a: a[[0, 2, 0, 0]], [A], ELEMENTWISE),  # add.at on the GPU
    ("getitem_mask", lambda a: a[a.detach() > 0], [A], ELEMENTWISE),
    ("pad", lambda a: a.pad((1, 2, 0, 1), value=0.5), [A], ELEMENTWISE),
    ("cat", lambda a, b: tg.cat([a, b], dim=1), [A, B], ELEMENTWISE),
    ("stack", lambda a, b: tg.stack([a, b], axis=-1), [A, A], ELEMENTWISE),
    ("expand", lambda a: a.expand(2, 3, 4), [((3, 1), "normal")], SUMMED),
    ("cast", lambda a: a.double().exp().float(), [A], ELEMENTWISE),
    ("matmul", lambda a, b: a @ b, [((5, 7), "normal"), ((7, 3), "normal")], SUMMED),
    ("matmul_batched", lambda a, b: a @ b, [((2, 5, 7), "normal"), ((7, 3), "normal")], SUMMED),
    ("matmul_vectors", lambda a, b: (a @ b) @ a, [((7,), "normal"), ((7, 7), "normal")], SUMMED),
]

LABELS = np.array([0, 3, 1, 4, 4, 2])  # NumPy labels are copied to the logits' device
IMG = ((2, 3, 9, 8), "normal")
NN = [
    ("linear", lambda x, w, b: F.linear(x, w, b),
     [((6, 5), "normal"), ((4, 5), "normal"), ((4,), "normal")], SUMMED),
    ("conv2d", lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
     [IMG, ((4, 3, 3, 2), "normal"), ((4,), "normal")], SUMMED),
    ("conv2d_plain", lambda x, w: F.conv2d(x, w), [IMG, ((5, 3, 1, 1), "normal")], SUMMED),
    ("max_pool2d", lambda x: F.max_pool2d(x, 2, ceil_mode=True), [((2, 3, 9, 8), "distinct")],
     SUMMED),
    ("max_pool2d_overlap", lambda x: F.max_pool2d(x, 3, stride=2, padding=1),
     [((2, 3, 9, 8), "distinct")], SUMMED),
    ("avg_pool2d", lambda x: F.avg_pool2d(x, 3, stride=2, ceil_mode=True,
                                          count_include_pad=False), [IMG], SUMMED),
    ("cross_entropy", lambda z: F.cross_entropy(z, LABELS), [((6, 5), "normal")], SUMMED),
    ("cross_entropy_sum", lambda z: F.cross_entropy(z * 30, LABELS, reduction="sum"),
     [((6, 5), "normal")], SUMMED),
    ("cross_entropy_none", lambda z: F.cross_entropy(z, LABELS, reduction="none"),
     [((6, 5), "normal")], SUMMED),
    ("nll_log_softmax", lambda z: F.nll_loss(F.log_softmax(z), LABELS), [((6, 5), "normal")],
     SUMMED),
    ("softmax", lambda z: F.softmax(z, dim=0), [((6, 5), "normal")], SUMMED),
    ("mse_loss", lambda a, b: F.mse_loss(a, b), [A, A], SUMMED),
    ("bce", lambda a, b: F.binary_cross_entropy(a.sigmoid(), b.sigmoid()), [A, A], SUMMED),
    ("bce_with_logits", lambda a, b: F.binary_cross_entropy_with_logits(a, b.sigmoid()),
     [A, A], SUMMED),
    ("batch_norm", lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
     [IMG, ((3,), "positive"), ((3,), "normal")], SUMMED),
    ("flatten_linear", lambda x, w: F.linear(F.flatten(x, 1), w), [IMG, ((2, 216), "normal")],
     SUMMED),
]


@pytest.mark.parametrize("fn, inputs, tol", [c[1:] for c in CORE], ids=[c[0] for c in CORE])
def test_core_op_matches_cpu(fn, inputs, tol, cp):
    compare(fn, [data(shape, kind, seed=i) for i, (shape, kind) in enumerate(inputs)], tol, cp)


@pytest.mark.parametrize("fn, inputs, tol", [c[1:] for c in NN], ids=[c[0] for c in NN])
def test_nn_function_matches_cpu(fn, inputs, tol, cp):
    compare(fn, [data(shape, kind, seed=i) for i, (shape, kind) in enumerate(inputs)], tol, cp)


def test_float64_graphs_run_on_the_gpu_too(cp):
    """Ops without a hand-written kernel run in float64 as well (cross_entropy then takes the
    CuPy path instead of the float32 kernel); the two devices then agree to float64 rounding."""
    def fn(a, b):
        return F.cross_entropy((a @ b).tanh() * 3, LABELS) + (a.exp().sum() / b.abs().sum())
    arrays = [data((6, 4), seed=1).astype(np.float64), data((4, 5), seed=2).astype(np.float64)]
    compare(fn, arrays, dict(rtol=1e-10, atol=1e-12), cp)


def test_gradcheck_on_the_gpu_in_float64(cp):
    x = tg.Tensor(data((3, 4), seed=3).astype(np.float64), requires_grad=True, device=GPU)
    w = tg.Tensor(data((4, 2), seed=4).astype(np.float64), requires_grad=True, device=GPU)
    assert tg.gradcheck(lambda x, w: ((x @ w).sigmoid() * x.sum(axis=1, keepdims=True)), [x, w])
    assert tg.gradgradcheck(lambda x: (x * x).tanh().sum(axis=0), [x])


def test_second_derivatives_match_cpu(cp):
    """create_graph=True through elementwise ops, matmul and conv2d (im2col/col2im kernels)."""
    def second(device):
        x = tg.Tensor(data((2, 2, 5, 5), seed=5), requires_grad=True, device=device)
        # small weights keep tanh away from saturation, where 1 - tanh^2 cancels badly
        w = tg.Tensor(data((3, 2, 3, 3), seed=6) * 0.3, requires_grad=True, device=device)
        y = (F.conv2d(x, w, padding=1).tanh() ** 2).sum()
        gx, = tg.grad(y, [x], create_graph=True)
        (gx * gx).sum().backward()
        return x.grad, w.grad
    for got, want in zip(second(GPU), second("cpu")):
        assert_on_gpu(got, cp)
        np.testing.assert_allclose(got.numpy(), want.numpy(), **SUMMED)


def test_exact_results_are_exact(cp):
    a, b = data((4, 6), "distinct", seed=7), data((4, 6), seed=8)
    ga, gb = tg.Tensor(a, device=GPU), tg.Tensor(b, device=GPU)
    for name in ("__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"):
        got = getattr(ga, name)(gb)
        assert_on_gpu(got, cp)
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got.numpy(), getattr(a, name)(b))
    np.testing.assert_array_equal(ga.argmax(1).numpy(), a.argmax(1))
    np.testing.assert_array_equal(ga.argmin(axis=0, keepdims=True).numpy(),
                                  a.argmin(axis=0, keepdims=True))
    x = data((2, 3, 9, 8), seed=9)
    pooled = F.max_pool2d(tg.Tensor(x, device=GPU), 2, ceil_mode=True)
    reference = F.max_pool2d(tg.Tensor(x), 2, ceil_mode=True)
    np.testing.assert_array_equal(pooled.numpy(), reference.numpy())


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

    x = tg.Tensor(data((2, 3, 8, 8), seed=10), requires_grad=True, device=GPU)
    w = tg.Tensor(data((4, 3, 3, 3), seed=11), requires_grad=True, device=GPU)
    labels = tg.Tensor(np.array([5, 60]), device=GPU)
    y = F.max_pool2d(F.conv2d(x, w, padding=1).relu(), 2, ceil_mode=True)  # (2, 4, 4, 4)
    F.cross_entropy(y.reshape(2, -1), labels).backward()
    assert dict(calls) == {name: 1 for name in KERNELS}
    assert_on_gpu(x.grad, cp)
    assert_on_gpu(w.grad, cp)


def test_kernel_launchers_check_their_inputs_before_launching(cp):
    from tinygrad_edu.ops import cuda_kernels
    with pytest.raises(TypeError, match="im2col: x must be float32"):
        cuda_kernels.im2col(cp.zeros((1, 1, 4, 4), cp.float64), 3, 3, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="C-contiguous"):
        cuda_kernels.maxpool2d_forward(cp.zeros((1, 1, 4, 8), cp.float32)[..., ::2],
                                       2, 2, 2, 2, 0, 0, 2, 2)
    with pytest.raises(ValueError, match="one label per row"):
        cuda_kernels.softmax_ce_forward(cp.zeros((3, 4), cp.float32), cp.zeros(2, cp.int64))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        cuda_kernels.softmax_ce_forward(cp.zeros((2, 4), cp.float32), cp.array([0, 4]))
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
    x = tg.Tensor(data((3,), seed=12), requires_grad=True)
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
    x = tg.Tensor(data((200, 100), "positive", seed=13), requires_grad=True, device=GPU)
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
