"""Stateless neural-network functions, PyTorch's ``torch.nn.functional``.

Most are a few Tensor ops, so their gradients come for free; the kernel-backed ones (im2col,
max-pool, fused softmax cross-entropy) live in ``ops/nn_ops.py``. Every function checks its
inputs first and names the function and the shapes in its error messages.
"""
import numpy as np

from ..backend import get_xp
from ..creation import generator
from ..ops import flatten, relu, sigmoid, tanh  # noqa: F401 (part of this namespace)
from ..ops.nn_ops import Conv2d, Im2Col, Linear, MaxPool2d, SoftmaxCrossEntropy
from ..tensor import Function, Tensor, no_grad


def _pair(name, v):
    v = (v, v) if isinstance(v, int) else tuple(v)
    if len(v) != 2 or not all(isinstance(n, (int, np.integer)) for n in v):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v}")
    return int(v[0]), int(v[1])


def _check_rank(fn, x, ranks):
    if x.ndim not in ranks:
        want = " or ".join(f"{r}-D" for r in ranks)
        raise ValueError(f"{fn}: expected a {want} input, got shape {x.shape}")


def _check_dtypes(fn, x, weight, bias):
    """One node computes with all three arrays, so NumPy would silently promote a mix."""
    if x.dtype != weight.dtype or (bias is not None and bias.dtype != weight.dtype):
        raise TypeError(f"{fn}: input dtype {x.dtype}, weight dtype {weight.dtype}"
                        + ("" if bias is None else f" and bias dtype {bias.dtype}")
                        + " must agree; convert with .to(dtype)")


def linear(x, weight, bias=None):
    """y = x W^T + b, with W of shape (out_features, in_features) as in PyTorch."""
    if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {x.shape} does not match weight of shape "
                         f"{weight.shape} (in_features {weight.shape[-1]})")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias of shape {bias.shape} should be ({weight.shape[0]},)")
    _check_dtypes("linear", x, weight, bias)
    return Linear.apply(x, weight) if bias is None else Linear.apply(x, weight, bias)


def _out_size(name, size, k, s, p, ceil_mode=False):
    if s < 1 or k < 1 or p < 0:
        raise ValueError(f"{name}: kernel {k} and stride {s} must be >= 1, padding {p} >= 0")
    span = size + 2 * p - k
    if span < 0:
        raise ValueError(f"{name}: kernel {k} is larger than the padded input ({size} + 2*{p})")
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    if (out - 1) * s >= size + p:  # PyTorch's rule: the last window must start inside the input
        out -= 1
    return out


def conv2d(x, weight, bias=None, stride=1, padding=0):
    """2-D convolution (cross-correlation, as in every framework), NCHW layout.

    x (N, C, H, W), weight (F, C, kh, kw) -> y (N, F, OH, OW) with OH = (H + 2p - kh) // s + 1.
    Computed as im2col + one matrix multiply: every receptive field becomes a row of ``cols``
    (N*OH*OW, C*kh*kw), and ``cols @ W.reshape(F, -1).T`` applies all filters at once (the
    ``Conv2d`` op in ``ops/nn_ops.py``).
    """
    _check_rank("conv2d", x, (4,))
    if weight.ndim != 4 or weight.shape[1] != x.shape[1]:
        raise ValueError(f"conv2d: input of shape {x.shape} has {x.shape[1]} channels, weight "
                         f"of shape {weight.shape} expects (F, C, kh, kw) with C = {x.shape[1]}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"conv2d: bias of shape {bias.shape} should be ({weight.shape[0]},)")
    (sh, sw), (ph, pw) = _pair("stride", stride), _pair("padding", padding)
    n, f, kh, kw = x.shape[0], weight.shape[0], weight.shape[2], weight.shape[3]
    oh = _out_size("conv2d", x.shape[2], kh, sh, ph)
    ow = _out_size("conv2d", x.shape[3], kw, sw, pw)
    _check_dtypes("conv2d", x, weight, bias)
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d.apply(*inputs, geometry=(kh, kw, sh, sw, ph, pw), out_size=(oh, ow))


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Max over each kh x kw window. ``ceil_mode=True`` keeps a last, partial window at the
    border (Theano's ``ignore_border=False``); padding never wins the max."""
    _check_rank("max_pool2d", x, (4,))
    (kh, kw) = _pair("kernel_size", kernel_size)
    (sh, sw) = _pair("stride", kernel_size if stride is None else stride)
    (ph, pw) = _pair("padding", padding)
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"max_pool2d: padding {padding} must be at most half the kernel {kernel_size}")
    oh = _out_size("max_pool2d", x.shape[2], kh, sh, ph, ceil_mode)
    ow = _out_size("max_pool2d", x.shape[3], kw, sw, pw, ceil_mode)
    return MaxPool2d.apply(x, geometry=(kh, kw, sh, sw, ph, pw), out_size=(oh, ow))


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Mean over each window, computed as im2col of the channels as separate images and a mean
    over each row. Windows that reach past the border (ceil_mode) divide by the positions they
    cover inside the (padded) input, as PyTorch does."""
    _check_rank("avg_pool2d", x, (4,))
    (kh, kw) = _pair("kernel_size", kernel_size)
    (sh, sw) = _pair("stride", kernel_size if stride is None else stride)
    (ph, pw) = _pair("padding", padding)
    if ph > kh // 2 or pw > kw // 2:  # else a window could lie wholly in the padding: 0 / 0
        raise ValueError(f"avg_pool2d: padding {padding} must be at most half the kernel "
                         f"{kernel_size}")
    n, c, h, w = x.shape
    oh = _out_size("avg_pool2d", h, kh, sh, ph, ceil_mode)
    ow = _out_size("avg_pool2d", w, kw, sw, pw, ceil_mode)
    extra_h, extra_w = (oh - 1) * sh + kh - h - 2 * ph, (ow - 1) * sw + kw - w - 2 * pw
    padded = x.reshape(n * c, 1, h, w).pad((pw, pw + max(extra_w, 0), ph, ph + max(extra_h, 0)))
    geometry = (kh, kw, sh, sw, 0, 0)
    sums = Im2Col.apply(padded, geometry=geometry).sum(axis=1)
    # the positions that count, made on x's device (no copy from the host to the GPU)
    counted = get_xp(x.data).zeros((1, 1) + padded.shape[2:], dtype=x.dtype)
    if count_include_pad:
        counted[..., :h + 2 * ph, :w + 2 * pw] = 1
    else:
        counted[..., ph:ph + h, pw:pw + w] = 1
    counts = Im2Col.apply(Tensor._wrap(counted), geometry=geometry).sum(axis=1)
    return (sums.reshape(n, c, oh, ow) / counts.reshape(1, 1, oh, ow))


def dropout(x, p=0.5, training=True):
    """Inverted dropout: in training, zero each element with probability p and scale the rest
    by 1 / (1 - p), so the expected value is unchanged and evaluation is the identity."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = generator(x.device).random(x.shape, dtype=np.float32) >= p
    return x * Tensor._wrap((keep / (1.0 - p)).astype(x.dtype))


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalization over N (and H, W) for each channel C.

    Training: y = (x - mean) / sqrt(var + eps) * weight + bias with the batch mean and the
    *biased* batch variance; the running averages are updated in place,
    r = (1 - momentum) r + momentum * stat (PyTorch's sense of momentum), keeping the
    *unbiased* variance. Evaluation: the running statistics are used instead.
    """
    _check_rank("batch_norm", x, (2, 4))
    c = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and t.shape != (c,):
            raise ValueError(f"batch_norm: {name} has shape {t.shape}, input {x.shape} has {c} channels")
    if (running_mean is None) != (running_var is None):  # else training updates only one of them
        raise ValueError("batch_norm: pass both running_mean and running_var, or neither")
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    shape = (1, c) if x.ndim == 2 else (1, c, 1, 1)
    count = x.size // c
    if training:
        if count < 2:
            raise ValueError(f"batch_norm: training needs more than one value per channel, input "
                             f"shape {x.shape} has {count}")
        mean = x.mean(axes, keepdims=True)
        centered = x - mean
        var = (centered * centered).mean(axes, keepdims=True)
        if running_mean is not None:
            with no_grad():
                running_mean.copy_(running_mean.data * (1 - momentum) + mean.data.reshape(c) * momentum)
                unbiased = var.data.reshape(c) * (count / (count - 1))
                running_var.copy_(running_var.data * (1 - momentum) + unbiased * momentum)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: evaluation needs running_mean and running_var")
        centered = x - running_mean.reshape(shape)
        var = running_var.reshape(shape)
    y = centered / (var + eps).sqrt()
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def log_softmax(x, dim=-1):
    """log softmax(x) = x - max - log(sum(exp(x - max))). Shifting by the (constant) row max
    leaves the result unchanged and keeps every exp() <= 1, so large logits cannot overflow."""
    shifted = x - x.detach().max(dim, keepdims=True)
    return shifted - shifted.exp().sum(dim, keepdims=True).log()


def softmax(x, dim=-1):
    """softmax(x)_i = exp(x_i - max) / sum_j exp(x_j - max)."""
    e = (x - x.detach().max(dim, keepdims=True)).exp()
    return e / e.sum(dim, keepdims=True)


def _reduce(name, losses, reduction):
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_labels(name, scores, labels):
    if not isinstance(labels, Tensor):
        labels = Tensor(labels, device=scores.device)
    _check_rank(name, scores, (2,))
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{name}: labels must be integers (class indices), got {labels.dtype}")
    if labels.shape != (scores.shape[0],):
        raise ValueError(f"{name}: labels of shape {labels.shape} do not match scores of shape "
                         f"{scores.shape}; expected ({scores.shape[0]},)")
    if labels.size and (labels.data.min() < 0 or labels.data.max() >= scores.shape[1]):
        raise ValueError(f"{name}: labels must be in [0, {scores.shape[1]}), got values from "
                         f"{int(labels.data.min())} to {int(labels.data.max())}")
    return labels.long()


def cross_entropy(logits, labels, reduction="mean"):
    """-log softmax(logits)[label], fused in one op whose gradient is softmax - onehot.
    logits (N, K) scores, labels (N,) integer classes in [0, K)."""
    labels = _check_labels("cross_entropy", logits, labels)
    return _reduce("cross_entropy", SoftmaxCrossEntropy.apply(logits, labels), reduction)


def nll_loss(log_probs, labels, reduction="mean"):
    """-log_probs[n, label_n]; with log_softmax in front it equals cross_entropy."""
    labels = _check_labels("nll_loss", log_probs, labels)
    rows = get_xp(labels.data).arange(len(labels))
    return _reduce("nll_loss", -log_probs[rows, labels.data], reduction)


def mse_loss(input, target, reduction="mean"):  # noqa: A002 (PyTorch's name)
    """(input - target)^2, averaged. Shapes must match (no silent broadcasting)."""
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input shape {input.shape} != target shape {target.shape}")
    d = input - target
    return _reduce("mse_loss", d * d, reduction)


def binary_cross_entropy(probs, target, reduction="mean"):
    """-(t log p + (1 - t) log(1 - p)); p and 1 - p are clamped to the smallest positive normal
    float, so log(0) never happens (the gradient is 0 where the clamp is active)."""
    if probs.shape != target.shape:
        raise ValueError(f"binary_cross_entropy: probs shape {probs.shape} != target shape {target.shape}")
    tiny = float(np.finfo(probs.dtype).tiny)
    losses = -(target * probs.clip(tiny, 1.0).log() + (1 - target) * (1 - probs).clip(tiny, 1.0).log())
    return _reduce("binary_cross_entropy", losses, reduction)


class BCEWithLogits(Function):
    """loss = max(z, 0) - z t + log(1 + exp(-|z|)), the stable form of
    -(t log sigmoid(z) + (1 - t) log(1 - sigmoid(z)));  dloss/dz = sigmoid(z) - t."""
    def forward(ctx, z, t):
        xp = get_xp(z)
        return xp.maximum(z, 0) - z * t + xp.log1p(xp.exp(-xp.abs(z)))

    def backward(ctx, gy, y):
        z, t = ctx.inputs
        return gy * (z.sigmoid() - t), (gy * -z if t.requires_grad else None)


def binary_cross_entropy_with_logits(logits, target, reduction="mean"):
    if logits.shape != target.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: logits shape {logits.shape} != "
                         f"target shape {target.shape}")
    if target.dtype != logits.dtype:
        target = target.astype(logits.dtype)
    return _reduce("binary_cross_entropy_with_logits", BCEWithLogits.apply(logits, target), reduction)


__all__ = ["linear", "conv2d", "max_pool2d", "avg_pool2d", "dropout", "batch_norm", "relu",
           "sigmoid", "tanh", "flatten", "softmax", "log_softmax", "cross_entropy", "nll_loss",
           "mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"]
