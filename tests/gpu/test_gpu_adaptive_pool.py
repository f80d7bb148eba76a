"""Adaptive pooling and frozen parameters on the GPU, against the same code on the CPU.

Skipped unless CuPy imports and sees a GPU. The op table's adaptive rows (tests/op_table.py)
also run through tests/gpu/test_gpu_ops.py; this file adds the fixed cases of both paths (the
divisible one through the CUDA max-pool and im2col kernels in float32, the general loop in
float64 and for windows that overlap), the indices, and a fine-tuning step with a frozen body.
"""
import collections

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import nn, optim
from tinygrad_edu.backend import cuda_available
from tinygrad_edu.nn import functional as F

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA GPU")]

GPU = "cuda"
POOLS = {"avg": F.adaptive_avg_pool2d, "max": F.adaptive_max_pool2d}
# (input shape, output size): divisible (7x7 -> 7x7, 14x14 -> 7x7, 7x7 -> 1x1), overlapping,
# O > H, None, a (C, H, W) input
CASES = [((2, 3, 7, 7), 7), ((2, 4, 14, 14), (7, 7)), ((3, 5, 7, 7), 1), ((2, 3, 5, 7), (3, 4)),
         ((1, 2, 3, 2), (5, 4)), ((2, 2, 6, 5), (None, 3)), ((3, 9, 6), (4, 4))]
SUMMED = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def cp():
    import cupy
    return cupy


def run(kind, x, out, device):
    t = tg.Tensor(x, requires_grad=True, device=device)
    y = POOLS[kind](t, out)
    weights = np.random.default_rng(1).uniform(0.5, 1.5, y.shape).astype(x.dtype)
    (y * tg.Tensor(weights, device=device)).sum().backward()
    return y, t.grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, out", CASES)
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_gpu_matches_cpu(kind, shape, out, dtype, cp):
    # a permutation: no ties, so both devices pick the same maximum
    n = int(np.prod(shape))
    x = (np.random.default_rng(0).permutation(n).reshape(shape) / n).astype(dtype)
    y_gpu, g_gpu = run(kind, x, out, GPU)
    y_cpu, g_cpu = run(kind, x, out, "cpu")
    for got in (y_gpu, g_gpu):
        assert got.device == GPU and isinstance(got.data, cp.ndarray)
    assert (y_gpu.shape, y_gpu.dtype) == (y_cpu.shape, y_cpu.dtype)
    if kind == "max":  # a max picks one of its inputs: equal to the bit
        np.testing.assert_array_equal(y_gpu.numpy(), y_cpu.numpy())
        _, idx_gpu = F.adaptive_max_pool2d(tg.Tensor(x, device=GPU), out, return_indices=True)
        _, idx_cpu = F.adaptive_max_pool2d(tg.Tensor(x), out, return_indices=True)
        assert isinstance(idx_gpu.data, cp.ndarray) and idx_gpu.dtype == np.int64
        np.testing.assert_array_equal(idx_gpu.numpy(), idx_cpu.numpy())
    else:
        np.testing.assert_allclose(y_gpu.numpy(), y_cpu.numpy(), **SUMMED)
    np.testing.assert_allclose(g_gpu.numpy(), g_cpu.numpy(), **SUMMED)


def test_the_divisible_float32_case_runs_the_cuda_kernels(monkeypatch, cp):
    from tinygrad_edu.ops import cuda_kernels
    calls = collections.Counter()
    for name in ("maxpool2d_forward", "maxpool2d_backward", "im2col"):
        def counted(*args, _real=getattr(cuda_kernels, name), _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)
        monkeypatch.setattr(cuda_kernels, name, counted)
    x = np.random.default_rng(2).standard_normal((2, 3, 14, 14)).astype(np.float32)
    for kind in POOLS:
        run(kind, x, 7, GPU)
    assert calls["maxpool2d_forward"] == 1 and calls["maxpool2d_backward"] == 1
    assert calls["im2col"] >= 1
    calls.clear()
    for kind in POOLS:  # 5 into 3: overlapping windows, the general path, no pooling kernel
        run(kind, x[..., :5, :5], 3, GPU)
    assert calls["maxpool2d_forward"] == 0 and calls["maxpool2d_backward"] == 0


def test_a_frozen_body_on_the_gpu_stays_as_it_is(cp):
    tg.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2))
    head = nn.Sequential(nn.Flatten(), nn.Linear(16, 5))
    net = nn.Sequential(body, head).to(GPU)
    body.requires_grad_(False)
    frozen = [p.numpy().copy() for p in body.parameters()]
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    x = tg.Tensor(np.random.default_rng(3).standard_normal((4, 3, 9, 9)).astype(np.float32),
                  device=GPU)
    labels = tg.Tensor(np.array([0, 1, 4, 2]), device=GPU)
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(net(x), labels).backward()
        opt.step()
    assert all(p.grad is None for p in body.parameters())
    assert all(isinstance(p.grad.data, cp.ndarray) for p in head.parameters())
    for p, old in zip(body.parameters(), frozen):
        np.testing.assert_array_equal(p.numpy(), old)
