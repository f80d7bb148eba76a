"""CPU kernels: im2col/col2im (convolution) and max-pooling, as loops compiled by Numba.

Layouts (the same as the CUDA twins in ``cuda_kernels``; every array C-contiguous, float32 or
float64, and every output has the input's dtype):

    im2col:  x (N, C, H, W) -> cols (N*OH*OW, C*kh*kw)
             cols[(n*OH + oy)*OW + ox, (c*kh + i)*kw + j] = x[n, c, oy*sh - ph + i, ox*sw - pw + j]
             (0 where that lies in the padding), OH = (H + 2*ph - kh)//sh + 1, OW likewise
             (geometry.output_size; the loops get OH and OW from the caller, as in CUDA).
             A convolution with filters w (F, C, kh, kw) is then one GEMM: cols @ w.reshape(F, -1).T
    col2im:  the adjoint of im2col: each pixel of dx receives the sum of the cols entries copied
             from it, so <im2col(x), c> == <x, col2im(c)>.
    maxpool2d_forward:  (y, idx), both (N, C, oh, ow): the max over each window's positions inside
             the input, and the flat index h*W + w (in the (n, c) plane) of its first maximum.
    maxpool2d_backward: dx[n, c].flat[idx[n, c, a, b]] += gy[n, c, a, b].

Each kernel is a plain Python function of loops (``*_loops``, importable and callable as is),
compiled at module level by ``numba.njit(cache=True, parallel=True)``: its ``prange`` loop is
split over the CPU's threads, and the machine code is saved on disk, so later processes load it
instead of compiling again. ``NUMBA_DISABLE_JIT=1`` leaves every kernel its plain function, for
debugging with print or pdb. Nothing imports this module before a conv or pool runs on the CPU
(``ops/nn_ops.py`` imports it on first use), so ``import tinygrad_edu`` never pays for Numba.

The public functions allocate the outputs and call the compiled loops. Their callers (the ops
in ``nn_ops``, fed by ``nn.functional``) have checked every argument, so they only ``assert``
what the loops rely on: Numba compiles one kernel per dtype and layout and indexes without
bounds checks. Whole-array NumPy versions, slower by 3-10x (``benchmarks/cpu_kernels.py``),
are the test references, in ``tests/refs.py``.
"""
import os

# Numba runs parallel loops on OpenMP threads, which by default keep spinning for a while after
# a loop ends, waiting for more work. On a 2-core machine that spinning steals a core from
# NumPy's BLAS threads in the matrix multiply that follows (conv2d forward + backward ran ~20%
# slower, benchmarks/layers.py). So let them sleep, unless the user chose a policy. (Read once,
# when Numba loads its OpenMP library: so before importing Numba.)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from .geometry import assert_fits, assert_windows_hold_pixels  # noqa: E402

__all__ = ["im2col", "col2im", "maxpool2d_forward", "maxpool2d_backward"]

FLOATS = (np.float32, np.float64)


def _compile(loops):
    """``loops`` compiled by Numba, parallel, with its machine code cached on disk.

    Numba keeps the cache in NUMBA_CACHE_DIR when that is set, else next to this file
    (``__pycache__``), else in the user's cache directory (a read-only install); where it can
    write none of them it raises RuntimeError "no locator available", and the kernel is then
    compiled afresh in each process instead.
    """
    try:
        return njit(cache=True, parallel=True)(loops)
    except RuntimeError:
        return njit(cache=False, parallel=True)(loops)


def _assert_array(op, name, a, ndim, dtypes=FLOATS):
    assert (isinstance(a, np.ndarray) and a.ndim == ndim and a.dtype in dtypes
            and a.flags.c_contiguous), (
        f"{op}: {name} must be a C-contiguous {ndim}-D "
        f"{' or '.join(np.dtype(d).name for d in dtypes)} NumPy array, got "
        f"{type(a).__name__} {getattr(a, 'dtype', '')} {getattr(a, 'shape', '')} "
        f"{getattr(a, 'strides', '')}")


# ---- im2col ---------------------------------------------------------------------------------

def im2col_loops(x, cols, kh, kw, sh, sw, ph, pw, OH, OW):
    """Fills cols (N*OH*OW, C*kh*kw) from x (N, C, H, W); see the module docstring."""
    N, C, H, W = x.shape
    # One iteration per (image, output row): N*OH of them keeps both cores busy even for N = 1,
    # and each writes its own OW consecutive rows of cols, front to back.
    for t in prange(N * OH):
        n, oy = t // OH, t % OH
        for ox in range(OW):
            r = t * OW + ox                      # = (n*OH + oy)*OW + ox
            for c in range(C):
                for i in range(kh):
                    y = oy * sh - ph + i
                    k = (c * kh + i) * kw        # the column of slot (c, i, 0)
                    # Testing the row once per kernel row, not per entry, made this ~30%
                    # faster (benchmarks/cpu_kernels.py); indexing cols as a 6-D view
                    # (N, OH, OW, C, kh, kw) instead of by (r, k) made it ~1.5x slower.
                    if y < 0 or y >= H:
                        for j in range(kw):
                            cols[r, k + j] = 0
                    else:
                        for j in range(kw):
                            xc = ox * sw - pw + j
                            cols[r, k + j] = x[n, c, y, xc] if 0 <= xc < W else 0


_im2col = _compile(im2col_loops)


def im2col(x, kh, kw, sh, sw, ph, pw):
    """cols (N*OH*OW, C*kh*kw) with cols[(n, oy, ox), (c, i, j)] = x[n, c, oy*sh - ph + i,
    ox*sw - pw + j], 0 in the padding."""
    _assert_array("im2col", "x", x, 4)
    N, C, H, W = x.shape
    geometry = (kh, kw, sh, sw, ph, pw)
    OH, OW = assert_fits("im2col", (H, W), geometry)
    cols = np.empty((N * OH * OW, C * kh * kw), dtype=x.dtype)   # the loops write every entry
    _im2col(x, cols, *geometry, OH, OW)
    return cols


# ---- col2im ---------------------------------------------------------------------------------

def col2im_loops(cols, dx, kh, kw, sh, sw, ph, pw, OH, OW):
    """Adds col2im(cols) into dx (N, C, H, W), which must start at zero: a scatter-add.

    The mirror image of im2col_loops: walk the rows of cols front to back (reading memory in
    order, which is what makes this fast) and add each entry into the pixel it was copied from.
    Windows overlap, so two rows may add into one pixel; but all rows of an image write only
    that image, so one image per iteration keeps the threads apart: no races, no atomics.
    A pixel receives its entries in row order, i.e. window slots (i, j) from last to first
    (the reference in tests/refs.py adds in that order too, so the two agree exactly).
    """
    N, C, H, W = dx.shape
    for n in prange(N):
        for oy in range(OH):
            for ox in range(OW):
                r = (n * OH + oy) * OW + ox
                for c in range(C):
                    for i in range(kh):
                        y = oy * sh - ph + i
                        if y < 0 or y >= H:
                            continue
                        k = (c * kh + i) * kw
                        for j in range(kw):
                            xc = ox * sw - pw + j
                            if 0 <= xc < W:
                                dx[n, c, y, xc] += cols[r, k + j]


_col2im = _compile(col2im_loops)


def col2im(cols, x_shape, kh, kw, sh, sw, ph, pw):
    """dx (x_shape), the adjoint of im2col: each pixel sums the cols entries copied from it."""
    _assert_array("col2im", "cols", cols, 2)
    N, C, H, W = x_shape
    geometry = (kh, kw, sh, sw, ph, pw)
    OH, OW = assert_fits("col2im", (H, W), geometry)
    assert cols.shape == (N * OH * OW, C * kh * kw), (   # else the loops read out of bounds
        f"col2im: cols has shape {cols.shape}, im2col of x_shape {tuple(x_shape)} gives "
        f"{(N * OH * OW, C * kh * kw)}")
    dx = np.zeros((N, C, H, W), dtype=cols.dtype)
    _col2im(cols, dx, *geometry, OH, OW)
    return dx


# ---- max-pool forward -----------------------------------------------------------------------

def maxpool2d_forward_loops(x, y, idx, kh, kw, sh, sw, ph, pw):
    """Fills y and idx (P, oh, ow) from x (P, H, W), one (n, c) plane p per iteration.

    Positions outside the input are skipped, so padding never wins and windows clipped by
    ceil_mode just have fewer candidates. Candidates come in row-major window order and only a
    strictly greater value replaces the best, so ties keep the first maximum. A NaN counts as
    the maximum (as np.max and PyTorch do): it replaces any number, and nothing replaces it.
    """
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        for oy in range(OH):
            for ox in range(OW):
                best = x[p, 0, 0]                # any value of the right type; replaced below
                best_idx = -1                    # -1: no candidate seen yet
                for i in range(kh):
                    yy = oy * sh - ph + i
                    if yy < 0 or yy >= H:
                        continue
                    for j in range(kw):
                        xc = ox * sw - pw + j
                        if xc < 0 or xc >= W:
                            continue
                        v = x[p, yy, xc]
                        # v != v holds only for NaN
                        if best_idx < 0 or v > best or (v != v and best == best):
                            best, best_idx = v, yy * W + xc
                y[p, oy, ox] = best
                idx[p, oy, ox] = best_idx


_maxpool2d_forward = _compile(maxpool2d_forward_loops)


def maxpool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow):
    """(y, idx), both (N, C, oh, ow): the max of each window over its positions inside x, and
    the flat index h*W + w (in its H*W plane) of the first maximum in row-major window order."""
    _assert_array("maxpool2d_forward", "x", x, 4)
    N, C, H, W = x.shape
    geometry = (kh, kw, sh, sw, ph, pw)
    assert_windows_hold_pixels("maxpool2d_forward", (H, W), geometry, (oh, ow))
    y = np.empty((N, C, oh, ow), dtype=x.dtype)     # every entry gets written
    idx = np.empty((N, C, oh, ow), dtype=np.int64)
    planes = (x.reshape(N * C, H, W), y.reshape(N * C, oh, ow), idx.reshape(N * C, oh, ow))
    _maxpool2d_forward(*planes, *geometry)
    return y, idx


# ---- max-pool backward ----------------------------------------------------------------------

def maxpool2d_backward_loops(gy, idx, dx):
    """dx[p, idx[p, a]] += gy[p, a] for planes p and windows a (gy, idx: (P, oh*ow); dx:
    (P, H*W), zero on entry). Overlapping windows may pick the same pixel, but always within
    one plane, and each plane belongs to one iteration: the scatter is race-free."""
    for p in prange(gy.shape[0]):
        for a in range(gy.shape[1]):
            dx[p, idx[p, a]] += gy[p, a]


_maxpool2d_backward = _compile(maxpool2d_backward_loops)


def maxpool2d_backward(gy, idx, x_shape, kh=None, kw=None, sh=None, sw=None, ph=None, pw=None):
    """dx (x_shape) with dx[n, c].flat[idx[n, c, a, b]] += gy[n, c, a, b].

    ``idx`` must be maxpool2d_forward's: an index outside the plane would write outside dx
    (too slow to check here). The window geometry is accepted, so callers can treat this and
    the CUDA twin alike, but unused: the scatter needs only idx (the GPU gather needs the
    windows covering each pixel).
    """
    _assert_array("maxpool2d_backward", "gy", gy, 4)
    _assert_array("maxpool2d_backward", "idx", idx, 4, dtypes=(np.int64,))
    N, C, H, W = x_shape
    assert idx.shape == gy.shape and gy.shape[:2] == (N, C), (
        f"maxpool2d_backward: gy {gy.shape} and idx {idx.shape} must be equal and match x_shape "
        f"{tuple(x_shape)} in batch and channels")
    dx = np.zeros((N, C, H, W), dtype=gy.dtype)
    A = gy.shape[2] * gy.shape[3]           # windows per plane (not -1: N may be 0)
    _maxpool2d_backward(gy.reshape(N * C, A), idx.reshape(N * C, A), dx.reshape(N * C, H * W))
    return dx


# benchmarks/cpu_kernels.py, batch 128, float32, 2 cores (ms, whole-array NumPy -> Numba):
#   im2col       conv1 1.6 -> 0.5    conv2 14 -> 2.1     conv3 6.6 -> 1.1
#                (NumPy pads, then copies a 6-D strided view: two passes, short inner loops)
#   col2im       conv1 1.7 -> 0.5    conv2 22 -> 2.1     conv3 11 -> 1.1
#                (NumPy transposes cols, then makes kh*kw passes over dx)
#   max-pool fwd pool1 32 -> 6.4     pool2 17 -> 3.3     pool3 11 -> 1.8
#                (NumPy makes ~8 whole-array passes per window slot; the loops make one)
#   max-pool bwd pool1 8.1 -> 1.1    pool2 4.0 -> 0.8    pool3 2.5 -> 0.5   (np.add.at is slow)
# Cold start, once per process: importing this module (and so Numba) ~0.2 s; the first call of
# each kernel and dtype compiles for 0.3-1.3 s, or, once that is on disk, loads in ~0.01 s
# (plus ~0.1 s for the first parallel kernel of the process, which starts Numba's threads).
