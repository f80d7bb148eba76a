"""Neural-network ops: the linear layer, and the ops backed by kernels: im2col/col2im
(convolution), max-pooling and the fused softmax cross-entropy.

Convolution is im2col followed by one matrix multiply. ``Conv2d`` does both in one node, so the
tape keeps only x and the filters, not the kh*kw times larger column matrix (backward makes it
again); its backward is written with ``Im2Col``, ``Col2Im`` and matmul, which are Tensor ops,
so conv2d is twice differentiable. ``Im2Col`` and ``Col2Im`` are each other's adjoint (and so
each other's backward). The array work is done by a kernel module chosen by device: Numba on
the CPU (``cpu_kernels``), hand-written CUDA on the GPU (``cuda_kernels``).
"""
import numpy as np

from ..backend import get_xp
from ..tensor import Function, Tensor


def kernels(array):
    """The kernel module for an array's device."""
    if isinstance(array, np.ndarray):
        from . import cpu_kernels
        return cpu_kernels
    from . import cuda_kernels
    return cuda_kernels


def _contiguous(a):
    return get_xp(a).ascontiguousarray(a)


class Linear(Function):
    """y = x @ w.T + b for x of shape (..., in), w (out, in), b (out,): one node, one GEMM.

    As separate ops (matmul, transpose, add) the tape would hold three nodes and an extra
    (batch, out) array, and w's gradient would arrive as a transposed view that has to be
    copied. Here, with x and gy seen as matrices (rows = all leading dims):
    gx = gy @ w, gw = gy^T @ x (already w's shape), gb = gy summed over rows.
    """
    def forward(ctx, x, w, *bias):
        y = x @ w.T
        if bias:
            y += bias[0]
        return y

    def backward(ctx, gy, y):
        x, w = ctx.inputs[:2]
        gy2 = gy.reshape(-1, gy.shape[-1])
        gx = (gy @ w) if x.requires_grad else None
        gw = gy2.T @ x.reshape(-1, x.shape[-1]) if w.requires_grad else None
        gb = gy2.sum(0) if len(ctx.inputs) == 3 and ctx.inputs[2].requires_grad else None
        return gx, gw, gb


class Im2Col(Function):
    """cols[(n, oy, ox), (c, i, j)] = x[n, c, oy*sh - ph + i, ox*sw - pw + j], 0 in the padding.

    Every output pixel's receptive field becomes one row, so a convolution with F filters is
    ``cols @ W.reshape(F, -1).T``. The gradient sums each entry back to its pixel: col2im.
    """
    def forward(ctx, x, geometry):
        ctx.geometry = geometry
        return kernels(x).im2col(_contiguous(x), *geometry)

    def backward(ctx, gy, y):
        return Col2Im.apply(gy, x_shape=ctx.inputs[0].shape, geometry=ctx.geometry)


class Col2Im(Function):
    """The adjoint of im2col: each pixel receives the sum of the column entries copied from it."""
    def forward(ctx, cols, x_shape, geometry):
        ctx.geometry = geometry
        return kernels(cols).col2im(_contiguous(cols), x_shape, *geometry)

    def backward(ctx, gy, y):
        return Im2Col.apply(gy, geometry=ctx.geometry)


class Conv2d(Function):
    """y = conv2d(x, w) + b (NCHW) as im2col, one matrix multiply and the bias, in one node.

    Forward: cols (N*OH*OW, C*kh*kw) @ w.reshape(F, -1).T gives (N*OH*OW, F), which is
    reordered to (N, F, OH, OW). cols is a temporary: saving it for backward would cost kh*kw
    times the input's memory, and remaking it is cheap. With g = gy as a (N*OH*OW, F) matrix:
    gw = g^T @ im2col(x), gx = col2im(g @ w.reshape(F, -1)), gb = g summed over rows.
    """
    def forward(ctx, x, w, *bias, geometry, out_size):
        ctx.geometry = geometry
        n, f = x.shape[0], w.shape[0]
        cols = kernels(x).im2col(_contiguous(x), *geometry)
        y = cols @ w.reshape(f, -1).T
        if bias:
            y += bias[0]
        return get_xp(y).ascontiguousarray(y.reshape(n, *out_size, f).transpose(0, 3, 1, 2))

    def backward(ctx, gy, y):
        x, w = ctx.inputs[:2]
        f = w.shape[0]
        g = gy.permute(0, 2, 3, 1).reshape(-1, f)
        gx = gw = gb = None
        if x.requires_grad:
            gx = Col2Im.apply(g @ w.reshape(f, -1), x_shape=x.shape, geometry=ctx.geometry)
        if w.requires_grad:
            gw = (g.T @ Im2Col.apply(x, geometry=ctx.geometry)).reshape(w.shape)
        if len(ctx.inputs) == 3 and ctx.inputs[2].requires_grad:
            gb = g.sum(0)
        return gx, gw, gb


class MaxPool2d(Function):
    """y[n, c, a, b] = max of x over window (a, b); the kernel also records where the max was
    (``idx``, a flat index into the H*W plane), so backward routes each gradient there."""
    def forward(ctx, x, geometry, out_size):
        ctx.geometry = geometry
        y, ctx.idx = kernels(x).maxpool2d_forward(_contiguous(x), *geometry, *out_size)
        return y

    def backward(ctx, gy, y):
        return MaxPool2dGrad.apply(gy, idx=ctx.idx, x_shape=ctx.inputs[0].shape,
                                   geometry=ctx.geometry)


class MaxPool2dGrad(Function):
    """dx = zeros(x_shape) with dx[n, c].flat[idx] += gy (overlapping windows add up).
    It is linear in gy, so its own gradient gathers the incoming gradient at ``idx``.
    (The GPU kernel is a gather over the windows covering each pixel, so it needs the geometry.)"""
    def forward(ctx, gy, idx, x_shape, geometry):
        ctx.idx = idx
        return kernels(gy).maxpool2d_backward(_contiguous(gy), idx, x_shape, *geometry)

    def backward(ctx, ggx, y):
        n, c, h, w = ggx.shape
        xp = get_xp(ggx.data)
        rows = xp.arange(n).reshape(n, 1, 1)
        chans = xp.arange(c).reshape(1, c, 1)
        picked = ggx.reshape(n, c, h * w)[rows, chans, ctx.idx.reshape(n, c, -1)]
        return picked.reshape(ctx.idx.shape)


class SoftmaxCrossEntropy(Function):
    """Per-row loss_n = logsumexp(z_n) - z_n[label_n], fused with its simple gradient
    dloss_n/dz_n = softmax(z_n) - onehot(label_n).

    Stable: the row maximum is subtracted before exponentiating, so every exp() is <= 1 and
    logits of magnitude 1e4 give neither inf nor NaN. Once-differentiable (array backward).
    """
    differentiable = False

    def forward(ctx, z, labels):
        xp = get_xp(z)
        if xp is not np and z.dtype == np.float32:
            loss, ctx.lse = kernels(z).softmax_ce_forward(_contiguous(z), _contiguous(labels))
            return loss
        shifted = z - z.max(axis=1, keepdims=True)
        lse = xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        ctx.logp = shifted - lse
        return -ctx.logp[xp.arange(len(labels)), labels]  # each row's entry at its label

    def backward(ctx, gy, y):
        z, labels = (t.data for t in ctx.inputs)
        xp = get_xp(z)
        if hasattr(ctx, "lse"):  # the GPU kernel path
            g = kernels(z).softmax_ce_backward(_contiguous(z), _contiguous(labels), ctx.lse,
                                               _contiguous(gy.data))
            return Tensor._wrap(g), None
        g = xp.exp(ctx.logp)
        g[xp.arange(len(labels)), labels] -= 1
        g *= gy.data[:, None]
        return Tensor._wrap(g), None
