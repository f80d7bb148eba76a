"""GPU kernels: the CUDA C sources in ``kernels/*.cu``, compiled by CuPy at first use.

Each public function mirrors its NumPy/Numba twin in ``cpu_kernels``: same arguments, same
layouts, same results up to float32 rounding. It checks its inputs (a raw CUDA kernel checks
nothing and would read out of bounds on a wrong shape), allocates the outputs, and launches
one kernel with one thread per output element (per row for softmax cross-entropy).

How a source becomes a running kernel:

1. :func:`kernel_dir` finds the ``.cu`` files: ``tinygrad_edu/_kernels`` in an installed wheel,
   ``kernels/`` at the top of a source checkout.
2. ``cupy.RawModule(code=source)`` compiles a file with NVRTC, once per (file, GPU): see
   :func:`_function`.
3. ``kernel((blocks,), (threads,), args)`` launches it. Arrays travel as pointers; every size
   travels as a 64-bit ``long long``, matching the kernels' signatures.

The checks run before anything touches CuPy, so they are testable on a machine without a GPU
(``tests/kernels/test_cuda_emulated.py`` runs them, and the kernels themselves, on the CPU).
"""
from pathlib import Path

import numpy as np

from ..backend import _import_cupy

__all__ = ["im2col", "col2im", "maxpool2d_forward", "maxpool2d_backward",
           "softmax_ce_forward", "softmax_ce_backward", "kernel_dir", "launch_config"]

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


# ---- input checks (no CuPy needed: a NumPy array has the same dtype/shape/flags) -------------

def _check_array(op, name, a, dtype, ndim):
    if not all(hasattr(a, attr) for attr in ("dtype", "shape", "flags")):
        raise TypeError(f"{op}: {name} must be an array, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{op}: {name} must be {np.dtype(dtype).name}, got {a.dtype} "
                        f"(convert with .astype({np.dtype(dtype).name}))")
    if a.ndim != ndim:
        raise ValueError(f"{op}: {name} must be {ndim}-D, got shape {tuple(a.shape)}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{op}: {name} must be C-contiguous (use xp.ascontiguousarray), "
                         f"got strides {a.strides} for shape {tuple(a.shape)}")


def _check_ints(op, minimum, **values):
    """Each value must be an integer >= minimum; returns them as Python ints, in order."""
    out = []
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{op}: {name} must be an int, got {type(v).__name__}")
        if v < minimum:
            raise ValueError(f"{op}: {name} must be >= {minimum}, got {v}")
        out.append(int(v))
    return out


def _check_shape4(op, x_shape):
    if len(x_shape) != 4:
        raise ValueError(f"{op}: x_shape must be (N, C, H, W), got {tuple(x_shape)}")
    return _check_ints(op, 0, N=x_shape[0], C=x_shape[1], H=x_shape[2], W=x_shape[3])


def _conv_geometry(op, H, W, kh, kw, sh, sw, ph, pw):
    """Checked window parameters and the output size (OH, OW) of im2col."""
    kh, kw, sh, sw = _check_ints(op, 1, kh=kh, kw=kw, sh=sh, sw=sw)
    ph, pw = _check_ints(op, 0, ph=ph, pw=pw)
    if H + 2 * ph < kh or W + 2 * pw < kw:
        raise ValueError(f"{op}: kernel {kh}x{kw} is larger than the padded input "
                         f"{H + 2 * ph}x{W + 2 * pw}")
    return (kh, kw, sh, sw, ph, pw), ((H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1)


def _pool_geometry(op, H, W, kh, kw, sh, sw, ph, pw, oh, ow):
    """Checked window parameters for max-pooling to (oh, ow): every window must overlap the
    input (else its max would be undefined), i.e. the first starts before the padding ends
    (ph < kh) and the last starts inside (the ceil_mode rule (oh - 1)*sh - ph < H)."""
    kh, kw, sh, sw, oh, ow = _check_ints(op, 1, kh=kh, kw=kw, sh=sh, sw=sw, oh=oh, ow=ow)
    ph, pw = _check_ints(op, 0, ph=ph, pw=pw)
    if ph >= kh or pw >= kw:
        raise ValueError(f"{op}: padding ({ph}, {pw}) must be smaller than the kernel "
                         f"({kh}, {kw}), or the first window is all padding")
    if (oh - 1) * sh - ph >= H or (ow - 1) * sw - pw >= W:
        raise ValueError(f"{op}: output {oh}x{ow} is too large for input {H}x{W}: "
                         f"the last window would lie entirely in the padding")
    return kh, kw, sh, sw, ph, pw


def _check_rows(op, logits, labels):
    _check_array(op, "logits", logits, np.float32, 2)
    _check_array(op, "labels", labels, np.int64, 1)
    N, K = logits.shape
    if labels.shape[0] != N:
        raise ValueError(f"{op}: labels has shape {tuple(labels.shape)} but logits has "
                         f"shape {tuple(logits.shape)}: need one label per row")
    if K < 1:
        raise ValueError(f"{op}: logits needs at least one class, got shape {(N, K)}")
    return N, K


def _check_label_range(op, lowest, highest, K):
    if lowest < 0 or highest >= K:
        raise ValueError(f"{op}: labels must lie in [0, {K}), got values in "
                         f"[{lowest}, {highest}]")


# ---- the kernels -----------------------------------------------------------------------------

def im2col(x, kh, kw, sh, sw, ph, pw):
    """cols (N*OH*OW, C*kh*kw): row (n, oy, ox), column (c, i, j) holds
    x[n, c, oy*sh - ph + i, ox*sw - pw + j], 0 in the padding."""
    _check_array("im2col", "x", x, np.float32, 4)
    N, C, H, W = x.shape
    geometry, (OH, OW) = _conv_geometry("im2col", H, W, kh, kw, sh, sw, ph, pw)
    kh, kw = geometry[:2]
    cols = _empty(x, (N * OH * OW, C * kh * kw), np.float32)
    _launch("im2col.cu", "im2col", cols.size, x, cols, N, C, H, W, *geometry, OH, OW)
    return cols


def col2im(cols, x_shape, kh, kw, sh, sw, ph, pw):
    """dx (N, C, H, W), the adjoint of im2col: each pixel sums the cols entries copied from it."""
    _check_array("col2im", "cols", cols, np.float32, 2)
    N, C, H, W = _check_shape4("col2im", x_shape)
    geometry, (OH, OW) = _conv_geometry("col2im", H, W, kh, kw, sh, sw, ph, pw)
    kh, kw = geometry[:2]
    if tuple(cols.shape) != (N * OH * OW, C * kh * kw):
        raise ValueError(f"col2im: cols has shape {tuple(cols.shape)}, but im2col of x_shape "
                         f"{(N, C, H, W)} gives {(N * OH * OW, C * kh * kw)}")
    dx = _empty(cols, (N, C, H, W), np.float32)
    _launch("im2col.cu", "col2im", dx.size, cols, dx, N, C, H, W, *geometry, OH, OW)
    return dx


def maxpool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow):
    """(y, idx), both (N, C, oh, ow): the max over each window's in-bounds positions and the
    flat index h*W + w (in the H*W plane) of its first maximum in row-major window order."""
    _check_array("maxpool2d_forward", "x", x, np.float32, 4)
    N, C, H, W = x.shape
    geometry = _pool_geometry("maxpool2d_forward", H, W, kh, kw, sh, sw, ph, pw, oh, ow)
    y = _empty(x, (N, C, oh, ow), np.float32)
    idx = _empty(x, (N, C, oh, ow), np.int64)
    _launch("maxpool.cu", "maxpool2d_forward", y.size, x, y, idx, N, C, H, W, *geometry, oh, ow)
    return y, idx


def maxpool2d_backward(gy, idx, x_shape, kh, kw, sh, sw, ph, pw):
    """dx (x_shape) with dx[n, c].flat[idx] += gy. Unlike the CPU scatter, the GPU gather needs
    the window geometry (the same as forward's) to find the windows covering each pixel."""
    op = "maxpool2d_backward"
    _check_array(op, "gy", gy, np.float32, 4)
    _check_array(op, "idx", idx, np.int64, 4)
    if idx.shape != gy.shape:
        raise ValueError(f"{op}: idx has shape {tuple(idx.shape)} but gy has {tuple(gy.shape)}")
    N, C, H, W = _check_shape4(op, x_shape)
    if tuple(gy.shape[:2]) != (N, C):
        raise ValueError(f"{op}: gy has shape {tuple(gy.shape)}, x_shape {(N, C, H, W)}: "
                         f"batch and channels must match")
    oh, ow = gy.shape[2:]
    geometry = _pool_geometry(op, H, W, kh, kw, sh, sw, ph, pw, oh, ow)
    dx = _empty(gy, (N, C, H, W), np.float32)
    _launch("maxpool.cu", "maxpool2d_backward", dx.size, gy, idx, dx, N, C, H, W, *geometry,
            oh, ow)
    return dx


def softmax_ce_forward(logits, labels):
    """(loss, lse), both (N,): lse = logsumexp of each row, loss = lse - logits[n, labels[n]]."""
    N, K = _check_rows("softmax_ce_forward", logits, labels)
    if N:   # one device-to-host copy: cheaper than debugging a silent NaN later
        _check_label_range("softmax_ce_forward", int(labels.min()), int(labels.max()), K)
    loss = _empty(logits, (N,), np.float32)
    lse = _empty(logits, (N,), np.float32)
    _launch("softmax_ce.cu", "softmax_ce_forward", N, logits, labels, loss, lse, N, K)
    return loss, lse


def softmax_ce_backward(logits, labels, lse, gy):
    """dlogits (N, K) = gy[:, None] * (softmax(logits) - onehot(labels)), softmax from lse."""
    op = "softmax_ce_backward"
    N, K = _check_rows(op, logits, labels)
    _check_array(op, "lse", lse, np.float32, 1)
    _check_array(op, "gy", gy, np.float32, 1)
    for name, a in (("lse", lse), ("gy", gy)):
        if a.shape[0] != N:
            raise ValueError(f"{op}: {name} has shape {tuple(a.shape)} but logits has "
                             f"shape {tuple(logits.shape)}: need one value per row")
    dlogits = _empty(logits, (N, K), np.float32)
    _launch("softmax_ce.cu", "softmax_ce_backward", N, logits, labels, lse, gy, dlogits, N, K)
    return dlogits
