"""NumPy references for the CUDA kernels in kernels/*.cu, shared by the CPU-emulated tests
(tests/kernels/test_cuda_emulated.py) and the GPU tests (tests/gpu/test_cuda_kernels.py).

Written with whole-array NumPy (padding, strided slices, argmax, np.add.at) rather than the
kernels' per-element loops, so a test compares two independent ways of computing the same thing.
Sums are accumulated in float64.
"""
import numpy as np


def out_size(size, k, s, p, ceil_mode=False):
    """Output length of a conv/pool window sweep (PyTorch's rule). ceil_mode keeps a last
    partial window, unless it would start in the right padding."""
    span = size + 2 * p - k
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    if (out - 1) * s >= size + p:
        out -= 1
    return out


def windows(x, kh, kw, sh, sw, ph, pw, oh, ow, fill):
    """(N, C, kh, kw, oh, ow) with [..., i, j, oy, ox] = x[..., oy*sh - ph + i, ox*sw - pw + j],
    or ``fill`` where that position is outside x."""
    N, C, H, W = x.shape
    bottom = max(0, (oh - 1) * sh + kh - ph - H)   # ceil_mode windows may reach further
    right = max(0, (ow - 1) * sw + kw - pw - W)
    padded = np.pad(x, ((0, 0), (0, 0), (ph, bottom), (pw, right)), constant_values=fill)
    out = np.empty((N, C, kh, kw, oh, ow), x.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i, j] = padded[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
    return out


def im2col(x, kh, kw, sh, sw, ph, pw):
    N, C, H, W = x.shape
    oh, ow = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    win = windows(x, kh, kw, sh, sw, ph, pw, oh, ow, fill=0)
    return win.transpose(0, 4, 5, 1, 2, 3).reshape(N * oh * ow, C * kh * kw)


def col2im(cols, x_shape, kh, kw, sh, sw, ph, pw):
    """The adjoint of im2col: add every column entry back onto the pixel it was copied from."""
    N, C, H, W = x_shape
    oh, ow = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    win = cols.astype(np.float64).reshape(N, oh, ow, C, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    padded = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    for i in range(kh):
        for j in range(kw):   # one (i, j) slot hits distinct pixels, so += on the view is safe
            padded[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += win[:, :, i, j]
    return padded[:, :, ph:ph + H, pw:pw + W]


def maxpool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow):
    """(y, idx): max over each window's in-bounds positions (NaN counts as the max) and the flat
    index h*W + w of the first position holding it, in row-major window order."""
    N, C, H, W = x.shape
    vals = windows(x, kh, kw, sh, sw, ph, pw, oh, ow, fill=0).reshape(N, C, kh * kw, oh, ow)
    plane = np.arange(H * W).reshape(1, 1, H, W)
    pos = windows(plane, kh, kw, sh, sw, ph, pw, oh, ow, fill=-1).reshape(kh * kw, oh, ow)
    inside = pos >= 0
    y = np.where(inside, vals, -np.inf).max(axis=2)          # np.max propagates NaN
    ymax = y[:, :, None]
    hit = inside & ((vals == ymax) | (np.isnan(vals) & np.isnan(ymax)))
    first = hit.argmax(axis=2)                                # first True in window order
    idx = np.take_along_axis(np.broadcast_to(pos, hit.shape), first[:, :, None], axis=2)[:, :, 0]
    return y.astype(np.float32), idx.astype(np.int64)


def maxpool2d_backward(gy, idx, x_shape):
    """dx[n, c].flat[idx] += gy, with repeated indices adding up (np.add.at)."""
    N, C, H, W = x_shape
    windows_per_plane = idx.shape[2] * idx.shape[3]
    dx = np.zeros((N * C, H * W))
    rows = np.arange(N * C)[:, None]
    np.add.at(dx, (rows, idx.reshape(N * C, windows_per_plane)),
              gy.reshape(N * C, windows_per_plane).astype(np.float64))
    return dx.reshape(N, C, H, W)


def softmax_ce_forward(logits, labels):
    z = logits.astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    return lse - z[np.arange(len(z)), labels], lse


def softmax_ce_backward(logits, labels, gy):
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(z)), labels] -= 1
    return gy.astype(np.float64)[:, None] * p


def softmax_ce_tolerance(logits, gy=None):
    """Absolute error float32 allows: a few ulps of the largest logit (lse carries that much
    rounding, and softmax = exp(z - lse) inherits it), scaled by |gy| for the gradient."""
    scale = max(1.0, float(np.abs(logits).max(initial=0.0)))
    g = 1.0 if gy is None else max(1.0, float(np.abs(gy).max(initial=0.0)))
    return 8 * np.finfo(np.float32).eps * scale * g
