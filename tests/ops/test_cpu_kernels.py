"""The CPU kernels (tinygrad_edu/ops/cpu_kernels.py) against the whole-array NumPy references in
tests/refs.py, and the Numba machinery around them.

Shapes, geometry (ceil_mode included) and dtypes are drawn by hypothesis; the data are often
small integers, so that ties (and the first-max rule) are common. The references compute the
same sums in the same order, so every kernel must match its reference exactly, dtype included.
"""
import itertools
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import refs
from tinygrad_edu.ops import cpu_kernels as ck

FAST = settings(deadline=None, max_examples=40)
DTYPES = st.sampled_from([np.float32, np.float64])


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
    size = (refs.out_size(H, kh, sh, ph, ceil), refs.out_size(W, kw, sw, pw, ceil))
    return x, (kh, kw, sh, sw, ph, pw), size


# ---- im2col / col2im -------------------------------------------------------------------------

@FAST
@given(conv_cases())
def test_im2col_matches_reference(case):
    x, g, _ = case
    cols = ck.im2col(x, *g)
    assert cols.dtype == x.dtype and cols.flags.c_contiguous
    np.testing.assert_array_equal(cols, refs.im2col(x, *g))   # a copy: exact


def test_the_im2col_reference_follows_the_definition():
    """refs.im2col against the layout, entry by entry, on one small case."""
    x = np.random.default_rng(5).standard_normal((1, 2, 3, 4))
    kh, kw, sh, sw, ph, pw = 2, 3, 1, 2, 1, 1
    oh, ow = refs.out_size(3, kh, sh, ph), refs.out_size(4, kw, sw, pw)
    want = np.zeros((oh * ow, 2 * kh * kw))
    for c, oy, ox, i, j in itertools.product(range(2), range(oh), range(ow), range(kh), range(kw)):
        y, xc = oy * sh - ph + i, ox * sw - pw + j
        if 0 <= y < 3 and 0 <= xc < 4:
            want[oy * ow + ox, (c * kh + i) * kw + j] = x[0, c, y, xc]
    np.testing.assert_array_equal(refs.im2col(x, kh, kw, sh, sw, ph, pw), want)


@FAST
@given(conv_cases())
def test_col2im_matches_reference(case):
    x, g, (oh, ow) = case
    rng = np.random.default_rng(0)
    cols = rng.standard_normal((x.shape[0] * oh * ow, x.shape[1] * g[0] * g[1])).astype(x.dtype)
    dx = ck.col2im(cols, x.shape, *g)
    assert dx.dtype == x.dtype and dx.shape == x.shape and dx.flags.c_contiguous
    # Both add each pixel's entries in the same (i, j) order and dtype: equal exactly.
    np.testing.assert_array_equal(dx, refs.col2im(cols, x.shape, *g))


@FAST
@given(conv_cases())
def test_col2im_is_the_adjoint_of_im2col(case):
    """<im2col(x), c> == <x, col2im(c)> for any x and c: the definition of the transpose."""
    x, g, _ = case
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x.shape)
    c = rng.standard_normal(ck.im2col(x, *g).shape)
    lhs, rhs = np.sum(ck.im2col(x, *g) * c), np.sum(x * ck.col2im(c, x.shape, *g))
    assert np.isclose(lhs, rhs, rtol=1e-10, atol=1e-10)


def test_conv_forward_is_one_gemm():
    """The layout promise: im2col + one matrix multiply is a cross-correlation."""
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((4, 3, 3, 2))
    y = (ck.im2col(x, 3, 2, 2, 1, 1, 1) @ w.reshape(4, -1).T).reshape(2, 3, 7, 4)
    np.testing.assert_allclose(y.transpose(0, 3, 1, 2), refs.conv2d(x, w, None, (2, 1), 1))


# ---- max-pool --------------------------------------------------------------------------------

def forward_paths(x, g, size):
    """The kernel and the reference: the tests below pin the rules of both."""
    return [ck.maxpool2d_forward(x, *g, *size), refs.maxpool2d_forward(x, *g, *size)]


@FAST
@given(conv_cases(ceil_mode=True))
def test_maxpool_forward_matches_reference(case):
    x, g, size = case
    (y, idx), (y_ref, idx_ref) = forward_paths(x, g, size)
    assert y.dtype == x.dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)


@FAST
@given(conv_cases(ceil_mode=True))
def test_maxpool_backward_matches_reference(case):
    x, g, size = case
    _, idx = ck.maxpool2d_forward(x, *g, *size)
    gy = np.random.default_rng(3).standard_normal(idx.shape).astype(x.dtype)
    dx = ck.maxpool2d_backward(gy, idx, x.shape, *g)
    assert dx.dtype == x.dtype and dx.shape == x.shape
    np.testing.assert_array_equal(dx, refs.maxpool2d_backward(gy, idx, x.shape))  # same order


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
    for backward in (ck.maxpool2d_backward, refs.maxpool2d_backward):
        np.testing.assert_array_equal(backward(gy, idx, x.shape), expected)


# ---- preconditions: asserted, since nn.functional has checked the arguments ------------------

X = np.zeros((1, 2, 4, 4), np.float32)
BROKEN = {
    "layout": (lambda: ck.im2col(X.transpose(0, 1, 3, 2), 2, 2, 1, 1, 0, 0), "C-contiguous"),
    "dtype": (lambda: ck.im2col(X.astype(np.int32), 2, 2, 1, 1, 0, 0), "float32 or float64"),
    "rank": (lambda: ck.col2im(X, X.shape, 2, 2, 1, 1, 0, 0), "cols must be a C-contiguous 2-D"),
    "kernel": (lambda: ck.im2col(X, 5, 5, 1, 1, 0, 0), r"\(5, 5, 1, 1, 0, 0\) does not fit"),
    "float stride": (lambda: ck.im2col(X, 2, 2, 1.0, 1, 0, 0), "does not fit"),
    "cols": (lambda: ck.col2im(np.zeros((9, 7), np.float32), X.shape, 2, 2, 1, 1, 0, 0),
             r"cols has shape \(9, 7\), im2col of x_shape \(1, 2, 4, 4\) gives \(9, 8\)"),
    "windows": (lambda: ck.maxpool2d_forward(X, 2, 2, 2, 2, 0, 0, 3, 3), "hold no pixel"),
    "padding": (lambda: ck.maxpool2d_forward(X, 2, 2, 2, 2, 2, 0, 3, 2), "hold no pixel"),
    "no pixels": (lambda: ck.maxpool2d_forward(X[:, :, :0], 2, 2, 1, 1, 1, 1, 1, 5),
                  "hold no pixel"),
    "idx": (lambda: ck.maxpool2d_backward(X, X, X.shape), "idx must be a C-contiguous 4-D int64"),
    "batch": (lambda: ck.maxpool2d_backward(X, X.astype(np.int64), (2, 2, 8, 8)),
              "match x_shape"),
}


@pytest.mark.skipif(not __debug__, reason="python -O removes asserts")
@pytest.mark.parametrize("case", BROKEN)
def test_broken_preconditions_are_caught_before_the_loops_run(case):
    call, match = BROKEN[case]
    with pytest.raises(AssertionError, match=match):
        call()


# ---- Numba machinery: plain functions, disk cache, NUMBA_DISABLE_JIT, lazy import -----------

def test_the_plain_loops_stay_importable_and_run_as_python():
    """The loop functions are plain Python (for reading, print and pdb), the same as compiled."""
    gy, idx, dx = np.ones((2, 3)), np.array([[0, 0, 1], [2, 2, 2]]), np.zeros((2, 4))
    assert type(ck.maxpool2d_backward_loops).__name__ == "function"
    ck.maxpool2d_backward_loops(gy, idx, dx)
    np.testing.assert_array_equal(dx, [[2, 1, 0, 0], [0, 0, 3, 0]])
    x = np.random.default_rng(4).standard_normal((2, 3, 5, 4))
    g, out = (3, 2, 2, 1, 1, 0), (3, 3)
    cols = np.empty((2 * 3 * 3, 3 * 3 * 2))
    ck.im2col_loops(x, cols, *g, *out)
    np.testing.assert_array_equal(cols, ck.im2col(x, *g))
    y, idx = np.empty((6, *out)), np.empty((6, *out), np.int64)
    ck.maxpool2d_forward_loops(x.reshape(6, 5, 4), y, idx, *g)
    np.testing.assert_array_equal(y.reshape(2, 3, *out), ck.maxpool2d_forward(x, *g, *out)[0])


def run_python(code, **env):
    """Run ``code`` in a fresh interpreter (Numba reads its config at import) and return stdout."""
    base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env = {**base, "NUMBA_DISABLE_JIT": "0", **env}   # even when the suite runs under DISABLE_JIT
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


SMALL_BACKWARD = """
    import os, sys
    import numpy as np
    import tinygrad_edu as tg
    print("numba" in sys.modules)                          # not by import tinygrad_edu
    x = tg.Tensor(np.arange(9.0).reshape(1, 1, 3, 3), requires_grad=True)
    tg.nn.functional.max_pool2d(x, 2, 1).sum().backward()  # the first pool imports the kernels
    assert x.grad.numpy().ravel().tolist() == [0, 0, 0, 0, 1, 1, 0, 1, 1], x.grad
    from tinygrad_edu.ops import cpu_kernels as ck
    print("numba" in sys.modules, os.environ.get("OMP_WAIT_POLICY"),
          type(ck._maxpool2d_backward).__name__, type(getattr(ck._maxpool2d_backward, "_cache",
                                                              None)).__name__)
"""


def test_numba_is_imported_on_first_use_and_kernels_are_cached_on_disk(tmp_path):
    cache = tmp_path / "numba_cache"
    out = run_python(SMALL_BACKWARD, NUMBA_CACHE_DIR=str(cache))
    assert out == ["False", "True", "PASSIVE", "CPUDispatcher", "FunctionCache"]
    assert list(cache.rglob("*maxpool2d_backward_loops*.nbi"))   # the index of the saved code


def test_disable_jit_leaves_the_plain_functions():
    out = run_python(SMALL_BACKWARD + """
    assert ck._maxpool2d_backward is ck.maxpool2d_backward_loops
    """, NUMBA_DISABLE_JIT="1", OMP_WAIT_POLICY="ACTIVE")
    assert out[1:4] == ["True", "ACTIVE", "function"]   # njit handed back the plain function


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="NUMBA_DISABLE_JIT compiles nothing")
def test_no_writable_cache_location_compiles_without_cache(monkeypatch):
    """A read-only install and no usable cache directory: Numba finds no place to cache."""
    from numba.core import caching

    def read_only(locator):
        raise OSError("read-only file system")

    monkeypatch.setattr(caching._CacheLocator, "ensure_cache_path", read_only)
    compiled = ck._compile(ck.maxpool2d_backward_loops)
    assert type(compiled._cache).__name__ == "NullCache"
    gy, idx, dx = np.ones((2, 3)), np.array([[0, 0, 1], [2, 2, 2]]), np.zeros((2, 4))
    compiled(gy, idx, dx)
    np.testing.assert_array_equal(dx, [[2, 1, 0, 0], [0, 0, 3, 0]])
