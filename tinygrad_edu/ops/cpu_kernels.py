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
    lstm_cell_forward / _backward, gru_cell_forward / _backward: one step of the fused recurrent
             cells, on (N, G*H) arrays of pre-activations; the equations and layouts are the
             functions' docstrings (PyTorch's gate orders i, f, g, o and r, z, n).

Each kernel is a plain Python function of loops (``*_loops``, importable and callable as is),
compiled at module level by ``numba.njit(cache=True, parallel=True)``: its ``prange`` loop is
split over the CPU's threads, and the machine code is saved on disk, so later processes load it
instead of compiling again. (The cells' forward steps are serial, and take a NumPy path in
float64: see their section.) ``NUMBA_DISABLE_JIT=1`` leaves every kernel its plain function, for
debugging with print or pdb. Nothing imports this module before a conv or pool runs on the CPU
(``ops/nn_ops.py`` imports it on first use), so ``import tinygrad_edu`` never pays for Numba.

The public functions allocate the outputs and call the compiled loops. Their callers (the ops
in ``nn_ops`` and ``recurrent``, fed by ``nn``) have checked every argument, so they only ``assert``
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

__all__ = ["im2col", "col2im", "maxpool2d_forward", "maxpool2d_backward", "lstm_cell_forward",
           "lstm_cell_backward", "gru_cell_forward", "gru_cell_backward"]

FLOATS = (np.float32, np.float64)


def _compile(loops, **options):
    """``loops`` compiled by Numba (parallel, unless ``options`` say otherwise), with its machine
    code cached on disk.

    Numba keeps the cache in NUMBA_CACHE_DIR when that is set, else next to this file
    (``__pycache__``), else in the user's cache directory (a read-only install); where it can
    write none of them it raises RuntimeError "no locator available", and the kernel is then
    compiled afresh in each process instead.
    """
    options = {"parallel": True, **options}
    try:
        return njit(cache=True, **options)(loops)
    except RuntimeError:
        return njit(cache=False, **options)(loops)


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

    Each window is clipped to the input first (rows i0..i1, columns j0..j1), so padding never
    wins and windows clipped by ceil_mode just have fewer candidates. Candidates come in
    row-major window order and only a strictly greater value replaces the best, so ties keep
    the first maximum. A NaN counts as the maximum (as np.max and PyTorch do): it replaces any
    number, and nothing replaces it. The choice is written as two selects rather than an
    ``if``: after a ReLU, which candidate wins is a coin toss the CPU's branch predictor
    cannot learn, and the branch-free loop is 1.65x faster (the convnet's first pool, batch
    128, 2 threads: 6.8 -> 4.1 ms).
    """
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        plane = x[p]
        for oy in range(OH):
            i0, i1 = max(oy * sh - ph, 0), min(oy * sh - ph + kh, H)
            for ox in range(OW):
                j0, j1 = max(ox * sw - pw, 0), min(ox * sw - pw + kw, W)
                best, best_idx = plane[i0, j0], i0 * W + j0
                for i in range(i0, i1):
                    for j in range(j0, j1):
                        v = plane[i, j]
                        take = (v > best) | ((v != v) & (best == best))  # v != v: v is NaN
                        best = v if take else best
                        best_idx = i * W + j if take else best_idx
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


# ---- the recurrent cells -----------------------------------------------------------------------
# One time step, on the (N, G*H) pre-activations (the matrix multiplies are the caller's). They
# are small (batch 64, hidden 128: 8192 units) and run once per step, so every microsecond
# counts; benchmarked at that size on 2 cores (benchmarks/rnn.py runs the whole layers):
#   lstm forward   float32: NumPy 65 us (a dozen whole-array passes) -> loops below 27 us
#   lstm backward  float32: NumPy 60 us -> loops 20 us (only products and sums: one pass)
# All serial: split over 2 threads the backward took 10 us alone, but 90 us inside the layer,
# between matrix multiplies, whose OpenBLAS threads keep spinning on the other core a while.
# The forward loops are mostly tanh. Numba calls the C library's tanh once per element, which
# is 10x slower than NumPy's SIMD tanh; but a rational function (below) is plain arithmetic
# that the compiler vectorizes. Its error is a few float32 ulps (4e-7), too coarse for float64, so
# float64 takes a whole-array NumPy path (used by the gradient checks, on tiny shapes) instead.
# ``error_model="numpy"``: a division by zero gives inf or NaN, as in NumPy, rather than the
# check for Python's ZeroDivisionError that keeps the compiler from vectorizing the division.
# sigmoid(x) = (1 + tanh(x/2)) / 2 everywhere: stable for any x (exp(-x) would overflow).

_TANH_P = tuple(np.float32(v) for v in (4.89352455891786e-03, 6.37261928875436e-04,
                                        1.48572235717979e-05, 5.12229709037114e-08,
                                        -8.60467152213735e-11, 2.00018790482477e-13,
                                        -2.76076847742355e-16))
_TANH_Q = tuple(np.float32(v) for v in (4.89352518554385e-03, 2.26843463243900e-03,
                                        1.18534705686654e-04, 1.19825839466702e-06))
_TANH_CLAMP = np.float32(7.90531110763549805)   # beyond it tanh(x) is 1 to within 3.7e-7
_HALF = np.float32(0.5)


def tanh32(x):
    """tanh of a float32 as p(x) / q(x), odd and even polynomials in x (the rational
    approximation of Eigen and TensorFlow): relative error below 4e-7 (NumPy's float32 tanh:
    6e-8), +-inf -> +-1, and NaN stays NaN."""
    x = _TANH_CLAMP if x > _TANH_CLAMP else x       # (comparisons with NaN are False)
    x = -_TANH_CLAMP if x < -_TANH_CLAMP else x
    x2 = x * x
    a1, a3, a5, a7, a9, a11, a13 = _TANH_P
    b0, b2, b4, b6 = _TANH_Q
    p = x * (a1 + x2 * (a3 + x2 * (a5 + x2 * (a7 + x2 * (a9 + x2 * (a11 + x2 * a13))))))
    return p / (b0 + x2 * (b2 + x2 * (b4 + x2 * b6)))


_tanh32 = njit(inline="always", error_model="numpy")(tanh32)


def _assert_cell(op, N, H, **arrays):
    """Each keyword is name=(array, G): a C-contiguous (N, G*H) float array, one dtype for all."""
    dtype = next(iter(arrays.values()))[0].dtype
    for name, (a, g) in arrays.items():
        _assert_array(op, name, a, 2, (dtype,) if dtype in FLOATS else FLOATS)
        assert a.shape == (N, g * H), f"{op}: {name} has shape {a.shape}, expected {(N, g * H)}"


def lstm_cell_forward_loops(gates, c_prev, h, c, act):
    """Fills h, c (N, H) and act (N, 5H) from float32 gates and c_prev; see lstm_cell_forward.
    One short loop per gate and row, rather than one loop doing everything: each touches two or
    three arrays, which the compiler vectorizes; the single big loop it left scalar (4x slower).
    """
    N, H = c_prev.shape
    for n in range(N):
        for j in range(2 * H):                       # i and f
            act[n, j] = _HALF + _HALF * _tanh32(_HALF * gates[n, j])
        for j in range(2 * H, 3 * H):                # g
            act[n, j] = _tanh32(gates[n, j])
        for j in range(3 * H, 4 * H):                # o
            act[n, j] = _HALF + _HALF * _tanh32(_HALF * gates[n, j])
        for j in range(H):
            c[n, j] = act[n, H + j] * c_prev[n, j] + act[n, j] * act[n, 2 * H + j]
        for j in range(H):
            act[n, 4 * H + j] = _tanh32(c[n, j])
            h[n, j] = act[n, 3 * H + j] * act[n, 4 * H + j]


_lstm_cell_forward = _compile(lstm_cell_forward_loops, parallel=False, error_model="numpy")


def lstm_cell_forward(gates, c_prev):
    """(h, c, act) of one LSTM step. gates (N, 4H) = x W_ih^T + b_ih + h_prev W_hh^T + b_hh, in
    PyTorch's order [i | f | g | o]; c_prev (N, H):

        i, f, o = sigmoid(gates_i, gates_f, gates_o);  g = tanh(gates_g)
        c = f * c_prev + i * g;  h = o * tanh(c);  act (N, 5H) = [i | f | g | o | tanh(c)]
    """
    N, H = c_prev.shape
    _assert_cell("lstm_cell_forward", N, H, gates=(gates, 4), c_prev=(c_prev, 1))
    if gates.dtype == np.float64:
        return _lstm_cell_forward_numpy(gates, c_prev)
    h, c = np.empty((N, H), dtype=gates.dtype), np.empty((N, H), dtype=gates.dtype)
    act = np.empty((N, 5 * H), dtype=gates.dtype)
    _lstm_cell_forward(gates, c_prev, h, c, act)
    return h, c, act


def _lstm_cell_forward_numpy(gates, c_prev):
    """lstm_cell_forward with whole arrays and NumPy's tanh, exact in float64."""
    N, H = c_prev.shape
    act = np.empty((N, 5 * H), dtype=gates.dtype)
    sigmoid = (0.5 + 0.5 * np.tanh(0.5 * gates[:, k * H:(k + 1) * H]) for k in (0, 1, 3))
    act[:, :H], act[:, H:2 * H], act[:, 3 * H:4 * H] = sigmoid
    act[:, 2 * H:3 * H] = np.tanh(gates[:, 2 * H:3 * H])
    c = act[:, H:2 * H] * c_prev + act[:, :H] * act[:, 2 * H:3 * H]
    act[:, 4 * H:] = np.tanh(c)
    return act[:, 3 * H:4 * H] * act[:, 4 * H:], c, act


def lstm_cell_backward_loops(dh, dc, act, c_prev, dgates, dc_prev, one):
    """Fills dgates (N, 4H) and dc_prev (N, H); see lstm_cell_backward. ``one`` is 1 in the
    arrays' dtype: a literal 1 would make Numba compute float32 in float64, twice as slow."""
    N, H = dh.shape
    for n in range(N):
        for j in range(H):
            i, f, g = act[n, j], act[n, H + j], act[n, 2 * H + j]
            o, tc = act[n, 3 * H + j], act[n, 4 * H + j]
            dct = dc[n, j] + dh[n, j] * o * (one - tc * tc)
            dgates[n, j] = dct * g * i * (one - i)
            dgates[n, H + j] = dct * c_prev[n, j] * f * (one - f)
            dgates[n, 2 * H + j] = dct * i * (one - g * g)
            dgates[n, 3 * H + j] = dh[n, j] * tc * o * (one - o)
            dc_prev[n, j] = dct * f


_lstm_cell_backward = _compile(lstm_cell_backward_loops, parallel=False)


def lstm_cell_backward(dh, dc, act, c_prev):
    """(dgates (N, 4H), dc_prev (N, H)) of lstm_cell_forward, from dh = dL/dh, dc = dL/dc (the
    gradient from later steps) and forward's act and c_prev:

        dct = dc + dh * o * (1 - tanh(c)^2);  dc_prev = dct * f
        dgates = [dct g i(1-i) | dct c_prev f(1-f) | dct i (1-g^2) | dh tanh(c) o(1-o)]
    """
    N, H = dh.shape
    _assert_cell("lstm_cell_backward", N, H, act=(act, 5), dh=(dh, 1), dc=(dc, 1),
                 c_prev=(c_prev, 1))
    dgates = np.empty((N, 4 * H), dtype=act.dtype)
    dc_prev = np.empty((N, H), dtype=act.dtype)
    _lstm_cell_backward(dh, dc, act, c_prev, dgates, dc_prev, act.dtype.type(1))
    return dgates, dc_prev


def gru_cell_forward_loops(xg, hg, h_prev, h, act):
    """Fills h (N, H) and act (N, 4H) from float32 xg, hg and h_prev; see gru_cell_forward.
    Short loops, for the compiler to vectorize, as in lstm_cell_forward_loops."""
    N, H = h_prev.shape
    for m in range(N):
        for j in range(2 * H):                       # r and z
            act[m, j] = _HALF + _HALF * _tanh32(_HALF * (xg[m, j] + hg[m, j]))
        for j in range(H):                           # n, and hg_n kept for backward
            act[m, 3 * H + j] = hg[m, 2 * H + j]
            act[m, 2 * H + j] = _tanh32(xg[m, 2 * H + j] + act[m, j] * hg[m, 2 * H + j])
        for j in range(H):
            n = act[m, 2 * H + j]
            h[m, j] = n + act[m, H + j] * (h_prev[m, j] - n)


_gru_cell_forward = _compile(gru_cell_forward_loops, parallel=False, error_model="numpy")


def gru_cell_forward(xg, hg, h_prev):
    """(h, act) of one GRU step. xg = x W_ih^T + b_ih and hg = h_prev W_hh^T + b_hh, both
    (N, 3H) in PyTorch's order [r | z | n]; h_prev (N, H):

        r = sigmoid(xg_r + hg_r);  z = sigmoid(xg_z + hg_z);  n = tanh(xg_n + r * hg_n)
        h = (1 - z) * n + z * h_prev;  act (N, 4H) = [r | z | n | hg_n]
    """
    N, H = h_prev.shape
    _assert_cell("gru_cell_forward", N, H, xg=(xg, 3), hg=(hg, 3), h_prev=(h_prev, 1))
    if xg.dtype == np.float64:
        return _gru_cell_forward_numpy(xg, hg, h_prev)
    h, act = np.empty((N, H), dtype=xg.dtype), np.empty((N, 4 * H), dtype=xg.dtype)
    _gru_cell_forward(xg, hg, h_prev, h, act)
    return h, act


def _gru_cell_forward_numpy(xg, hg, h_prev):
    """gru_cell_forward with whole arrays and NumPy's tanh, exact in float64."""
    H = h_prev.shape[1]
    rz = 0.5 + 0.5 * np.tanh(0.5 * (xg[:, :2 * H] + hg[:, :2 * H]))
    n = np.tanh(xg[:, 2 * H:] + rz[:, :H] * hg[:, 2 * H:])
    return n + rz[:, H:] * (h_prev - n), np.concatenate((rz, n, hg[:, 2 * H:]), axis=1)


def gru_cell_backward_loops(dh, act, h_prev, dxg, dhg, dh_prev, one):
    """Fills dxg, dhg (N, 3H) and dh_prev (N, H); see gru_cell_backward."""
    N, H = dh.shape
    for m in range(N):
        for j in range(H):
            r, z, n, hg_n = act[m, j], act[m, H + j], act[m, 2 * H + j], act[m, 3 * H + j]
            d = dh[m, j]
            dn = d * (one - z) * (one - n * n)  # the gradient of n's pre-activation
            dr = dn * hg_n * r * (one - r)
            dz = d * (h_prev[m, j] - n) * z * (one - z)
            dxg[m, j], dxg[m, H + j], dxg[m, 2 * H + j] = dr, dz, dn
            dhg[m, j], dhg[m, H + j], dhg[m, 2 * H + j] = dr, dz, dn * r
            dh_prev[m, j] = d * z


_gru_cell_backward = _compile(gru_cell_backward_loops, parallel=False)


def gru_cell_backward(dh, act, h_prev):
    """(dxg, dhg (N, 3H), dh_prev (N, H)) of gru_cell_forward, from dh = dL/dh and forward's act
    and h_prev. With the pre-activation gradients

        dn = dh (1 - z)(1 - n^2);  dr = dn hg_n r(1 - r);  dz = dh (h_prev - n) z(1 - z)

    dxg = [dr | dz | dn], dhg = [dr | dz | dn r] and dh_prev = dh z: only the direct path (the
    path through hg = h_prev W_hh^T is the caller's matrix multiply).
    """
    N, H = dh.shape
    _assert_cell("gru_cell_backward", N, H, act=(act, 4), dh=(dh, 1), h_prev=(h_prev, 1))
    dxg = np.empty((N, 3 * H), dtype=act.dtype)
    dhg = np.empty((N, 3 * H), dtype=act.dtype)
    dh_prev = np.empty((N, H), dtype=act.dtype)
    _gru_cell_backward(dh, act, h_prev, dxg, dhg, dh_prev, act.dtype.type(1))
    return dxg, dhg, dh_prev


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
