"""CPU kernels: im2col/col2im (convolution) and max-pooling, each in NumPy and in Numba.

Layouts (the same as the CUDA twins in ``cuda_kernels``; every array C-contiguous, float32 or
float64, and every output has the input's dtype):

    im2col:  x (N, C, H, W) -> cols (N*OH*OW, C*kh*kw)
             cols[(n*OH + oy)*OW + ox, (c*kh + i)*kw + j] = x[n, c, oy*sh - ph + i, ox*sw - pw + j]
             (0 where that lies in the padding), OH = (H + 2*ph - kh)//sh + 1, OW likewise.
             A convolution with filters w (F, C, kh, kw) is then one GEMM: cols @ w.reshape(F, -1).T
    col2im:  the adjoint of im2col: each pixel of dx receives the sum of the cols entries copied
             from it, so <im2col(x), c> == <x, col2im(c)>.
    maxpool2d_forward:  (y, idx), both (N, C, oh, ow): the max over each window's positions inside
             the input, and the flat index h*W + w (in the (n, c) plane) of its first maximum.
    maxpool2d_backward: dx[n, c].flat[idx[n, c, a, b]] += gy[n, c, a, b].

Every kernel exists twice: ``*_numpy`` (whole-array NumPy, no compiler) and ``*_numba`` (explicit
loops compiled by Numba). The public functions pick the faster one, as measured by
``benchmarks/cpu_kernels.py``; the reason is written next to each choice.

How a Numba kernel is built: the loops are a plain Python function (``*_loops``), which stays
callable as is, serially (``*_numba(..., jit=False)`` does that; the tests use it as the reference
for the parallel build). ``_Jitted`` wraps it at module level and compiles it with
``numba.njit(cache=True, parallel=...)`` on the first call, so ``import tinygrad_edu`` never pays
for importing Numba (~0.5 s) or compiling (seconds). ``NUMBA_DISABLE_JIT=1`` turns every kernel
back into its plain Python function, for debugging with print or pdb.
"""
import os
import tempfile

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["im2col", "col2im", "maxpool2d_forward", "maxpool2d_backward",
           "im2col_numpy", "im2col_numba", "col2im_numpy", "col2im_numba",
           "maxpool2d_forward_numpy", "maxpool2d_forward_numba",
           "maxpool2d_backward_numpy", "maxpool2d_backward_numba"]


# ---- Numba, compiled on first use -----------------------------------------------------------

# The loops below write `prange` for their parallel loop. Plain Python runs it as `range`; Numba
# reads module globals when it compiles, so _Jitted puts numba.prange here first, and the
# compiled kernel splits that loop over threads. (numba.prange itself also runs as a range in
# plain Python, which keeps NUMBA_DISABLE_JIT=1 working.)
prange = range


def _writable_dir(path):
    """True if ``path`` is (or can be made) a directory we can create files in: the test
    Numba itself runs on a cache directory."""
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


def _can_cache(numba):
    """Whether compiled kernels may be saved on disk.

    Numba saves them next to this file (in ``__pycache__``), or in NUMBA_CACHE_DIR when that is
    set. An install may be read-only (a system site-packages), or NUMBA_CACHE_DIR may point
    somewhere unusable; then we compile without a disk cache rather than fail, or let Numba
    quietly fall back to a directory the user did not choose.
    """
    target = numba.config.CACHE_DIR or os.path.join(os.path.dirname(__file__), "__pycache__")
    return _writable_dir(target)


class _Jitted:
    """A plain loop function, compiled with ``numba.njit`` the first time it is called.

    ``cache`` tells, once compiled, whether the machine code is kept on disk for the next run.
    """

    def __init__(self, loops, parallel):
        self.loops, self.parallel = loops, parallel
        self.compiled = None
        self.cache = None

    def compile(self):
        # Numba runs parallel loops on OpenMP threads, which by default keep spinning for a
        # while after a loop ends, waiting for more work. On a 2-core machine that spinning
        # steals a core from NumPy's BLAS threads in the matrix multiply that follows (conv2d
        # forward + backward ran ~20% slower, benchmarks/layers.py). So let them sleep, unless
        # the user chose a policy. (Read once, when Numba first loads its OpenMP library.)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import numba
        global prange
        prange = numba.prange
        self.cache = _can_cache(numba)
        try:
            self.compiled = numba.njit(cache=self.cache, parallel=self.parallel)(self.loops)
        except RuntimeError:   # "cannot cache function ...: no locator available", should the
            # directory have become unusable since the check: compile anyway
            self.cache = False
            self.compiled = numba.njit(cache=False, parallel=self.parallel)(self.loops)
        return self.compiled

    def __call__(self, *args):
        compiled = self.compile() if self.compiled is None else self.compiled
        return compiled(*args)


# ---- checks and geometry --------------------------------------------------------------------

def _check(op, name, a, ndim, dtypes=(np.float32, np.float64)):
    """Numba compiles one kernel per dtype and layout, and indexes without bounds checks, so
    anything but a C-contiguous array of the right rank and dtype is refused up front."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{op}: {name} must be a NumPy array, got {type(a).__name__}")
    if a.dtype not in dtypes:
        raise TypeError(f"{op}: {name} must be {' or '.join(np.dtype(d).name for d in dtypes)}, "
                        f"got {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{op}: {name} must be {ndim}-D, got shape {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{op}: {name} must be C-contiguous (np.ascontiguousarray), got "
                         f"strides {a.strides} for shape {a.shape}")


def _conv_out(op, H, W, kh, kw, sh, sw, ph, pw):
    """(OH, OW) = ((H + 2*ph - kh)//sh + 1, (W + 2*pw - kw)//sw + 1), checked."""
    if min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0:
        raise ValueError(f"{op}: kernel ({kh}, {kw}) and stride ({sh}, {sw}) must be >= 1, "
                         f"padding ({ph}, {pw}) >= 0")
    if H + 2 * ph < kh or W + 2 * pw < kw:
        raise ValueError(f"{op}: kernel ({kh}, {kw}) is larger than the padded input "
                         f"({H + 2 * ph}, {W + 2 * pw})")
    return (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1


def _check_pool(op, H, W, kh, kw, sh, sw, ph, pw, oh, ow):
    """Every window must hold a real pixel, or its max (and its idx) would be undefined: the
    first window must not be all padding (ph < kh) and the last must start before the input
    ends ((oh - 1)*sh - ph < H; PyTorch's ceil_mode rule guarantees both)."""
    if min(kh, kw, sh, sw, oh, ow) < 1 or min(ph, pw) < 0 or ph >= kh or pw >= kw:
        raise ValueError(f"{op}: needs kernel, stride and output size >= 1 and 0 <= padding < "
                         f"kernel, got kernel ({kh}, {kw}), stride ({sh}, {sw}), padding "
                         f"({ph}, {pw}), output ({oh}, {ow})")
    if (oh - 1) * sh - ph >= H or (ow - 1) * sw - pw >= W:
        raise ValueError(f"{op}: output ({oh}, {ow}) is too large for input ({H}, {W}): the "
                         f"last window would lie entirely in the padding")


# ---- im2col ---------------------------------------------------------------------------------

def im2col_loops(x, cols, kh, kw, sh, sw, ph, pw):
    """Fills cols (N*OH*OW, C*kh*kw) from x (N, C, H, W); see the module docstring."""
    N, C, H, W = x.shape
    OH = (H + 2 * ph - kh) // sh + 1
    OW = (W + 2 * pw - kw) // sw + 1
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
                    # faster (benchmarks/cpu_kernels.py).
                    if y < 0 or y >= H:
                        for j in range(kw):
                            cols[r, k + j] = 0
                    else:
                        for j in range(kw):
                            xc = ox * sw - pw + j
                            cols[r, k + j] = x[n, c, y, xc] if 0 <= xc < W else 0


_im2col_jit = _Jitted(im2col_loops, parallel=True)


def im2col_numba(x, kh, kw, sh, sw, ph, pw, jit=True):
    """im2col by explicit loops; ``jit=False`` runs them as plain (serial) Python."""
    _check("im2col", "x", x, 4)
    N, C, H, W = x.shape
    OH, OW = _conv_out("im2col", H, W, kh, kw, sh, sw, ph, pw)
    cols = np.empty((N * OH * OW, C * kh * kw), dtype=x.dtype)   # the loops write every entry
    (_im2col_jit if jit else im2col_loops)(x, cols, kh, kw, sh, sw, ph, pw)
    return cols


def im2col_numpy(x, kh, kw, sh, sw, ph, pw):
    """im2col as views and one copy: pad, view every kh x kw window, keep every sh-th/sw-th,
    move the channel axis next to the window axes and flatten."""
    _check("im2col", "x", x, 4)
    N, C, H, W = x.shape
    OH, OW = _conv_out("im2col", H, W, kh, kw, sh, sw, ph, pw)
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    # (N, C, H+2ph-kh+1, W+2pw-kw+1, kh, kw) -> strided: (N, C, OH, OW, kh, kw), still a view
    windows = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    # copy() first: a reshape alone may return a read-only view of x (1x1 kernels, no padding)
    return windows.transpose(0, 2, 3, 1, 4, 5).copy().reshape(N * OH * OW, C * kh * kw)


# ---- col2im ---------------------------------------------------------------------------------

def col2im_loops(cols, dx, kh, kw, sh, sw, ph, pw):
    """Fills dx (N, C, H, W), which must start at zero, with col2im(cols) as a scatter-add.

    The mirror image of im2col_loops: walk the rows of cols front to back (reading memory in
    order, which is what makes this fast) and add each entry into the pixel it was copied from.
    Windows overlap, so two rows may add into one pixel; but all rows of an image write only
    that image, so one image per iteration keeps the threads apart: no races, no atomics.
    A pixel receives its entries in row order, i.e. window slots (i, j) from last to first;
    col2im_numpy adds in that same order, so the two paths agree exactly.
    """
    N, C, H, W = dx.shape
    OH = (H + 2 * ph - kh) // sh + 1
    OW = (W + 2 * pw - kw) // sw + 1
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


_col2im_jit = _Jitted(col2im_loops, parallel=True)


def _col2im_checked(cols, x_shape, kh, kw, sh, sw, ph, pw):
    _check("col2im", "cols", cols, 2)
    if len(x_shape) != 4:
        raise ValueError(f"col2im: x_shape must be (N, C, H, W), got {tuple(x_shape)}")
    N, C, H, W = (int(s) for s in x_shape)
    OH, OW = _conv_out("col2im", H, W, kh, kw, sh, sw, ph, pw)
    if cols.shape != (N * OH * OW, C * kh * kw):   # the loops would read out of bounds
        raise ValueError(f"col2im: cols has shape {cols.shape}, but im2col of x_shape "
                         f"{(N, C, H, W)} gives {(N * OH * OW, C * kh * kw)}")
    return N, C, H, W, OH, OW


def col2im_numba(cols, x_shape, kh, kw, sh, sw, ph, pw, jit=True):
    """col2im by explicit loops (a scatter-add per image); ``jit=False`` runs them as plain Python."""
    N, C, H, W, _, _ = _col2im_checked(cols, x_shape, kh, kw, sh, sw, ph, pw)
    dx = np.zeros((N, C, H, W), dtype=cols.dtype)
    (_col2im_jit if jit else col2im_loops)(cols, dx, kh, kw, sh, sw, ph, pw)
    return dx


def col2im_numpy(cols, x_shape, kh, kw, sh, sw, ph, pw):
    """col2im as kh*kw strided slice-adds into a padded image, which is then cropped.

    Kernel slot (i, j) of all windows at once covers the padded pixels i, i + sh, ... and
    j, j + sw, ..., so one slice-add per slot routes every entry home; slots that overlap
    add up. (Padded pixels collect the entries of the padding, and are cropped away.)
    """
    N, C, H, W, OH, OW = _col2im_checked(cols, x_shape, kh, kw, sh, sw, ph, pw)
    # One transposing copy first, so that each of the kh*kw adds below reads contiguous memory
    # instead of striding across rows of cols.
    slots = np.ascontiguousarray(cols.reshape(N, OH, OW, C, kh, kw).transpose(4, 5, 0, 3, 1, 2))
    padded = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    # slots from last to first: the order in which col2im_loops adds, so both give equal bits
    for i in reversed(range(kh)):
        for j in reversed(range(kw)):
            padded[:, :, i:i + sh * (OH - 1) + 1:sh, j:j + sw * (OW - 1) + 1:sw] += slots[i, j]
    return np.ascontiguousarray(padded[:, :, ph:ph + H, pw:pw + W])


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


_maxpool_forward_jit = _Jitted(maxpool2d_forward_loops, parallel=True)


def _maxpool_forward_checked(x, kh, kw, sh, sw, ph, pw, oh, ow):
    _check("maxpool2d_forward", "x", x, 4)
    N, C, H, W = x.shape
    _check_pool("maxpool2d_forward", H, W, kh, kw, sh, sw, ph, pw, oh, ow)
    y = np.empty((N, C, oh, ow), dtype=x.dtype)     # every entry gets written
    idx = np.empty((N, C, oh, ow), dtype=np.int64)
    return y, idx


def maxpool2d_forward_numba(x, kh, kw, sh, sw, ph, pw, oh, ow, jit=True):
    """Max-pool forward by explicit loops; ``jit=False`` runs them as plain Python."""
    y, idx = _maxpool_forward_checked(x, kh, kw, sh, sw, ph, pw, oh, ow)
    N, C, H, W = x.shape
    planes = (x.reshape(N * C, H, W), y.reshape(N * C, oh, ow), idx.reshape(N * C, oh, ow))
    (_maxpool_forward_jit if jit else maxpool2d_forward_loops)(*planes, kh, kw, sh, sw, ph, pw)
    return y, idx


def maxpool2d_forward_numpy(x, kh, kw, sh, sw, ph, pw, oh, ow):
    """Max-pool forward as kh*kw whole-array steps: window slot (i, j) of every window at once
    (a strided slice of the padded input) challenges the best so far, under the same rule as
    the loops (first candidate, strictly greater, or a NaN over a number)."""
    y, idx = _maxpool_forward_checked(x, kh, kw, sh, sw, ph, pw, oh, ow)
    N, C, H, W = x.shape
    # Pad far enough for ceil_mode's last windows. The pad value never matters: `inside`
    # keeps padding out of the contest (a pad of -inf alone would tie with a real -inf).
    bottom, right = max(0, (oh - 1) * sh + kh - H - ph), max(0, (ow - 1) * sw + kw - W - pw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, bottom), (pw, right)))
    top, left = np.arange(oh) * sh - ph, np.arange(ow) * sw - pw   # window corners, in x
    idx.fill(-1)
    for i in range(kh):
        rows = (top + i)[:, None]                                    # (oh, 1)
        for j in range(kw):
            cols = (left + j)[None, :]                               # (1, ow)
            inside = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
            v = xp[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
            with np.errstate(invalid="ignore"):   # y is unset where idx < 0; masked anyway
                wins = inside & ((idx < 0) | (v > y) | (np.isnan(v) & ~np.isnan(y)))
            np.copyto(y, v, where=wins)
            np.copyto(idx, rows * W + cols, where=wins)
    return y, idx


# ---- max-pool backward ----------------------------------------------------------------------

def maxpool2d_backward_loops(gy, idx, dx):
    """dx[p, idx[p, a]] += gy[p, a] for planes p and windows a (gy, idx: (P, oh*ow); dx:
    (P, H*W), zero on entry). Overlapping windows may pick the same pixel, but always within
    one plane, and each plane belongs to one iteration: the scatter is race-free."""
    for p in prange(gy.shape[0]):
        for a in range(gy.shape[1]):
            dx[p, idx[p, a]] += gy[p, a]


_maxpool_backward_jit = _Jitted(maxpool2d_backward_loops, parallel=True)


def _maxpool_backward_checked(gy, idx, x_shape):
    op = "maxpool2d_backward"
    _check(op, "gy", gy, 4)
    _check(op, "idx", idx, 4, dtypes=(np.int64,))
    if len(x_shape) != 4:
        raise ValueError(f"{op}: x_shape must be (N, C, H, W), got {tuple(x_shape)}")
    N, C, H, W = (int(s) for s in x_shape)
    if idx.shape != gy.shape or gy.shape[:2] != (N, C):
        raise ValueError(f"{op}: gy {gy.shape} and idx {idx.shape} must be equal and match "
                         f"x_shape {(N, C, H, W)} in batch and channels")
    # An index outside the plane would make the loops write outside dx (Numba does not check).
    if idx.size and (idx.min() < 0 or idx.max() >= H * W):
        raise ValueError(f"{op}: idx holds values outside [0, {H * W}), the plane size of "
                         f"x_shape {(N, C, H, W)}; is it the idx of maxpool2d_forward?")
    return np.zeros((N, C, H, W), dtype=gy.dtype)


def maxpool2d_backward_numba(gy, idx, x_shape, jit=True):
    """Max-pool backward by explicit loops; ``jit=False`` runs them as plain Python."""
    dx = _maxpool_backward_checked(gy, idx, x_shape)
    N, C, H, W = dx.shape
    A = gy.shape[2] * gy.shape[3]           # windows per plane (not -1: N may be 0)
    planes = (gy.reshape(N * C, A), idx.reshape(N * C, A), dx.reshape(N * C, H * W))
    (_maxpool_backward_jit if jit else maxpool2d_backward_loops)(*planes)
    return dx


def maxpool2d_backward_numpy(gy, idx, x_shape):
    """Max-pool backward with np.add.at, which (unlike ``dx[...] += gy``) adds every
    repeated index instead of keeping only the last write, in the order the loops add."""
    dx = _maxpool_backward_checked(gy, idx, x_shape)
    N, C, H, W = dx.shape
    P, A = N * C, gy.shape[2] * gy.shape[3]
    np.add.at(dx.reshape(P, H * W), (np.arange(P)[:, None], idx.reshape(P, A)), gy.reshape(P, A))
    return dx


# ---- the public kernels: the faster path of each ----------------------------------------------
# benchmarks/cpu_kernels.py, batch 128, float32, 2 cores (ms, NumPy -> Numba; Numba wins each):
#   im2col       conv1 2.5 -> 0.7   conv2 19.7 -> 4.4   conv3 10.5 -> 2.1
#                (NumPy pads, then copies a 6-D strided view: two passes, short inner loops)
#   col2im       conv1 1.3 -> 1.0   conv2 35 -> 11      conv3 22 -> 4.7
#                (NumPy transposes cols, then makes kh*kw passes over dx)
#   max-pool fwd pool1 45 -> 8.1    pool2 23 -> 4.3     pool3 17 -> 2.4
#                (NumPy makes ~8 whole-array passes per window slot; the loops make one)
#   max-pool bwd pool1 14 -> 1.1    pool2 6.8 -> 0.3    pool3 4.4 -> 0.2   (np.add.at is slow)
# Cold start, once per process: importing Numba ~0.2 s; the first call of each kernel and dtype
# compiles for 0.3-1.6 s, or, once that is on disk, loads in ~0.01 s (plus ~0.2 s for the first
# parallel kernel of the process, which starts Numba's thread pool).

def im2col(x, kh, kw, sh, sw, ph, pw):
    """cols (N*OH*OW, C*kh*kw) with cols[(n, oy, ox), (c, i, j)] = x[n, c, oy*sh - ph + i,
    ox*sw - pw + j], 0 in the padding."""
    return im2col_numba(x, kh, kw, sh, sw, ph, pw)


def col2im(cols, x_shape, kh, kw, sh, sw, ph, pw):
    """dx (x_shape), the adjoint of im2col: each pixel sums the cols entries copied from it."""
    return col2im_numba(cols, x_shape, kh, kw, sh, sw, ph, pw)


def maxpool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow):
    """(y, idx), both (N, C, oh, ow): the max of each window over its positions inside x, and
    the flat index h*W + w (in its H*W plane) of the first maximum in row-major window order."""
    return maxpool2d_forward_numba(x, kh, kw, sh, sw, ph, pw, oh, ow)


def maxpool2d_backward(gy, idx, x_shape, kh=None, kw=None, sh=None, sw=None, ph=None, pw=None):
    """dx (x_shape) with dx[n, c].flat[idx[n, c, a, b]] += gy[n, c, a, b].

    The window geometry is accepted, so callers can treat this and the CUDA twin alike, but
    unused: this scatter needs only idx (the GPU gather needs the windows covering each pixel).
    """
    return maxpool2d_backward_numba(gy, idx, x_shape)
