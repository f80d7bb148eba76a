"""NumPy references for the tests, each written once: window geometry, convolution and pooling
(by brute force, and as the whole-array im2col/col2im/max-pool twins of the kernels), and the
softmax family. ``import refs`` works from any test: pytest puts ``tests/`` on sys.path, since
``tests/conftest.py`` lives there and tests/ is not a package.

The kernel twins compute with whole arrays (padding, strided slices, np.add.at) rather than the
kernels' per-element loops, so a test compares two independent ways of computing the same
thing; ``benchmarks/cpu_kernels.py`` times them against the Numba kernels. They take a geometry
(kh, kw, sh, sw, ph, pw) that is valid (see tinygrad_edu/ops/geometry.py) and keep the dtype:
pass float64 data for a float64 reference.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


# ---- geometry ----------------------------------------------------------------------------------

def out_size(size, k, s, p, ceil_mode=False):
    """Output length of a conv/pool window sweep (PyTorch's rule). ceil_mode keeps a last
    partial window, unless it would start in the right padding."""
    span = size + 2 * p - k
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    return out - 1 if (out - 1) * s >= size + p else out


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


# ---- convolution and pooling by brute force (PyTorch's definitions) ----------------------------

def conv2d(x, w, b, stride, padding):
    """Cross-correlation, NCHW; stride and padding an int or a (height, width) pair."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    f, _, kh, kw = w.shape
    oh, ow = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    out = np.zeros((x.shape[0], f, oh, ow))
    for i, j in np.ndindex(oh, ow):
        patch = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
        out[:, :, i, j] = np.einsum("nchw,fchw->nf", patch, w)
    return out if b is None else out + b[:, None, None]


def pool2d(x, k, s, p, ceil_mode, reduce, count_include_pad=True):
    """Max or mean pooling ("max", "avg"): windows start at -p + i*s; with ceil_mode a last
    window may run past the border, but must start inside the input or its left padding.
    Padding never wins a max; a mean divides by the positions inside the padded input
    (count_include_pad) or inside the input."""
    n, c, h, w = x.shape
    out = np.zeros((n, c, out_size(h, k, s, p, ceil_mode), out_size(w, k, s, p, ceil_mode)))
    for i, j in np.ndindex(out.shape[2:]):
        r0, c0 = i * s - p, j * s - p
        win = x[:, :, max(r0, 0):min(r0 + k, h), max(c0, 0):min(c0 + k, w)]
        if reduce == "max":
            out[:, :, i, j] = win.max(axis=(2, 3))
        else:
            if count_include_pad:
                count = (min(r0 + k, h + p) - r0) * (min(c0 + k, w + p) - c0)
            else:
                count = win.shape[2] * win.shape[3]
            out[:, :, i, j] = win.sum(axis=(2, 3)) / count
    return out


# ---- the kernels' twins ------------------------------------------------------------------------

def im2col(x, kh, kw, sh, sw, ph, pw):
    """cols (N*OH*OW, C*kh*kw), cols[(n, oy, ox), (c, i, j)] = x[n, c, oy*sh - ph + i,
    ox*sw - pw + j], 0 in the padding: pad, view every kh x kw window, keep every sh-th/sw-th,
    move the channel axis next to the window axes and flatten."""
    N, C, H, W = x.shape
    oh, ow = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    # (N, C, H+2ph-kh+1, W+2pw-kw+1, kh, kw) -> strided: (N, C, OH, OW, kh, kw), still a view
    windows = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(N * oh * ow, C * kh * kw)


def col2im(cols, x_shape, kh, kw, sh, sw, ph, pw):
    """The adjoint of im2col: kh*kw strided slice-adds into a padded image, then cropped.

    Kernel slot (i, j) of all windows at once covers the padded pixels i, i + sh, ... and
    j, j + sw, ..., so one slice-add per slot routes every entry home; slots that overlap add
    up. Slots go from last to first: the order in which the Numba kernel adds, so the two agree
    to the bit in the same dtype.
    """
    N, C, H, W = x_shape
    oh, ow = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    # One transposing copy first, so that each add below reads contiguous memory.
    slots = np.ascontiguousarray(cols.reshape(N, oh, ow, C, kh, kw).transpose(4, 5, 0, 3, 1, 2))
    padded = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    for i in reversed(range(kh)):
        for j in reversed(range(kw)):
            padded[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += slots[i, j]
    return padded[:, :, ph:ph + H, pw:pw + W]


def maxpool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow):
    """(y, idx): the max over each window's positions inside x and the flat index h*W + w of
    its first maximum in row-major window order; a NaN counts as the max. As kh*kw whole-array
    steps: window slot (i, j) of every window at once challenges the best so far."""
    N, C, H, W = x.shape
    y, idx = np.zeros((N, C, oh, ow), x.dtype), np.full((N, C, oh, ow), -1, np.int64)
    # Pad far enough for ceil_mode's last windows; `inside` keeps padding out of the contest.
    bottom, right = max(0, (oh - 1) * sh + kh - H - ph), max(0, (ow - 1) * sw + kw - W - pw)
    padded = np.pad(x, ((0, 0), (0, 0), (ph, bottom), (pw, right)))
    top, left = np.arange(oh) * sh - ph, np.arange(ow) * sw - pw   # window corners, in x
    for i in range(kh):
        rows = (top + i)[:, None]
        for j in range(kw):
            cols = (left + j)[None, :]
            inside = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
            v = padded[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
            wins = inside & ((idx < 0) | (v > y) | (np.isnan(v) & ~np.isnan(y)))
            np.copyto(y, v, where=wins)
            np.copyto(idx, rows * W + cols, where=wins)
    return y, idx


def maxpool2d_backward(gy, idx, x_shape):
    """dx[n, c].flat[idx] += gy, with repeated indices adding up (np.add.at, in window order)."""
    N, C, H, W = x_shape
    P, A = N * C, idx.shape[2] * idx.shape[3]
    dx = np.zeros((P, H * W), gy.dtype)
    np.add.at(dx, (np.arange(P)[:, None], idx.reshape(P, A)), gy.reshape(P, A))
    return dx.reshape(N, C, H, W)


# ---- softmax and its losses --------------------------------------------------------------------

def log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def reduce(losses, reduction):
    return {"mean": losses.mean(), "sum": losses.sum(), "none": losses}[reduction]


def softmax_ce_forward(logits, labels):
    """(loss, lse) per row in float64: lse = logsumexp(row), loss = lse - logits[label]."""
    z = logits.astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    return lse - z[np.arange(len(z)), labels], lse


def softmax_ce_backward(logits, labels, gy):
    """gy[:, None] * (softmax - onehot), in float64."""
    p = np.exp(log_softmax(logits.astype(np.float64), 1))
    p[np.arange(len(p)), labels] -= 1
    return gy.astype(np.float64)[:, None] * p


def softmax_ce_tolerance(logits, gy=None):
    """Absolute error float32 allows: a few ulps of the largest logit (lse carries that much
    rounding, and softmax = exp(z - lse) inherits it), scaled by |gy| for the gradient."""
    scale = max(1.0, float(np.abs(logits).max(initial=0.0)))
    g = 1.0 if gy is None else max(1.0, float(np.abs(gy).max(initial=0.0)))
    return 8 * np.finfo(np.float32).eps * scale * g


# ---- the fused recurrent cells (the spec of issue 12: PyTorch's gate orders) -------------------
# Whole-array twins of kernels/lstm_cell.cu and gru_cell.cu and of cpu_kernels' cell functions.
# They keep the dtype of their inputs; sigmoid is written as exp(-log(1 + e^-x)), not the
# kernels' tanh form, so the comparison also checks that rewriting.

def sigmoid(x):
    return np.exp(-np.logaddexp(0, -x))


def lstm_cell_forward(gates, c_prev):
    """(h, c, act): gates (N, 4H) = [i | f | g | o], act (N, 5H) = [i | f | g | o | tanh(c)]."""
    a_i, a_f, a_g, a_o = np.split(gates, 4, axis=1)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
    c = f * c_prev + i * g
    tc = np.tanh(c)
    return o * tc, c, np.concatenate([i, f, g, o, tc], axis=1)


def lstm_cell_backward(dh, dc, act, c_prev):
    """(dgates (N, 4H), dc_prev (N, H)) of lstm_cell_forward, given dL/dh and dL/dc."""
    i, f, g, o, tc = np.split(act, 5, axis=1)
    dct = dc + dh * o * (1 - tc**2)
    dgates = [dct * g * i * (1 - i), dct * c_prev * f * (1 - f), dct * i * (1 - g**2),
              dh * tc * o * (1 - o)]
    return np.concatenate(dgates, axis=1), dct * f


def gru_cell_forward(xg, hg, h_prev):
    """(h, act): xg, hg (N, 3H) = [r | z | n], act (N, 4H) = [r | z | n | hg_n]."""
    x_r, x_z, x_n = np.split(xg, 3, axis=1)
    h_r, h_z, h_n = np.split(hg, 3, axis=1)
    r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
    n = np.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h_prev, np.concatenate([r, z, n, h_n], axis=1)


def gru_cell_backward(dh, act, h_prev):
    """(dxg, dhg (N, 3H), dh_prev (N, H)) of gru_cell_forward; dh_prev is the direct path dh*z."""
    r, z, n, h_n = np.split(act, 4, axis=1)
    dn_pre = dh * (1 - z) * (1 - n**2)
    dr_pre = dn_pre * h_n * r * (1 - r)
    dz_pre = dh * (h_prev - n) * z * (1 - z)
    return (np.concatenate([dr_pre, dz_pre, dn_pre], axis=1),
            np.concatenate([dr_pre, dz_pre, dn_pre * r], axis=1), dh * z)
