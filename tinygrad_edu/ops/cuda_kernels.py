"""GPU kernels: the CUDA C sources in ``kernels/*.cu``, compiled by CuPy at first use.

Each public function mirrors its Numba twin in ``cpu_kernels``: same arguments, same layouts,
same results up to float32 rounding. It asserts what the kernel relies on (dtype, rank,
contiguity, shapes, a window geometry that passed ``ops/geometry.py``: its callers, the ops in
``nn_ops`` fed by ``nn.functional``, have checked the arguments, but a raw CUDA kernel checks
nothing and would read out of bounds), allocates the outputs, and launches one kernel with
one thread per output element (per row for softmax cross-entropy, per state unit for the
recurrent cells).

How a source becomes a running kernel:

1. :func:`kernel_dir` finds the ``.cu`` files: ``tinygrad_edu/_kernels`` in an installed wheel,
   ``kernels/`` at the top of a source checkout.
2. ``cupy.RawModule(code=source)`` compiles a file with NVRTC, once per (file, GPU): see
   :func:`_function`.
3. ``kernel((blocks,), (threads,), args)`` launches it. Arrays travel as pointers; every size
   travels as a 64-bit ``long long``, matching the kernels' signatures.

The asserts run before anything touches CuPy, so they are testable on a machine without a GPU
(``tests/kernels/test_cuda_emulated.py`` runs them, and the kernels themselves, on the CPU).
"""
from pathlib import Path

import numpy as np

from ..backend import _import_cupy
from .geometry import assert_fits, assert_windows_hold_pixels

__all__ = ["im2col", "col2im", "maxpool2d_forward", "maxpool2d_backward",
           "softmax_ce_forward", "softmax_ce_backward", "lstm_cell_forward", "lstm_cell_backward",
           "gru_cell_forward", "gru_cell_backward", "kernel_dir", "launch_config"]

THREADS_PER_BLOCK = 256   # a multiple of the 32-thread warp; a common default
MAX_BLOCKS = 65535        # enough blocks to fill any GPU; the grid-stride loops cover the rest

_MODULES = {}             # (file name, device id) -> compiled cupy.RawModule


# ---- finding, compiling and launching --------------------------------------------------------

def kernel_dir():
    """The directory holding the ``.cu`` sources (installed package first, then the checkout)."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_kernels", package.parent / "kernels"):
        if (candidate / "im2col.cu").is_file():
            return candidate
    raise FileNotFoundError(f"CUDA kernel sources not found in {package / '_kernels'} or "
                            f"{package.parent / 'kernels'}; was the package built without them?")


def launch_config(n):
    """(blocks, threads per block) for ``n`` elements: enough blocks for one element per thread,
    capped at MAX_BLOCKS, where the kernels' grid-stride loops give each thread several."""
    blocks = min((n + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK, MAX_BLOCKS)
    return max(blocks, 1), THREADS_PER_BLOCK


def _function(filename, name):
    """Kernel ``name`` from ``kernels/filename``, compiled once per file and GPU."""
    cp = _import_cupy()
    key = (filename, cp.cuda.Device().id)
    module = _MODULES.get(key)
    if module is None:
        source = (kernel_dir() / filename).read_text()
        module = _MODULES[key] = cp.RawModule(code=source)
    return module.get_function(name)


def _launch(filename, name, n, *args):
    """Run kernel ``name`` over ``n`` elements. Arrays pass as pointers, ints as int64."""
    if n == 0:
        return   # a grid of zero blocks is an error in CUDA, and there is nothing to do
    cp = _import_cupy()
    arrays = [a for a in args if not isinstance(a, (int, np.integer))]
    for a in arrays:
        if not isinstance(a, cp.ndarray):
            raise TypeError(f"CUDA kernel {name}: expects CuPy arrays on the GPU, "
                            f"got {type(a).__module__}.{type(a).__name__}")
        if a.device.id != arrays[0].device.id:
            raise ValueError(f"CUDA kernel {name}: arrays on different GPUs "
                             f"({arrays[0].device.id} and {a.device.id})")
    with cp.cuda.Device(arrays[0].device.id):   # compile for, and run on, the data's GPU
        kernel = _function(filename, name)
        blocks, threads = launch_config(n)
        kernel((blocks,), (threads,),
               tuple(a if isinstance(a, cp.ndarray) else np.int64(a) for a in args))


def _empty(like, shape, dtype):
    """An uninitialised output array on the same device as ``like`` (every entry gets written)."""
    if isinstance(like, np.ndarray):
        return np.empty(shape, dtype=dtype)   # _launch will refuse it: NumPy is not on a GPU
    cp = _import_cupy()
    with cp.cuda.Device(like.device.id if isinstance(like, cp.ndarray) else None):
        return cp.empty(shape, dtype=dtype)


# ---- preconditions (asserted: the callers in nn_ops, fed by nn.functional, checked them) ------

def _assert_array(op, name, a, dtype, ndim):
    """A raw CUDA kernel checks nothing, and reads out of bounds (or reinterprets the bytes) on
    a wrong dtype, rank or layout. (No CuPy needed: a NumPy array has the same attributes.)"""
    assert (a.dtype == dtype and a.ndim == ndim and a.flags.c_contiguous), (
        f"{op}: {name} must be a C-contiguous {ndim}-D {np.dtype(dtype).name} array, got "
        f"{a.dtype} of shape {tuple(a.shape)}, strides {a.strides}")


# ---- the kernels -----------------------------------------------------------------------------

def im2col(x, kh, kw, sh, sw, ph, pw):
    """cols (N*OH*OW, C*kh*kw): row (n, oy, ox), column (c, i, j) holds
    x[n, c, oy*sh - ph + i, ox*sw - pw + j], 0 in the padding."""
    _assert_array("im2col", "x", x, np.float32, 4)
    N, C, H, W = x.shape
    geometry = (kh, kw, sh, sw, ph, pw)
    OH, OW = assert_fits("im2col", (H, W), geometry)
    cols = _empty(x, (N * OH * OW, C * kh * kw), np.float32)
    _launch("im2col.cu", "im2col", cols.size, x, cols, N, C, H, W, *geometry, OH, OW)
    return cols


def col2im(cols, x_shape, kh, kw, sh, sw, ph, pw):
    """dx (N, C, H, W), the adjoint of im2col: each pixel sums the cols entries copied from it."""
    _assert_array("col2im", "cols", cols, np.float32, 2)
    N, C, H, W = x_shape
    geometry = (kh, kw, sh, sw, ph, pw)
    OH, OW = assert_fits("col2im", (H, W), geometry)
    assert tuple(cols.shape) == (N * OH * OW, C * kh * kw), (
        f"col2im: cols has shape {tuple(cols.shape)}, im2col of x_shape {tuple(x_shape)} gives "
        f"{(N * OH * OW, C * kh * kw)}")
    dx = _empty(cols, (N, C, H, W), np.float32)
    _launch("im2col.cu", "col2im", dx.size, cols, dx, N, C, H, W, *geometry, OH, OW)
    return dx


def maxpool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow):
    """(y, idx), both (N, C, oh, ow): the max over each window's in-bounds positions and the
    flat index h*W + w (in the H*W plane) of its first maximum in row-major window order."""
    _assert_array("maxpool2d_forward", "x", x, np.float32, 4)
    N, C, H, W = x.shape
    geometry = (kh, kw, sh, sw, ph, pw)
    assert_windows_hold_pixels("maxpool2d_forward", (H, W), geometry, (oh, ow))
    y = _empty(x, (N, C, oh, ow), np.float32)
    idx = _empty(x, (N, C, oh, ow), np.int64)
    _launch("maxpool.cu", "maxpool2d_forward", y.size, x, y, idx, N, C, H, W, *geometry, oh, ow)
    return y, idx


def maxpool2d_backward(gy, idx, x_shape, kh, kw, sh, sw, ph, pw):
    """dx (x_shape) with dx[n, c].flat[idx] += gy. Unlike the CPU scatter, the GPU gather needs
    the window geometry (the same as forward's) to find the windows covering each pixel."""
    op = "maxpool2d_backward"
    _assert_array(op, "gy", gy, np.float32, 4)
    _assert_array(op, "idx", idx, np.int64, 4)
    N, C, H, W = x_shape
    assert idx.shape == gy.shape and tuple(gy.shape[:2]) == (N, C), (
        f"{op}: gy {tuple(gy.shape)} and idx {tuple(idx.shape)} must be equal and match x_shape "
        f"{tuple(x_shape)} in batch and channels")
    oh, ow = gy.shape[2:]
    geometry = (kh, kw, sh, sw, ph, pw)
    assert_windows_hold_pixels(op, (H, W), geometry, (oh, ow))
    dx = _empty(gy, (N, C, H, W), np.float32)
    _launch("maxpool.cu", "maxpool2d_backward", dx.size, gy, idx, dx, N, C, H, W, *geometry,
            oh, ow)
    return dx


def _assert_rows(op, logits, labels, **per_row):
    """logits (N, K) float32 with K >= 1, labels (N,) int64, and one float32 value per row in
    each array of ``per_row``; returns (N, K)."""
    _assert_array(op, "logits", logits, np.float32, 2)
    _assert_array(op, "labels", labels, np.int64, 1)
    N, K = logits.shape
    assert K >= 1 and labels.shape[0] == N, (
        f"{op}: logits {(N, K)} needs a class and one label per row, got labels "
        f"{tuple(labels.shape)}")
    for name, a in per_row.items():
        _assert_array(op, name, a, np.float32, 1)
        assert a.shape[0] == N, f"{op}: {name} has shape {tuple(a.shape)}, logits {(N, K)}"
    return N, K


def softmax_ce_forward(logits, labels):
    """(loss, lse), both (N,): lse = logsumexp of each row, loss = lse - logits[n, labels[n]].
    A label outside [0, K) gives a NaN loss (nn.functional checks labels before)."""
    N, K = _assert_rows("softmax_ce_forward", logits, labels)
    loss = _empty(logits, (N,), np.float32)
    lse = _empty(logits, (N,), np.float32)
    _launch("softmax_ce.cu", "softmax_ce_forward", N, logits, labels, loss, lse, N, K)
    return loss, lse


def softmax_ce_backward(logits, labels, lse, gy):
    """dlogits (N, K) = gy[:, None] * (softmax(logits) - onehot(labels)), softmax from lse."""
    N, K = _assert_rows("softmax_ce_backward", logits, labels, lse=lse, gy=gy)
    dlogits = _empty(logits, (N, K), np.float32)
    _launch("softmax_ce.cu", "softmax_ce_backward", N, logits, labels, lse, gy, dlogits, N, K)
    return dlogits


# ---- the fused recurrent cells (float32 and float64: one entry point per dtype) --------------

_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}   # kernel name endings


def _assert_cell(op, **arrays):
    """Each keyword is ``name=(array, G)``: a C-contiguous 2-D array of shape (N, G*H), all of
    one dtype, float32 or float64, with N and H read off the first; returns (N, H, suffix)."""
    (first, (a0, g0)), *_ = arrays.items()
    dtype = np.dtype(a0.dtype)
    assert dtype in _SUFFIX, f"{op}: {first} must be float32 or float64, got {dtype}"
    assert a0.ndim == 2 and a0.shape[1] % g0 == 0, (
        f"{op}: {first} must be 2-D with {g0}*H columns, got shape {tuple(a0.shape)}")
    N, H = a0.shape[0], a0.shape[1] // g0
    for name, (a, g) in arrays.items():
        _assert_array(op, name, a, dtype, 2)
        assert tuple(a.shape) == (N, g * H), (
            f"{op}: {name} must have shape {(N, g * H)} (N={N}, H={H} from {first} "
            f"{tuple(a0.shape)}), got {tuple(a.shape)}")
    return N, H, _SUFFIX[dtype]


def lstm_cell_forward(gates, c_prev):
    """(h, c, act) of one LSTM step from the pre-activations gates (N, 4H) = [i | f | g | o] and
    c_prev (N, H): c = f*c_prev + i*g, h = o*tanh(c), act (N, 5H) = [i | f | g | o | tanh(c)]
    with sigmoid i, f, o and tanh g. See kernels/lstm_cell.cu."""
    N, H, suffix = _assert_cell("lstm_cell_forward", gates=(gates, 4), c_prev=(c_prev, 1))
    h, c = _empty(gates, (N, H), gates.dtype), _empty(gates, (N, H), gates.dtype)
    act = _empty(gates, (N, 5 * H), gates.dtype)
    _launch("lstm_cell.cu", f"lstm_cell_forward_{suffix}", N * H, gates, c_prev, h, c, act, N, H)
    return h, c, act


def lstm_cell_backward(dh, dc, act, c_prev):
    """(dgates (N, 4H), dc_prev (N, H)) from dh = dL/dh, dc = dL/dc of later steps (zeros at the
    last), and forward's act and c_prev: with dct = dc + dh*o*(1 - tanh(c)^2), dgates =
    [dct*g*i(1-i) | dct*c_prev*f(1-f) | dct*i*(1-g^2) | dh*tanh(c)*o(1-o)], dc_prev = dct*f."""
    N, H, suffix = _assert_cell("lstm_cell_backward", act=(act, 5), dh=(dh, 1), dc=(dc, 1),
                                c_prev=(c_prev, 1))
    dgates = _empty(act, (N, 4 * H), act.dtype)
    dc_prev = _empty(act, (N, H), act.dtype)
    _launch("lstm_cell.cu", f"lstm_cell_backward_{suffix}", N * H, dh, dc, act, c_prev, dgates,
            dc_prev, N, H)
    return dgates, dc_prev


def gru_cell_forward(xg, hg, h_prev):
    """(h, act) of one GRU step from xg = x W_ih^T + b_ih and hg = h_prev W_hh^T + b_hh, both
    (N, 3H) = [r | z | n]: r, z = sigmoid(xg + hg), n = tanh(xg_n + r*hg_n),
    h = (1 - z)*n + z*h_prev, act (N, 4H) = [r | z | n | hg_n]. See kernels/gru_cell.cu."""
    N, H, suffix = _assert_cell("gru_cell_forward", xg=(xg, 3), hg=(hg, 3), h_prev=(h_prev, 1))
    h = _empty(xg, (N, H), xg.dtype)
    act = _empty(xg, (N, 4 * H), xg.dtype)
    _launch("gru_cell.cu", f"gru_cell_forward_{suffix}", N * H, xg, hg, h_prev, h, act, N, H)
    return h, act


def gru_cell_backward(dh, act, h_prev):
    """(dxg, dhg (N, 3H), dh_prev (N, H)) from dh = dL/dh and forward's act and h_prev:
    dxg = [dr | dz | dn], dhg = [dr | dz | dn*r] for the pre-activation gradients dr, dz, dn,
    and dh_prev = dh*z, the direct path only (the path through hg is the caller's matmul)."""
    N, H, suffix = _assert_cell("gru_cell_backward", act=(act, 4), dh=(dh, 1),
                                h_prev=(h_prev, 1))
    dxg, dhg = _empty(act, (N, 3 * H), act.dtype), _empty(act, (N, 3 * H), act.dtype)
    dh_prev = _empty(act, (N, H), act.dtype)
    _launch("gru_cell.cu", f"gru_cell_backward_{suffix}", N * H, dh, act, h_prev, dxg, dhg,
            dh_prev, N, H)
    return dxg, dhg, dh_prev
