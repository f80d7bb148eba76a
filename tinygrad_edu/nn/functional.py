"""Stateless neural-network functions, PyTorch's ``torch.nn.functional``.

Most are a few Tensor ops, so their gradients come for free; the kernel-backed ones (im2col,
max-pool, fused softmax cross-entropy) live in ``ops/nn_ops.py``. Every function checks its
inputs first and names the function and the shapes in its error messages.

Arguments, one rule for every function here:

* A tensor argument takes a Tensor or anything ``tg.tensor`` accepts (a NumPy or CuPy array, a
  nested list, a Python number). Such data is converted with ``Tensor(data, device=d)``, ``d``
  the device of the function's first Tensor argument (the CPU if there is none): a copy, which
  requires no gradient. Anything else (a string, a dict, ...) raises a ``TypeError`` naming the
  function, the argument and its type. The one exception is an argument the function writes to:
  ``batch_norm``'s ``running_mean`` and ``running_var`` must be Tensors, since updating a
  converted copy would silently lose the update.
* A size argument (``kernel_size``, ``stride``, ``padding``) is an int or a pair of ints (bools
  and floats are refused); kernel_size and stride are >= 1, padding >= 0. Anything else raises
  a ``ValueError`` naming the argument. These and the window rules (output size, ceil_mode,
  pooling padding at most half the kernel) are PyTorch's, checked in ``ops/geometry.py``.
  An adaptive pooling's ``output_size`` is an int or a pair of ints >= 1, where None in the
  pair keeps that input size.
"""
import numpy as np

from ..backend import get_xp
from ..creation import generator
from ..ops import flatten as _flatten, relu as _relu, sigmoid as _sigmoid, tanh as _tanh
from ..ops import where as _where
from ..ops import geometry
from ..ops.nn_ops import (AdaptiveMaxPool2d, BCEWithLogits, Conv2d, Dropout, Im2Col, Linear,
                          MaxPool2d, SoftmaxCrossEntropy, adaptive_argmax, adaptive_geometry,
                          has_pool_kernel)
from ..ops.reduce import normalize_axes
from ..tensor import Tensor, array_call

_DATA = (np.ndarray, np.generic, list, tuple, int, float)  # what Tensor() turns into a tensor


def _tensors(fn, **args):
    """The tensor arguments (name=value, in signature order) as Tensors, by the module's rule;
    None stays None (an optional argument left out)."""
    device = next((v.device for v in args.values() if isinstance(v, Tensor)), None)
    out = []
    for name, v in args.items():
        if v is not None and not isinstance(v, Tensor):
            if not isinstance(v, _DATA) and not hasattr(v, "__cuda_array_interface__"):
                raise TypeError(f"{fn}: {name} must be a Tensor or array data, got "
                                f"{type(v).__name__}")
            try:
                v = Tensor(v, device=device)
            except (TypeError, ValueError) as e:  # a ragged list, strings in an array, ...
                raise TypeError(f"{fn}: {name} ({type(v).__name__}) is not array data: {e}") from e
        out.append(v)
    return out


def _check_rank(fn, x, ranks):
    if x.ndim not in ranks:
        want = " or ".join(f"{r}-D" for r in ranks)
        raise ValueError(f"{fn}: expected a {want} input, got shape {x.shape}")


def _check_dtypes(fn, x, *others):
    """One node computes with all the arrays, so NumPy would silently promote a mix.
    ``others`` are (name, tensor or None) pairs."""
    bad = [(name, t.dtype) for name, t in others if t is not None and t.dtype != x.dtype]
    if bad:
        raise TypeError(f"{fn}: input dtype {x.dtype}, "
                        + " and ".join(f"{name} dtype {d}" for name, d in bad)
                        + " must agree; convert with .to(dtype)")


def linear(x, weight, bias=None):
    """y = x W^T + b, with W of shape (out_features, in_features) as in PyTorch."""
    x, weight, bias = _tensors("linear", x=x, weight=weight, bias=bias)
    if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {x.shape} does not match weight of shape "
                         f"{weight.shape} (in_features {weight.shape[-1]})")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias of shape {bias.shape} should be ({weight.shape[0]},)")
    _check_dtypes("linear", x, ("weight", weight), ("bias", bias))
    return Linear.apply(x, weight) if bias is None else Linear.apply(x, weight, bias)


def _check_kernel_dtype(fn, x):
    """conv2d and pooling run compiled kernels: Numba's for float32 and float64 on the CPU,
    CUDA's for float32 on the GPU."""
    ok = ("float32",) if x.device == "cuda" else ("float32", "float64")
    if x.dtype.name not in ok:
        raise TypeError(f"{fn}: the {x.device.upper()} kernels take {' or '.join(ok)} input, "
                        f"got {x.dtype}; convert with .float()")


def conv2d(x, weight, bias=None, stride=1, padding=0):
    """2-D convolution (cross-correlation, as in every framework), NCHW layout.

    x (N, C, H, W), weight (F, C, kh, kw) -> y (N, F, OH, OW) with OH = (H + 2p - kh) // s + 1.
    Computed as im2col + one matrix multiply: every receptive field becomes a row of ``cols``
    (N*OH*OW, C*kh*kw), and ``cols @ W.reshape(F, -1).T`` applies all filters at once (the
    ``Conv2d`` op in ``ops/nn_ops.py``).
    """
    x, weight, bias = _tensors("conv2d", x=x, weight=weight, bias=bias)
    sh, sw = geometry.size_pair("conv2d", "stride", stride, 1)
    ph, pw = geometry.size_pair("conv2d", "padding", padding, 0)
    _check_rank("conv2d", x, (4,))
    if weight.ndim != 4 or weight.shape[1] != x.shape[1] or 0 in weight.shape[2:]:
        raise ValueError(f"conv2d: input of shape {x.shape} has {x.shape[1]} channels, weight "
                         f"of shape {weight.shape} expects (F, C, kh, kw) with C = {x.shape[1]} "
                         "and kh, kw >= 1")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"conv2d: bias of shape {bias.shape} should be ({weight.shape[0]},)")
    window = (weight.shape[2], weight.shape[3], sh, sw, ph, pw)
    out_size = geometry.checked_output_size("conv2d", x.shape[2:], window)
    _check_dtypes("conv2d", x, ("weight", weight), ("bias", bias))
    _check_kernel_dtype("conv2d", x)
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d.apply(*inputs, geometry=window, out_size=out_size)


def _pool_window(fn, x, kernel_size, stride, padding, ceil_mode):
    """The checked geometry (kh, kw, sh, sw, ph, pw) of a pooling of x, and its output size."""
    window = geometry.pool_geometry(fn, kernel_size, stride, padding)
    _check_rank(fn, x, (4,))
    out_size = geometry.checked_output_size(fn, x.shape[2:], window, ceil_mode)
    _check_kernel_dtype(fn, x)
    return window, out_size


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Max over each kh x kw window. ``ceil_mode=True`` keeps a last, partial window at the
    border (Theano's ``ignore_border=False``); padding never wins the max."""
    x, = _tensors("max_pool2d", x=x)
    window, out_size = _pool_window("max_pool2d", x, kernel_size, stride, padding, ceil_mode)
    if 0 in x.shape[2:]:
        raise ValueError(f"max_pool2d: input of shape {x.shape} has no pixels to take a max of")
    return MaxPool2d.apply(x, geometry=window, out_size=out_size)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Mean over each window, computed as im2col of the channels as separate images and a mean
    over each row. Windows that reach past the border (ceil_mode) divide by the positions they
    cover inside the (padded) input, as PyTorch does."""
    x, = _tensors("avg_pool2d", x=x)
    window, (oh, ow) = _pool_window("avg_pool2d", x, kernel_size, stride, padding, ceil_mode)
    kh, kw, sh, sw, ph, pw = window
    n, c, h, w = x.shape
    extra_h, extra_w = (oh - 1) * sh + kh - h - 2 * ph, (ow - 1) * sw + kw - w - 2 * pw
    padded = x.reshape(n * c, 1, h, w).pad((pw, pw + max(extra_w, 0), ph, ph + max(extra_h, 0)))
    unpadded = (kh, kw, sh, sw, 0, 0)
    sums = Im2Col.apply(padded, geometry=unpadded).sum(axis=1)
    counted = array_call(_counted, shape=(1, 1) + padded.shape[2:], inside=(h, w, ph, pw),
                         count_include_pad=count_include_pad, dtype=x.dtype, device=x.device)
    counts = Im2Col.apply(Tensor._wrap(counted), geometry=unpadded).sum(axis=1)
    return (sums.reshape(n, c, oh, ow) / counts.reshape(1, 1, oh, ow))


def _counted(shape, inside, count_include_pad, dtype, device):
    """avg_pool2d's positions that count, 1s and 0s made on the device (no copy to the GPU)."""
    (h, w, ph, pw), counted = inside, get_xp(device).zeros(shape, dtype=dtype)
    if count_include_pad:
        counted[..., :h + 2 * ph, :w + 2 * pw] = 1
    else:
        counted[..., ph:ph + h, pw:pw + w] = 1
    return counted


def _adaptive_input(fn, x, output_size):
    """x as (N, C, H, W) (a (C, H, W) input gets N = 1), and the checked output size (OH, OW)."""
    _check_rank(fn, x, (3, 4))
    out_size = geometry.adaptive_output_size(fn, x.shape[-2:], output_size)
    if 0 in x.shape[-3:]:
        raise ValueError(f"{fn}: input of shape {x.shape} is empty; C, H and W must be >= 1 "
                         "(N may be 0)")
    if x.dtype.kind != "f":
        raise TypeError(f"{fn}: input must be floating point, got {x.dtype}; convert with "
                        ".float()")
    return (x.unsqueeze(0) if x.ndim == 3 else x), out_size


def _window_means(size, out, like):
    """A (out, size) with A[o, r] = 1 / (end - start) for r in adaptive window o = [start, end),
    0 elsewhere, in the dtype and on the device of tensor ``like``; A @ v averages each window."""
    a = np.zeros((out, size), dtype=like.dtype)
    for o, (start, end) in enumerate(geometry.adaptive_windows(size, out)):
        a[o, start:end] = 1.0 / (end - start)
    return Tensor(a, device=like.device)


def adaptive_avg_pool2d(x, output_size):
    """Mean over adaptive windows, as torch.nn.functional.adaptive_avg_pool2d.

    x (N, C, H, W) or (C, H, W) -> (..., OH, OW) for ``output_size`` OH or (OH, OW), where None
    in the pair keeps that input size. Output cell (i, j) averages the rows
    floor(i H / OH) <= r < ceil((i + 1) H / OH) and the columns likewise with W, OW: windows
    may overlap, and OH > H repeats rows (``ops/geometry.py``). As two matrix multiplies,

        y = A_H x A_W^T,   A_H (OH, H),  A_H[i, r] = 1 / (size of window i) for r in window i,

    so dx = A_H^T gy A_W (overlapping windows add up) and second derivatives come from matmul.
    When OH divides H and OW divides W (the usual 7x7 of VGG, 1x1 of ResNet) this is
    avg_pool2d with kernel = stride = (H/OH, W/OW), which runs instead.
    """
    x, = _tensors("adaptive_avg_pool2d", x=x)
    x4, (oh, ow) = _adaptive_input("adaptive_avg_pool2d", x, output_size)
    h, w = x4.shape[2:]
    if h % oh == 0 and w % ow == 0 and has_pool_kernel(x.data):
        y = avg_pool2d(x4, (h // oh, w // ow))
    else:
        y = _window_means(h, oh, x) @ x4 @ _window_means(w, ow, x).mT
    return y.reshape(x.shape[:-2] + (oh, ow))


def _adaptive_index(x, out_size):
    return adaptive_argmax(x, out_size)[0]


def adaptive_max_pool2d(x, output_size, return_indices=False):
    """Max over adaptive windows (those of adaptive_avg_pool2d), as
    torch.nn.functional.adaptive_max_pool2d: x (N, C, H, W) or (C, H, W) -> (..., OH, OW).

    y[n, c, i, j] = max of x[n, c, r, s] over floor(i H / OH) <= r < ceil((i + 1) H / OH),
    floor(j W / OW) <= s < ceil((j + 1) W / OW). Ties go to the first maximum in row-major
    window order, as in max_pool2d, and only it gets the gradient; a NaN counts as the maximum
    (of several NaNs we pick the first, PyTorch's CPU the last). Each output's gradient goes to
    its maximum; a pixel that is the maximum of several overlapping windows gets their sum.
    ``return_indices=True`` returns (values, indices): int64 flat positions r*W + s of the
    maxima in their H*W plane (PyTorch's), a Tensor without gradient.
    """
    x, = _tensors("adaptive_max_pool2d", x=x)
    x4, out_size = _adaptive_input("adaptive_max_pool2d", x, output_size)
    window = adaptive_geometry(x4.data, out_size)
    idx = array_call(_adaptive_index, x4.data, out_size=out_size)  # (afresh in a replay)
    shape = x.shape[:-2] + out_size
    y = AdaptiveMaxPool2d.apply(x4, idx=idx, geometry=window).reshape(shape)
    return (y, Tensor._wrap(idx.reshape(shape))) if return_indices else y


def dropout(x, p=0.5, training=True):
    """Inverted dropout: in training, zero each element with probability p and scale the rest
    by 1 / (1 - p), so the expected value is unchanged and evaluation is the identity."""
    x, = _tensors("dropout", x=x)
    if (isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating))
            or not 0.0 <= p <= 1.0):
        raise ValueError(f"dropout: p must be in [0, 1], got {p!r}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = array_call(_keep_mask, shape=x.shape, p=p, device=x.device)  # (a fresh one in
    return Dropout.apply(x, keep=keep, scale=1.0 / (1.0 - p))            # every tg.compile replay)


def _keep_mask(shape, p, device):
    """Dropout's mask: True (keep) with probability 1 - p."""
    return generator(device).random(shape, dtype=np.float32) >= p


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalization over N (and H, W) for each channel C.

    Training: y = (x - mean) / sqrt(var + eps) * weight + bias with the batch mean and the
    *biased* batch variance; the running averages are updated in place,
    r = (1 - momentum) r + momentum * stat (PyTorch's sense of momentum), keeping the
    *unbiased* variance. Evaluation: the running statistics are used instead.
    Everything is checked and y computed before the running statistics change.
    """
    x, weight, bias = _tensors("batch_norm", x=x, weight=weight, bias=bias)
    for name, t in (("running_mean", running_mean), ("running_var", running_var)):
        if t is not None and not isinstance(t, Tensor):
            raise TypeError(f"batch_norm: {name} must be a Tensor (it is updated in place), "
                            f"got {type(t).__name__}")
    _check_rank("batch_norm", x, (2, 4))
    c = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and t.shape != (c,):
            raise ValueError(f"batch_norm: {name} has shape {t.shape}, input {x.shape} has {c} "
                             "channels")
    if (running_mean is None) != (running_var is None):  # else training updates only one of them
        raise ValueError("batch_norm: pass both running_mean and running_var, or neither")
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    shape = (1, c) if x.ndim == 2 else (1, c, 1, 1)
    count = x.shape[0] * (x.shape[2] * x.shape[3] if x.ndim == 4 else 1)  # values per channel
    if training:
        if count < 2:
            raise ValueError(f"batch_norm: training needs more than one value per channel, input "
                             f"shape {x.shape} has {count}")
        _check_dtypes("batch_norm", x, ("weight", weight), ("bias", bias))
        mean = x.mean(axes, keepdims=True)
        centered = x - mean
        var = (centered * centered).mean(axes, keepdims=True)
    else:
        if running_mean is None:
            raise ValueError("batch_norm: evaluation needs running_mean and running_var")
        _check_dtypes("batch_norm", x, ("weight", weight), ("bias", bias),
                      ("running_mean", running_mean), ("running_var", running_var))
        centered = x - running_mean.reshape(shape)
        var = running_var.reshape(shape)
    y = centered / (var + eps).sqrt()
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    if training and running_mean is not None:
        array_call(_update_running, running_mean.data, running_var.data, mean.data, var.data,
                   momentum=momentum, unbiased=count / (count - 1))
        running_mean._version[0] += 1
        running_var._version[0] += 1
    return y


def _update_running(running_mean, running_var, mean, var, momentum, unbiased):
    """r = (1 - momentum) r + momentum * stat, in place, for batch norm's running mean and
    (unbiased) variance. Returns running_mean (array_call notes one result)."""
    c = running_mean.shape[0]
    running_mean[...] = running_mean * (1 - momentum) + mean.reshape(c) * momentum
    running_var[...] = running_var * (1 - momentum) + var.reshape(c) * unbiased * momentum
    return running_mean


def _max_shift(fn, x, dim):
    """(the maximum of x along dim, kept as a size-1 axis, as a constant; the axes). A shift
    cancels out of softmax, so it needs no gradient. An empty x needs none (and has no maximum
    along an empty axis): 0, so softmax of an empty tensor is empty, as in NumPy and PyTorch."""
    axes = normalize_axes(fn, dim, x.ndim)
    if x.numel() == 0:
        keep = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
        return Tensor._wrap(get_xp(x.data).zeros(keep, x.dtype)), axes
    return Tensor._wrap(array_call(_max_keepdims, x.data, axes=axes)), axes  # (tg.compile repeats it)


def _max_keepdims(x, axes):
    return x.max(axis=axes, keepdims=True)


def log_softmax(x, dim=-1):
    """log softmax(x) = x - max - log(sum(exp(x - max))). Shifting by the (constant) row max
    leaves the result unchanged and keeps every exp() <= 1, so large logits cannot overflow."""
    x, = _tensors("log_softmax", x=x)
    shift, axes = _max_shift("log_softmax", x, dim)
    shifted = x - shift
    if x.numel() == 0:  # (an empty axis would take log(0) of its empty sum)
        return shifted
    return shifted - shifted.exp().sum(axes, keepdims=True).log()


def softmax(x, dim=-1):
    """softmax(x)_i = exp(x_i - max) / sum_j exp(x_j - max)."""
    x, = _tensors("softmax", x=x)
    shift, axes = _max_shift("softmax", x, dim)
    e = (x - shift).exp()
    return e if x.numel() == 0 else e / e.sum(axes, keepdims=True)


def relu(x):
    """max(x, 0), elementwise (relu'(0) = 0)."""
    x, = _tensors("relu", x=x)
    return _relu(x)


def sigmoid(x):
    """1 / (1 + exp(-x)), elementwise."""
    x, = _tensors("sigmoid", x=x)
    return _sigmoid(x)


def tanh(x):
    """tanh(x), elementwise."""
    x, = _tensors("tanh", x=x)
    return _tanh(x)


def flatten(x, start_dim=0, end_dim=-1):
    """Merge dimensions start_dim..end_dim into one (``torch.flatten``)."""
    x, = _tensors("flatten", x=x)
    return _flatten(x, start_dim, end_dim)


def embedding(input, weight, padding_idx=None):  # noqa: A002 (PyTorch's name)
    """Rows of a lookup table: ``out[..., :] = weight[input[...], :]``, PyTorch's embedding.

    input: integer indices of any shape, in [0, num_embeddings); weight (num_embeddings, dim);
    out: input.shape + (dim,). Backward adds each position's gradient into its row, so repeated
    indices accumulate. The row ``padding_idx`` (negative counts from the end) gets no gradient
    (its value is still looked up, as in PyTorch).
    """
    input, weight = _tensors("embedding", input=input, weight=weight)  # noqa: A001
    if input.dtype.kind not in "iu":
        raise TypeError(f"embedding: input must hold integer indices, got dtype {input.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got "
                         f"shape {weight.shape}")
    num = weight.shape[0]
    if input.numel() and (input.data.min() < 0 or input.data.max() >= num):
        raise ValueError(f"embedding: indices must be in [0, {num}) for a weight of shape "
                         f"{weight.shape}, got values from {int(input.data.min())} to "
                         f"{int(input.data.max())}")
    if padding_idx is not None:
        if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)) \
                or not -num <= padding_idx < num:
            raise ValueError(f"embedding: padding_idx must be an integer in [-{num}, {num}), got "
                             f"{padding_idx!r}")
        padding_idx %= num
    rows = weight[input.data]
    if padding_idx is None or not rows.requires_grad:
        return rows
    # the padding positions take their values from a constant copy of the rows: no gradient
    pad = Tensor._wrap(array_call(_is_padding, input.data, padding_idx=padding_idx))
    return _where(pad, rows.detach(), rows)


def _is_padding(indices, padding_idx):
    return (indices == padding_idx)[..., None]


def _check_reduction(name, reduction):
    if not isinstance(reduction, str) or reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _reduce(losses, reduction):
    return losses.mean() if reduction == "mean" else losses.sum() if reduction == "sum" else losses


def _check_labels(name, scores, labels):
    _check_rank(name, scores, (2,))
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{name}: labels must be integers (class indices), got {labels.dtype}")
    if labels.shape != (scores.shape[0],):
        raise ValueError(f"{name}: labels of shape {labels.shape} do not match scores of shape "
                         f"{scores.shape}; expected ({scores.shape[0]},)")
    if labels.numel() and (labels.data.min() < 0 or labels.data.max() >= scores.shape[1]):
        raise ValueError(f"{name}: labels must be in [0, {scores.shape[1]}), got values from "
                         f"{int(labels.data.min())} to {int(labels.data.max())}")
    return labels.long()


def cross_entropy(logits, labels, reduction="mean"):
    """-log softmax(logits)[label], fused in one op whose gradient is softmax - onehot.
    logits (N, K) scores, labels (N,) integer classes in [0, K). Twice differentiable: under
    ``create_graph=True`` the op's backward is built from Tensor ops (see SoftmaxCrossEntropy)."""
    logits, labels = _tensors("cross_entropy", logits=logits, labels=labels)
    _check_reduction("cross_entropy", reduction)
    labels = _check_labels("cross_entropy", logits, labels)
    return _reduce(SoftmaxCrossEntropy.apply(logits, labels), reduction)


def nll_loss(log_probs, labels, reduction="mean"):
    """-log_probs[n, label_n]; with log_softmax in front it equals cross_entropy."""
    log_probs, labels = _tensors("nll_loss", log_probs=log_probs, labels=labels)
    _check_reduction("nll_loss", reduction)
    labels = _check_labels("nll_loss", log_probs, labels)
    rows = get_xp(labels.data).arange(len(labels))
    return _reduce(-log_probs[rows, labels.data], reduction)


def _check_same_shape(name, a, b, what=("input", "target")):
    if a.shape != b.shape:
        raise ValueError(f"{name}: {what[0]} shape {a.shape} != {what[1]} shape {b.shape}")


def mse_loss(input, target, reduction="mean"):  # noqa: A002 (PyTorch's name)
    """(input - target)^2, averaged. Shapes must match (no silent broadcasting)."""
    input, target = _tensors("mse_loss", input=input, target=target)  # noqa: A001
    _check_reduction("mse_loss", reduction)
    _check_same_shape("mse_loss", input, target)
    d = input - target
    return _reduce(d * d, reduction)


def l1_loss(input, target, reduction="mean"):  # noqa: A002 (PyTorch's name)
    """|input - target|, averaged; the gradient is sign(input - target) (0 where they are equal,
    as PyTorch). Shapes must match (no silent broadcasting)."""
    input, target = _tensors("l1_loss", input=input, target=target)  # noqa: A001
    _check_reduction("l1_loss", reduction)
    _check_same_shape("l1_loss", input, target)
    return _reduce((input - target).abs(), reduction)


def binary_cross_entropy(probs, target, reduction="mean"):
    """-(t log p + (1 - t) log(1 - p)); p and 1 - p are clamped to the smallest positive normal
    float, so log(0) never happens (the gradient is 0 where the clamp is active)."""
    probs, target = _tensors("binary_cross_entropy", probs=probs, target=target)
    _check_reduction("binary_cross_entropy", reduction)
    _check_same_shape("binary_cross_entropy", probs, target, ("probs", "target"))
    tiny = float(np.finfo(probs.dtype).tiny)
    losses = -(target * probs.clip(tiny, 1.0).log()
               + (1 - target) * (1 - probs).clip(tiny, 1.0).log())
    return _reduce(losses, reduction)


def binary_cross_entropy_with_logits(logits, target, reduction="mean"):
    """binary_cross_entropy(sigmoid(logits), target) in the stable form of ``BCEWithLogits``
    (``ops/nn_ops.py``): no exp() overflows, and the gradient is sigmoid(z) - t."""
    logits, target = _tensors("binary_cross_entropy_with_logits", logits=logits, target=target)
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    _check_same_shape("binary_cross_entropy_with_logits", logits, target, ("logits", "target"))
    if target.dtype != logits.dtype:
        target = target.astype(logits.dtype)
    return _reduce(BCEWithLogits.apply(logits, target), reduction)


__all__ = ["linear", "conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
           "adaptive_max_pool2d", "dropout", "batch_norm", "relu", "sigmoid", "tanh", "flatten",
           "softmax", "log_softmax", "embedding", "cross_entropy", "nll_loss", "mse_loss",
           "l1_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"]
