"""The CUDA kernels on a real GPU, through CuPy, against the NumPy references (tests/refs.py).

Skipped unless CuPy imports and sees a GPU. Tolerances (float32 kernels vs float64 references):
im2col, max-pool forward and its argmax are copies and comparisons, so they must match exactly;
col2im and max-pool backward add a few float32 numbers per pixel: rtol 1e-5, atol 1e-6;
softmax cross-entropy: rtol 1e-5 plus atol = 8 float32 ulps of the largest logit (times |gy|
for the gradient), see refs.softmax_ce_tolerance.
"""
import numpy as np
import pytest

import refs as ref
from tinygrad_edu.backend import cuda_available

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA GPU")]

# (N, C, H, W), (kh, kw, sh, sw, ph, pw), ceil_mode
CASES = [
    ((2, 3, 7, 6), (3, 3, 1, 1, 1, 1), False),
    ((2, 4, 9, 9), (3, 2, 2, 3, 1, 0), True),
    ((1, 2, 5, 8), (2, 2, 2, 2, 0, 1), True),
    ((3, 16, 32, 32), (3, 3, 2, 2, 1, 1), False),
    ((1, 1, 4, 4), (1, 1, 3, 3, 0, 0), False),
]


@pytest.fixture(scope="module")
def cp():
    import cupy
    return cupy


@pytest.fixture(scope="module")
def ck():
    from tinygrad_edu.ops import cuda_kernels
    return cuda_kernels


def _data(shape, seed, ties=False):
    rng = np.random.default_rng(seed)
    if ties:
        return rng.integers(-2, 3, size=shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("shape, geometry, ceil_mode", CASES)
def test_im2col_and_col2im(cp, ck, shape, geometry, ceil_mode):
    x = _data(shape, 0)
    cols = ck.im2col(cp.asarray(x), *geometry)
    np.testing.assert_array_equal(cols.get(), ref.im2col(x, *geometry))
    g = _data(cols.shape, 1)
    dx = ck.col2im(cp.asarray(g), shape, *geometry)
    np.testing.assert_allclose(dx.get(), ref.col2im(g.astype(np.float64), shape, *geometry),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("shape, geometry, ceil_mode", CASES)
def test_maxpool(cp, ck, shape, geometry, ceil_mode, ties):
    x = _data(shape, 2, ties)
    kh, kw, sh, sw, ph, pw = geometry
    oh = ref.out_size(shape[2], kh, sh, ph, ceil_mode)
    ow = ref.out_size(shape[3], kw, sw, pw, ceil_mode)
    y, idx = ck.maxpool2d_forward(cp.asarray(x), *geometry, oh, ow)
    y_ref, idx_ref = ref.maxpool2d_forward(x, *geometry, oh, ow)
    np.testing.assert_array_equal(y.get(), y_ref)
    np.testing.assert_array_equal(idx.get(), idx_ref)
    gy = _data(y.shape, 3)
    dx = ck.maxpool2d_backward(cp.asarray(gy), idx, shape, *geometry)
    want = ref.maxpool2d_backward(gy.astype(np.float64), idx_ref, shape)
    np.testing.assert_allclose(dx.get(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e2, 1e4])
@pytest.mark.parametrize("n, k", [(1, 1), (7, 10), (1000, 3), (64, 1000)])
def test_softmax_ce(cp, ck, n, k, scale):
    rng = np.random.default_rng(4)
    logits = rng.uniform(-scale, scale, size=(n, k)).astype(np.float32)
    labels = rng.integers(0, k, size=n).astype(np.int64)
    gy = rng.uniform(-1, 1, size=n).astype(np.float32)
    loss, lse = ck.softmax_ce_forward(cp.asarray(logits), cp.asarray(labels))
    loss_ref, lse_ref = ref.softmax_ce_forward(logits, labels)
    tol = ref.softmax_ce_tolerance(logits)
    np.testing.assert_allclose(loss.get(), loss_ref, rtol=1e-5, atol=tol)
    np.testing.assert_allclose(lse.get(), lse_ref, rtol=1e-5, atol=tol)
    d = ck.softmax_ce_backward(cp.asarray(logits), cp.asarray(labels), lse, cp.asarray(gy))
    np.testing.assert_allclose(d.get(), ref.softmax_ce_backward(logits, labels, gy), rtol=1e-5,
                               atol=ref.softmax_ce_tolerance(logits, gy))


def test_grid_stride_loops_cover_everything(cp, ck, monkeypatch):
    # With the grid capped at 2 blocks of 256 threads each thread handles many elements.
    monkeypatch.setattr(ck, "MAX_BLOCKS", 2)
    shape, geometry, _ = CASES[3]
    x = _data(shape, 5)
    np.testing.assert_array_equal(ck.im2col(cp.asarray(x), *geometry).get(),
                                  ref.im2col(x, *geometry))
    y, idx = ck.maxpool2d_forward(cp.asarray(x), 2, 2, 2, 2, 0, 0, 16, 16)
    np.testing.assert_array_equal(idx.get(), ref.maxpool2d_forward(x, 2, 2, 2, 2, 0, 0, 16, 16)[1])
    logits = _data((3000, 5), 6)
    labels = np.zeros(3000, np.int64)
    loss, _ = ck.softmax_ce_forward(cp.asarray(logits), cp.asarray(labels))
    np.testing.assert_allclose(loss.get(), ref.softmax_ce_forward(logits, labels)[0], rtol=1e-5,
                               atol=1e-5)


def test_modules_are_compiled_once_per_file_and_device(cp, ck):
    x = cp.zeros((1, 1, 4, 4), cp.float32)
    ck.im2col(x, 2, 2, 1, 1, 0, 0)
    key = ("im2col.cu", cp.cuda.Device().id)
    module = ck._MODULES[key]
    ck.col2im(cp.zeros((9, 4), cp.float32), (1, 1, 4, 4), 2, 2, 1, 1, 0, 0)
    assert ck._MODULES[key] is module


@pytest.mark.skipif(not __debug__, reason="python -O removes asserts")
def test_preconditions_are_still_asserted_on_the_gpu(cp, ck):
    x = cp.zeros((1, 2, 4, 4), cp.float32)
    with pytest.raises(AssertionError, match="C-contiguous"):
        ck.im2col(x[..., ::2], 2, 2, 1, 1, 0, 0)
    with pytest.raises(TypeError, match="expects CuPy arrays"):
        ck.im2col(np.zeros((1, 2, 4, 4), np.float32), 2, 2, 1, 1, 0, 0)
    with pytest.raises(AssertionError, match="one label per row"):
        ck.softmax_ce_forward(cp.zeros((2, 3), cp.float32), cp.zeros(3, cp.int64))
