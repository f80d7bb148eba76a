"""The CUDA kernels of kernels/*.cu, run on the CPU: no GPU needed.

g++ compiles each .cu file as C++ with kernels/cpu_shim.h (empty __global__, global
blockIdx/threadIdx), and ctypes loads the result. Inside ``with gpu.standing_in(grid):`` this
stands in for the GPU in ``tinygrad_edu.ops.cuda_kernels``: its ``_launch`` runs the kernel once
per (block, thread) of a small grid, one thread after another. Everything else is the real
launcher code (checks, output shapes, argument order), so only the CuPy calls go untested.

The grids are tiny (a few blocks of a few threads) so every thread loops over many elements,
which exercises the grid-stride loops; outputs start out as NaN so a skipped entry shows up.
"""
import contextlib
import ctypes
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import refs as ref
from tinygrad_edu.ops import cuda_kernels as ck


class CpuGrid:
    """Runs a g++-compiled kernel over ``grid = (blocks, threads)``, one thread at a time."""

    def __init__(self, libs):
        self.libs = libs      # .cu file name -> ctypes.CDLL
        self.grid = (3, 4)

    @contextlib.contextmanager
    def standing_in(self, grid=(3, 4)):
        """Within this block, cuda_kernels launches on this CPU grid instead of CuPy."""
        self.grid = grid
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(ck, "_launch", self.launch)
            mp.setattr(ck, "_empty", _poisoned_empty)
            yield

    def launch(self, filename, name, n, *args):
        lib = self.libs[filename]
        kernel = getattr(lib, name)
        kernel.restype = None
        cargs = []
        for a in args:
            if isinstance(a, np.ndarray):
                assert a.flags.c_contiguous and a.dtype in (np.float32, np.int64)
                cargs.append(ctypes.c_void_p(a.ctypes.data))
            else:
                cargs.append(ctypes.c_longlong(a))
        blocks, threads = self.grid
        for b in range(blocks):
            for t in range(threads):
                lib.emu_set_thread(b, t, blocks, threads)
                kernel(*cargs)


def _poisoned_empty(like, shape, dtype):
    """np.empty, but NaN (or -7 for indices) so an entry no thread writes is caught."""
    return np.full(shape, np.nan if dtype == np.float32 else -7, dtype)


@pytest.fixture(scope="module")
def gpu(tmp_path_factory):
    """Each kernels/*.cu built once by g++ into a shared library, wrapped in a CpuGrid."""
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ not found: cannot compile the CUDA kernels for the CPU")
    build = tmp_path_factory.mktemp("cuda_emulated")
    shim = ck.kernel_dir() / "cpu_shim.h"
    libs = {}
    for src in sorted(ck.kernel_dir().glob("*.cu")):
        so = build / f"{src.stem}.so"
        cmd = [gxx, "-x", "c++", "-include", str(shim), "-shared", "-fPIC", "-O1", "-Wall",
               "-o", str(so), str(src)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"g++ could not compile {src.name}:\n{done.stderr}")
        lib = libs[src.name] = ctypes.CDLL(str(so))
        lib.emu_set_thread.argtypes = [ctypes.c_uint] * 4
    return CpuGrid(libs)


# ---- what hypothesis draws ---------------------------------------------------------------

grids = st.tuples(st.integers(1, 4), st.integers(1, 5))


@st.composite
def window_cases(draw, ceil_modes=(False,)):
    """A small NCHW input and a window geometry: kernel 1-3, stride 1-3, padding 0..k//2."""
    kh, kw, sh, sw = (draw(st.integers(1, 3)) for _ in range(4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    H = draw(st.integers(max(1, kh - 2 * ph), 7))
    W = draw(st.integers(max(1, kw - 2 * pw), 7))
    N, C = draw(st.integers(0, 2)), draw(st.integers(1, 3))
    ceil_mode = draw(st.sampled_from(ceil_modes))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):   # small integers: many ties, to test "first maximum wins"
        x = rng.integers(-2, 3, size=(N, C, H, W)).astype(np.float32)
    else:
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    oh, ow = ref.out_size(H, kh, sh, ph, ceil_mode), ref.out_size(W, kw, sw, pw, ceil_mode)
    return x, (kh, kw, sh, sw, ph, pw), (oh, ow), rng


@settings(deadline=None, max_examples=60)
@given(case=window_cases(), grid=grids)
def test_im2col_matches_reference(gpu, case, grid):
    x, geometry, _, _ = case
    with gpu.standing_in(grid):
        cols = ck.im2col(x, *geometry)
    np.testing.assert_array_equal(cols, ref.im2col(x, *geometry))


@settings(deadline=None, max_examples=60)
@given(case=window_cases(), grid=grids)
def test_col2im_matches_reference_and_is_the_adjoint(gpu, case, grid):
    x, geometry, _, rng = case
    cols = rng.standard_normal(ref.im2col(x, *geometry).shape).astype(np.float32)
    with gpu.standing_in(grid):
        dx = ck.col2im(cols, x.shape, *geometry)
    np.testing.assert_allclose(dx, ref.col2im(cols.astype(np.float64), x.shape, *geometry),
                               rtol=1e-5, atol=1e-5)
    # <im2col(x), cols> == <x, col2im(cols)>: the defining property of an adjoint
    lhs = np.vdot(ref.im2col(x, *geometry).astype(np.float64), cols)
    np.testing.assert_allclose(lhs, np.vdot(x.astype(np.float64), dx), rtol=1e-4, atol=1e-4)


@settings(deadline=None, max_examples=80)
@given(case=window_cases(ceil_modes=(False, True)), grid=grids)
def test_maxpool_forward_matches_reference(gpu, case, grid):
    x, geometry, (oh, ow), _ = case
    with gpu.standing_in(grid):
        y, idx = ck.maxpool2d_forward(x, *geometry, oh, ow)
    y_ref, idx_ref = ref.maxpool2d_forward(x, *geometry, oh, ow)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)


@settings(deadline=None, max_examples=80)
@given(case=window_cases(ceil_modes=(False, True)), grid=grids)
def test_maxpool_backward_matches_reference(gpu, case, grid):
    x, geometry, (oh, ow), rng = case
    _, idx = ref.maxpool2d_forward(x, *geometry, oh, ow)
    gy = rng.standard_normal(idx.shape).astype(np.float32)
    with gpu.standing_in(grid):
        dx = ck.maxpool2d_backward(gy, idx, x.shape, *geometry)
    np.testing.assert_allclose(dx, ref.maxpool2d_backward(gy.astype(np.float64), idx, x.shape),
                               rtol=1e-5, atol=1e-6)


def test_maxpool_padding_never_wins_and_nan_is_the_max(gpu):
    x = np.full((1, 1, 3, 3), -5.0, np.float32)   # all negative: a zero pad would win
    x[0, 0, 2, 1] = np.nan
    with gpu.standing_in():
        y, idx = ck.maxpool2d_forward(x, 2, 2, 2, 2, 1, 1, 2, 2)
    np.testing.assert_array_equal(y, [[[[-5, -5], [-5, np.nan]]]])
    np.testing.assert_array_equal(idx, [[[[0, 1], [3, 7]]]])


@st.composite
def softmax_cases(draw):
    N, K = draw(st.integers(0, 6)), draw(st.integers(1, 12))
    scale = draw(st.sampled_from([1e-3, 1.0, 30.0, 1e3, 1e4]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    logits = rng.uniform(-scale, scale, size=(N, K)).astype(np.float32)
    labels = rng.integers(0, K, size=N).astype(np.int64)
    gy = rng.uniform(-1, 1, size=N).astype(np.float32)
    return logits, labels, gy


@settings(deadline=None, max_examples=80)
@given(case=softmax_cases(), grid=grids)
def test_softmax_ce_matches_reference(gpu, case, grid):
    logits, labels, gy = case
    with gpu.standing_in(grid):
        loss, lse = ck.softmax_ce_forward(logits, labels)
        dlogits = ck.softmax_ce_backward(logits, labels, lse, gy)
    loss_ref, lse_ref = ref.softmax_ce_forward(logits, labels)
    tol = ref.softmax_ce_tolerance(logits)
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-5, atol=tol)
    np.testing.assert_allclose(lse, lse_ref, rtol=1e-5, atol=tol)
    np.testing.assert_allclose(dlogits, ref.softmax_ce_backward(logits, labels, gy), rtol=1e-5,
                               atol=ref.softmax_ce_tolerance(logits, gy))


def test_softmax_ce_huge_logits_stay_finite(gpu):
    logits = np.array([[1e4, 1e4, 1e4], [1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], np.float32)
    labels = np.array([0, 1, 2], np.int64)
    with gpu.standing_in():
        loss, lse = ck.softmax_ce_forward(logits, labels)
        g = ck.softmax_ce_backward(logits, labels, lse, np.ones(3, np.float32))
    tol = ref.softmax_ce_tolerance(logits)   # ~1e-2: float32 carries 1e4 to about 1e-3
    np.testing.assert_allclose(loss, [np.log(3), 2e4, np.log(3)], rtol=1e-6, atol=tol)
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, ref.softmax_ce_backward(logits, labels, np.ones(3)), atol=tol)


def test_softmax_ce_kernel_writes_nan_for_a_bad_label(gpu):
    # The launcher rejects such labels; the kernel itself must still not read out of bounds.
    logits = np.zeros((2, 3), np.float32)
    labels = np.array([3, -1], np.int64)
    loss, lse = np.zeros(2, np.float32), np.zeros(2, np.float32)
    gpu.launch("softmax_ce.cu", "softmax_ce_forward", 2, logits, labels, loss, lse, 2, 3)
    assert np.isnan(loss).all()
    np.testing.assert_allclose(lse, np.log(3), rtol=1e-6)


# ---- launcher asserts: they fire before any kernel runs, so they need no fixture -------------
# nn.functional checks every argument for users; these guard the kernels' memory all the same.

x4 = np.zeros((1, 2, 4, 4), np.float32)
z2 = np.zeros((3, 5), np.float32)
lab = np.array([0, 1, 2], np.int64)
f1 = np.zeros(3, np.float32)
BROKEN = {
    "float64 input": (lambda: ck.im2col(x4.astype(np.float64), 2, 2, 1, 1, 0, 0),
                      "x must be a C-contiguous 4-D float32 array, got float64"),
    "non-contiguous": (lambda: ck.maxpool2d_forward(x4[..., ::2], 2, 2, 2, 2, 0, 0, 2, 1),
                       "C-contiguous"),
    "wrong ndim": (lambda: ck.im2col(x4[0], 2, 2, 1, 1, 0, 0), "4-D float32 array, got float32"),
    "int32 labels": (lambda: ck.softmax_ce_forward(z2, lab.astype(np.int32)),
                     "labels must be a C-contiguous 1-D int64 array, got int32"),
    "label count": (lambda: ck.softmax_ce_forward(z2, lab[:2]), "one label per row"),
    "lse shape": (lambda: ck.softmax_ce_backward(z2, lab, f1[:2], f1), r"lse has shape \(2,\)"),
    "gy dtype": (lambda: ck.softmax_ce_backward(z2, lab, f1, f1.astype(np.float16)),
                 "gy must be a C-contiguous 1-D float32"),
    "cols shape": (lambda: ck.col2im(np.zeros((9, 7), np.float32), (1, 2, 4, 4), 2, 2, 1, 1,
                                     0, 0), r"\(1, 2, 4, 4\) gives \(9, 8\)"),
    "kernel too big": (lambda: ck.im2col(x4, 7, 2, 1, 1, 1, 0), "does not fit"),
    "float stride": (lambda: ck.im2col(x4, 2, 2, 1.0, 1, 0, 0), "does not fit"),
    "zero stride": (lambda: ck.im2col(x4, 2, 2, 0, 1, 0, 0), "does not fit"),
    "pool pad": (lambda: ck.maxpool2d_forward(x4, 2, 2, 2, 2, 2, 0, 3, 2), "hold no pixel"),
    "pool output": (lambda: ck.maxpool2d_forward(x4, 2, 2, 2, 2, 0, 0, 3, 2), "hold no pixel"),
    "idx dtype": (lambda: ck.maxpool2d_backward(x4, x4, (1, 2, 8, 8), 2, 2, 2, 2, 0, 0),
                  "idx must be a C-contiguous 4-D int64"),
    "x_shape": (lambda: ck.maxpool2d_backward(x4, x4.astype(np.int64), (2, 2, 8, 8), 2, 2, 2, 2,
                                              0, 0), "batch and channels"),
    "backward windows": (lambda: ck.maxpool2d_backward(x4, x4.astype(np.int64), (1, 2, 4, 4),
                                                       2, 2, 2, 2, 0, 0), "hold no pixel"),
}


@pytest.mark.skipif(not __debug__, reason="python -O removes asserts")
@pytest.mark.parametrize("case", BROKEN)
def test_launcher_asserts_its_preconditions_before_launching(case):
    call, message = BROKEN[case]
    with pytest.raises(AssertionError, match=message):
        call()


def test_valid_numpy_input_reaches_the_launch_and_asks_for_cupy():
    # Without the fixture the real _launch runs: no CuPy or no GPU here, and NumPy arrays
    # are not GPU arrays anyway, so it must refuse clearly rather than crash.
    with pytest.raises((RuntimeError, TypeError), match="CuPy|GPU"):
        ck.im2col(x4, 2, 2, 1, 1, 0, 0)


def test_launch_config():
    assert ck.launch_config(1) == (1, 256)
    assert ck.launch_config(256) == (1, 256)
    assert ck.launch_config(257) == (2, 256)
    assert ck.launch_config(10**12) == (ck.MAX_BLOCKS, 256)   # the grid-stride loop does the rest


def test_kernel_sources_are_found():
    names = {p.name for p in ck.kernel_dir().iterdir()}
    assert {"im2col.cu", "maxpool.cu", "softmax_ce.cu", "cpu_shim.h"} <= names
