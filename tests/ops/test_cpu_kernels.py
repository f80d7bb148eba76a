"""The CPU kernels (tinygrad_edu/ops/cpu_kernels.py) against slow, obviously-correct loops.

Every kernel runs four ways: the NumPy path, the parallel Numba build, the same loops as plain
serial Python (``jit=False``, the reference for the parallel build) and the public dispatch.
Shapes, geometry (ceil_mode included) and dtypes are drawn by hypothesis; the data are often
small integers, so that ties (and the first-max rule) are common.
"""
import itertools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinygrad_edu.ops import cpu_kernels as ck

FAST = settings(deadline=None, max_examples=40)
DTYPES = st.sampled_from([np.float32, np.float64])
TOL = {np.float32: 1e-5, np.float64: 1e-12}


# ---- references: one scalar loop per definition ---------------------------------------------

def out_size(size, k, s, p, ceil_mode=False):
    """Output length of a window sweep; ceil_mode as PyTorch: keep a partial last window,
    unless it would start in the right padding."""
    if not ceil_mode:
        return (size + 2 * p - k) // s + 1
    out = -(-(size + 2 * p - k) // s) + 1
    return out - 1 if (out - 1) * s >= size + p else out


def windows(x_shape, kh, kw, sh, sw, ph, pw, oh, ow):
    """Every (n, c, oy, ox, i, j, y, x) with (y, x) the input position of slot (i, j) of
    window (oy, ox), inside the input or not."""
    N, C = x_shape[:2]
    for n, c, oy, ox, i, j in itertools.product(range(N), range(C), range(oh), range(ow),
                                                range(kh), range(kw)):
        yield n, c, oy, ox, i, j, oy * sh - ph + i, ox * sw - pw + j


def ref_im2col(x, kh, kw, sh, sw, ph, pw):
    N, C, H, W = x.shape
    oh, ow = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    cols = np.zeros((N * oh * ow, C * kh * kw), x.dtype)
    for n, c, oy, ox, i, j, y, xc in windows(x.shape, kh, kw, sh, sw, ph, pw, oh, ow):
        if 0 <= y < H and 0 <= xc < W:
            cols[(n * oh + oy) * ow + ox, (c * kh + i) * kw + j] = x[n, c, y, xc]
    return cols


def ref_col2im(cols, x_shape, kh, kw, sh, sw, ph, pw):
    """The transpose of ref_im2col, as a scatter, summed in float64."""
    N, C, H, W = x_shape
    oh, ow = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    dx = np.zeros(x_shape)
    for n, c, oy, ox, i, j, y, xc in windows(x_shape, kh, kw, sh, sw, ph, pw, oh, ow):
        if 0 <= y < H and 0 <= xc < W:
            dx[n, c, y, xc] += cols[(n * oh + oy) * ow + ox, (c * kh + i) * kw + j]
    return dx


def ref_maxpool(x, kh, kw, sh, sw, ph, pw, oh, ow):
    N, C, H, W = x.shape
    y, idx = np.zeros((N, C, oh, ow), x.dtype), np.zeros((N, C, oh, ow), np.int64)
    candidates = {}   # (n, c, oy, ox) -> [(value, flat index)] in row-major window order
    for n, c, oy, ox, i, j, yy, xc in windows(x.shape, kh, kw, sh, sw, ph, pw, oh, ow):
        if 0 <= yy < H and 0 <= xc < W:
            candidates.setdefault((n, c, oy, ox), []).append((x[n, c, yy, xc], yy * W + xc))
    for key, cands in candidates.items():
        best = max(v for v, _ in cands)
        y[key], idx[key] = best, next(k for v, k in cands if v == best)   # the first maximum
    return y, idx


def ref_maxpool_backward(gy, idx, x_shape):
    dx = np.zeros(x_shape)
    for n, c, a, b in itertools.product(*map(range, gy.shape)):
        dx[n, c].flat[idx[n, c, a, b]] += gy[n, c, a, b]
    return dx


# ---- hypothesis strategies -------------------------------------------------------------------

@st.composite
def conv_cases(draw, ceil_mode=False):
    """(x, geometry (kh, kw, sh, sw, ph, pw), (oh, ow)) with padding <= kernel // 2."""
    kh, kw, sh, sw = (draw(st.integers(1, 3)) for _ in range(4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    H = draw(st.integers(max(1, kh - 2 * ph), 9))
    W = draw(st.integers(max(1, kw - 2 * pw), 9))
    shape = (draw(st.integers(0, 6)), draw(st.integers(1, 3)), H, W)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ties = draw(st.booleans())    # small integers: many equal values in a window
    x = (rng.integers(-2, 3, shape) if ties else rng.standard_normal(shape)).astype(draw(DTYPES))
    ceil = ceil_mode and draw(st.booleans())
    size = (out_size(H, kh, sh, ph, ceil), out_size(W, kw, sw, pw, ceil))
    return x, (kh, kw, sh, sw, ph, pw), size


# ---- im2col / col2im -------------------------------------------------------------------------

@FAST
@given(conv_cases())
def test_im2col_matches_reference(case):
    x, g, _ = case
    expected = ref_im2col(x, *g)
    for cols in (ck.im2col_numpy(x, *g), ck.im2col_numba(x, *g), ck.im2col_numba(x, *g, jit=False),
                 ck.im2col(x, *g)):
        assert cols.dtype == x.dtype and cols.flags.c_contiguous
        np.testing.assert_array_equal(cols, expected)   # a copy: exact


@FAST
@given(conv_cases())
def test_col2im_matches_reference(case):
    x, g, (oh, ow) = case
    rng = np.random.default_rng(0)
    cols = rng.standard_normal((x.shape[0] * oh * ow, x.shape[1] * g[0] * g[1])).astype(x.dtype)
    parallel = ck.col2im_numba(cols, x.shape, *g)
    assert parallel.dtype == x.dtype and parallel.shape == x.shape
    # All three add each pixel's entries in the same (i, j) order and dtype: equal exactly.
    np.testing.assert_array_equal(parallel, ck.col2im_numba(cols, x.shape, *g, jit=False))
    np.testing.assert_array_equal(parallel, ck.col2im_numpy(cols, x.shape, *g))
    np.testing.assert_array_equal(parallel, ck.col2im(cols, x.shape, *g))
    tol = TOL[x.dtype.type]
    np.testing.assert_allclose(parallel, ref_col2im(cols, x.shape, *g), rtol=tol, atol=tol)


@FAST
@given(conv_cases())
def test_col2im_is_the_adjoint_of_im2col(case):
    """<im2col(x), c> == <x, col2im(c)> for any x and c: the definition of the transpose."""
    x, g, _ = case
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x.shape)
    c = rng.standard_normal(ck.im2col(x, *g).shape)
    for to_cols, to_image in ((ck.im2col_numpy, ck.col2im_numpy), (ck.im2col, ck.col2im)):
        lhs, rhs = np.sum(to_cols(x, *g) * c), np.sum(x * to_image(c, x.shape, *g))
        assert np.isclose(lhs, rhs, rtol=1e-10, atol=1e-10)


def test_conv_forward_is_one_gemm():
    """The layout promise: im2col + one matrix multiply is a cross-correlation."""
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((4, 3, 3, 2))
    y = (ck.im2col(x, 3, 2, 2, 1, 1, 1) @ w.reshape(4, -1).T).reshape(2, 3, 7, 4)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for n, f, oy, ox in itertools.product(range(2), range(4), range(3), range(7)):
        patch = xp[n, :, oy * 2:oy * 2 + 3, ox:ox + 2]
        assert np.isclose(y[n, oy, ox, f], np.sum(patch * w[f]))


# ---- max-pool --------------------------------------------------------------------------------

def forward_paths(x, g, size):
    return [ck.maxpool2d_forward_numpy(x, *g, *size), ck.maxpool2d_forward_numba(x, *g, *size),
            ck.maxpool2d_forward_numba(x, *g, *size, jit=False), ck.maxpool2d_forward(x, *g, *size)]


@FAST
@given(conv_cases(ceil_mode=True))
def test_maxpool_forward_matches_reference(case):
    x, g, size = case
    y_ref, idx_ref = ref_maxpool(x, *g, *size)
    for y, idx in forward_paths(x, g, size):
        assert y.dtype == x.dtype and idx.dtype == np.int64
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(idx, idx_ref)


@FAST
@given(conv_cases(ceil_mode=True))
def test_maxpool_backward_matches_reference(case):
    x, g, size = case
    _, idx = ck.maxpool2d_forward(x, *g, *size)
    gy = np.random.default_rng(3).standard_normal(idx.shape).astype(x.dtype)
    parallel = ck.maxpool2d_backward_numba(gy, idx, x.shape)
    assert parallel.dtype == x.dtype and parallel.shape == x.shape
    serial = ck.maxpool2d_backward_numba(gy, idx, x.shape, jit=False)
    np.testing.assert_array_equal(parallel, serial)
    np.testing.assert_array_equal(parallel, ck.maxpool2d_backward_numpy(gy, idx, x.shape))
    np.testing.assert_array_equal(parallel, ck.maxpool2d_backward(gy, idx, x.shape, *g))
    tol = TOL[x.dtype.type]
    np.testing.assert_allclose(parallel, ref_maxpool_backward(gy, idx, x.shape), rtol=tol, atol=tol)


@pytest.mark.parametrize("fill", [0.0, -np.inf])
def test_maxpool_ties_pick_the_first_real_pixel(fill):
    """A constant image: every window ties, so each picks its first position inside the input.
    With -inf the padding would tie too if it took part; it must not."""
    x = np.full((1, 1, 4, 5), fill)
    for y, idx in forward_paths(x, (3, 3, 1, 1, 1, 1), (4, 5)):
        np.testing.assert_array_equal(y, fill)
        first = [[max(oy - 1, 0) * 5 + max(ox - 1, 0) for ox in range(5)] for oy in range(4)]
        np.testing.assert_array_equal(idx[0, 0], first)


def test_maxpool_ceil_mode_clipped_window():
    """7 -> 4 with 2x2 stride 2 and ceil_mode: the last windows hold one column / row / pixel."""
    x = np.arange(49, dtype=np.float32).reshape(1, 1, 7, 7)
    for y, idx in forward_paths(x, (2, 2, 2, 2, 0, 0), (4, 4)):
        assert y[0, 0, 3, 3] == 48 and idx[0, 0, 3, 3] == 48
        assert y[0, 0, 0, 3] == 13 and idx[0, 0, 3, 0] == 43


def test_maxpool_nan_wins():
    x = np.zeros((1, 1, 2, 2), np.float32)
    x[0, 0, 1, 0] = np.nan
    x[0, 0, 1, 1] = np.nan
    for y, idx in forward_paths(x, (2, 2, 1, 1, 0, 0), (1, 1)):
        assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 2   # the first NaN


def test_maxpool_backward_accumulates_overlapping_windows():
    """2x2 windows at stride 1 on a 3x3 image with its max in the centre: all four windows
    pick the centre, which receives the sum of their gradients."""
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1
    _, idx = ck.maxpool2d_forward(x, 2, 2, 1, 1, 0, 0, 2, 2)
    gy = np.array([1.0, 2, 3, 4]).reshape(1, 1, 2, 2)
    expected = np.zeros((1, 1, 3, 3))
    expected[0, 0, 1, 1] = 10
    for backward in (ck.maxpool2d_backward_numpy, ck.maxpool2d_backward_numba,
                     ck.maxpool2d_backward):
        np.testing.assert_array_equal(backward(gy, idx, x.shape), expected)


def test_bad_inputs_are_refused():
    x = np.zeros((1, 2, 4, 4), np.float32)
    with pytest.raises(ValueError, match="C-contiguous"):
        ck.im2col(x.transpose(0, 1, 3, 2), 2, 2, 1, 1, 0, 0)
    with pytest.raises(TypeError, match="float32 or float64"):
        ck.im2col(x.astype(np.int32), 2, 2, 1, 1, 0, 0)
    with pytest.raises(ValueError, match="larger than the padded input"):
        ck.im2col(x, 5, 5, 1, 1, 0, 0)
    with pytest.raises(ValueError, match="cols has shape"):
        ck.col2im(np.zeros((9, 7), np.float32), x.shape, 2, 2, 1, 1, 0, 0)
    with pytest.raises(ValueError, match="entirely in the padding"):
        ck.maxpool2d_forward(x, 2, 2, 2, 2, 0, 0, 3, 3)
    with pytest.raises(ValueError, match="outside"):   # would write outside dx
        ck.maxpool2d_backward(np.ones((1, 2, 1, 1)), np.full((1, 2, 1, 1), 16), x.shape)


# ---- Numba machinery: caching, read-only installs, NUMBA_DISABLE_JIT ------------------------

def run_python(code, **env):
    """Run ``code`` in a fresh interpreter (Numba reads its config at import) and return stdout."""
    env = dict(os.environ, **{"NUMBA_DISABLE_JIT": "0", **env})   # even when the suite runs
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, timeout=120)                # under DISABLE_JIT
    assert done.returncode == 0, done.stderr
    return done.stdout


SMALL_BACKWARD = """
    import numpy as np
    from tinygrad_edu.ops import cpu_kernels as ck
    gy, idx = np.arange(4.0).reshape(1, 1, 2, 2), np.array([[[[0, 4], [4, 8]]]])
    dx = ck.maxpool2d_backward_numba(gy, idx, (1, 1, 3, 3))
    assert dx.ravel().tolist() == [0, 0, 0, 0, 3, 0, 0, 0, 3], dx
    print(ck._maxpool_backward_jit.cache, type(ck._maxpool_backward_jit.compiled).__name__)
"""


def test_compiled_kernels_are_cached_on_disk(tmp_path):
    cache = tmp_path / "numba_cache"
    out = run_python(SMALL_BACKWARD, NUMBA_CACHE_DIR=str(cache))
    assert out.split() == ["True", "CPUDispatcher"]
    assert list(cache.rglob("*maxpool2d_backward_loops*.nbi"))   # the index of the saved code


def test_unusable_cache_dir_compiles_without_cache(tmp_path):
    """NUMBA_CACHE_DIR below a regular file cannot be created, even by root."""
    (tmp_path / "a_file").write_text("")
    out = run_python(SMALL_BACKWARD, NUMBA_CACHE_DIR=str(tmp_path / "a_file" / "cache"))
    assert out.split() == ["False", "CPUDispatcher"]


def test_read_only_package_compiles_without_cache(monkeypatch):
    """A read-only install: with no NUMBA_CACHE_DIR, Numba would write next to the module."""
    import numba
    asked = []

    def read_only(path):
        asked.append(path)
        return False

    monkeypatch.setattr(numba.config, "CACHE_DIR", "")
    monkeypatch.setattr(ck, "_writable_dir", read_only)
    jitted = ck._Jitted(ck.maxpool2d_backward_loops, parallel=True)
    gy, idx, dx = np.ones((2, 3)), np.array([[0, 0, 1], [2, 2, 2]]), np.zeros((2, 4))
    jitted(gy, idx, dx)
    assert asked == [os.path.join(os.path.dirname(ck.__file__), "__pycache__")]
    assert jitted.cache is False
    np.testing.assert_array_equal(dx, [[2, 1, 0, 0], [0, 0, 3, 0]])


def test_disable_jit_runs_the_plain_functions():
    out = run_python(SMALL_BACKWARD + """
    assert ck._maxpool_backward_jit.compiled is ck.maxpool2d_backward_loops
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5))
    assert np.array_equal(ck.im2col(x, 3, 3, 2, 2, 1, 1), ck.im2col_numpy(x, 3, 3, 2, 2, 1, 1))
    """, NUMBA_DISABLE_JIT="1")
    assert out.split()[1] == "function"   # njit handed back the plain function
