"""Neural-network ops: the linear layer, the ops backed by kernels: im2col/col2im
(convolution), max-pooling (plain and adaptive) and the fused softmax cross-entropy, and the
stable fused binary cross-entropy with logits.

Convolution is im2col followed by one matrix multiply. ``Conv2d`` does both in one node, so the
tape keeps only x and the filters, not the kh*kw times larger column matrix (backward makes it
again); its backward is written with ``Im2Col``, ``Col2Im`` and matmul, which are Tensor ops,
so conv2d is twice differentiable. ``Im2Col`` and ``Col2Im`` are each other's adjoint (and so
each other's backward). The array work is done by a kernel module chosen by device: Numba on
the CPU (``cpu_kernels``), hand-written CUDA on the GPU (``cuda_kernels``).
"""
import numpy as np

from ..backend import get_xp
from ..tensor import Function, Tensor, is_grad_enabled
from .geometry import adaptive_windows


def kernels(array):
    """The kernel module for an array's device."""
    if isinstance(array, np.ndarray):
        from . import cpu_kernels
        return cpu_kernels
    from . import cuda_kernels
    return cuda_kernels


def _contiguous(a):
    return get_xp(a).ascontiguousarray(a)


def _array_grads(ctx, gy):
    """A plain backward (grad mode off) on arrays: ``ctx.backward_arrays(gy, inputs, needs)``,
    with the inputs' arrays and whether each requires grad, gives one array (or None) per
    input. tg.compile's replay calls backward_arrays itself, without the Tensors."""
    inputs = ctx.inputs
    grads = ctx.backward_arrays(gy.data, [t.data for t in inputs],
                               [t.requires_grad for t in inputs])
    return tuple(None if g is None else Tensor._wrap(g) for g in grads)


class Linear(Function):
    """y = x @ w.T + b for x of shape (..., in), w (out, in), b (out,): one node, one GEMM.

    As separate ops (matmul, transpose, add) the tape would hold three nodes and an extra
    (batch, out) array, and w's gradient would arrive as a transposed view that has to be
    copied. Here, with x and gy seen as matrices (rows = all leading dims):
    gx = gy @ w, gw = gy^T @ x (already w's shape), gb = gy summed over rows.

    A plain ``backward()`` (grad mode off) computes these on the arrays: as Tensor ops they
    would be six more nodes' worth of bookkeeping, most of a tiny layer's cost. Under
    ``create_graph=True`` the same formulas are Tensor ops, so they can be differentiated again.
    """
    keeps = (0, 1)
    needs_output = False
    def forward(ctx, x, w, *bias):
        y = x @ w.T
        if bias:
            y += bias[0]
        return y

    def backward(ctx, gy, y):
        x, w = ctx.inputs[:2]
        if not is_grad_enabled():
            return _array_grads(ctx, gy)
        gy2 = gy.reshape(-1, gy.shape[-1])
        gx = (gy @ w) if x.requires_grad else None
        gw = gy2.T @ x.reshape(-1, x.shape[-1]) if w.requires_grad else None
        gb = gy2.sum(0) if len(ctx.inputs) == 3 and ctx.inputs[2].requires_grad else None
        return gx, gw, gb

    def backward_arrays(ctx, gy, inputs, needs):
        x, w = inputs[:2]
        g, x2 = gy.reshape(-1, gy.shape[-1]), x.reshape(-1, x.shape[-1])
        return (gy @ w if needs[0] else None, g.T @ x2 if needs[1] else None,
                g.sum(0) if len(inputs) == 3 and needs[2] else None)


class Dropout(Function):
    """y = x * keep * scale (inverted dropout: scale = 1 / (1 - p)); keep is the boolean mask of
    the elements kept, drawn by the caller. The node keeps that mask, one byte per element, and
    not x (x * mask would keep x and a float mask). gx = gy * keep * scale: Dropout again, so
    the op is linear and twice differentiable."""
    keeps = ()
    needs_output = False
    elementwise = True

    def forward(ctx, x, keep, scale):
        ctx.keep, ctx.scale = keep, scale
        y = x * x.dtype.type(scale)
        y *= keep   # multiplying by the mask, not selecting: 0 * inf stays NaN, as in x * 0
        return y

    def backward(ctx, gy, y):
        return Dropout.apply(gy, keep=ctx.keep, scale=ctx.scale)


class Im2Col(Function):
    """cols[(n, oy, ox), (c, i, j)] = x[n, c, oy*sh - ph + i, ox*sw - pw + j], 0 in the padding.

    Every output pixel's receptive field becomes one row, so a convolution with F filters is
    ``cols @ W.reshape(F, -1).T``. The gradient sums each entry back to its pixel: col2im.
    """
    keeps = ()
    needs_output = False
    def forward(ctx, x, geometry):
        ctx.geometry = geometry
        return kernels(x).im2col(_contiguous(x), *geometry)

    def backward(ctx, gy, y):
        return Col2Im.apply(gy, x_shape=ctx.inputs[0].shape, geometry=ctx.geometry)


class Col2Im(Function):
    """The adjoint of im2col: each pixel receives the sum of the column entries copied from it."""
    keeps = ()
    needs_output = False
    def forward(ctx, cols, x_shape, geometry):
        ctx.geometry = geometry
        return kernels(cols).col2im(_contiguous(cols), x_shape, *geometry)

    def backward(ctx, gy, y):
        return Im2Col.apply(gy, geometry=ctx.geometry)


def _chunks(x, w, out_size):
    """Slices of the batch for one im2col + GEMM each: about CHUNK_BYTES of columns per slice
    on the CPU, so that the column matrix is still in the cache when the GEMM reads it (and
    never more than that is allocated); the whole batch at once on the GPU."""
    n = x.shape[0]
    if not isinstance(x, np.ndarray):
        return [slice(0, n)]
    per_image = out_size[0] * out_size[1] * w[0].size * x.itemsize
    step = max(1, CHUNK_BYTES // max(per_image, 1))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


CHUNK_BYTES = 4 << 20   # 4 MiB: benchmarks/layers.py, see docs/kernels.md


class Conv2d(Function):
    """y = conv2d(x, w) + b (NCHW) as im2col, one matrix multiply and the bias, in one node.

    Forward: cols (N*OH*OW, C*kh*kw) @ w.reshape(F, -1).T gives (N*OH*OW, F), which is
    reordered to (N, F, OH, OW). cols is a temporary: saving it for backward would cost kh*kw
    times the input's memory, and remaking it is cheap. With g = gy as a (N*OH*OW, F) matrix:
    gw = g^T @ im2col(x), gx = col2im(g @ w.reshape(F, -1)), gb = g summed over rows.

    Both passes go through the batch a few images at a time (``_chunks``): the same sums, with
    each slice's columns made, used and dropped while they are in the cache. When the backward
    pass is itself recorded (``create_graph=True``) it is written with Tensor ops instead
    (``_backward_recorded``, the reference the tests compare the array version with).
    """
    keeps = (0, 1)
    needs_output = False

    def forward(ctx, x, w, *bias, geometry, out_size):
        ctx.geometry = geometry
        xp, f = get_xp(x), w.shape[0]
        wm = w.reshape(f, -1).T                                  # (C*kh*kw, F)
        y = xp.empty((x.shape[0], f, *out_size), dtype=x.dtype)
        for c in _chunks(x, w, out_size):
            yc = kernels(x).im2col(_contiguous(x[c]), *geometry) @ wm
            if bias:
                yc += bias[0]
            y[c] = yc.reshape(-1, *out_size, f).transpose(0, 3, 1, 2)
        return y

    def backward(ctx, gy, y):
        if is_grad_enabled():
            return ctx._backward_recorded(gy)
        return _array_grads(ctx, gy)

    def backward_arrays(ctx, gy, inputs, needs):
        x, w = inputs[:2]
        xp, f = get_xp(gy), w.shape[0]
        wm = w.reshape(f, -1)
        gx = xp.empty(x.shape, dtype=x.dtype) if needs[0] else None
        gw = xp.zeros(wm.shape, dtype=w.dtype) if needs[1] else None
        for c in _chunks(x, w, gy.shape[2:]):
            g = xp.ascontiguousarray(gy[c].transpose(0, 2, 3, 1)).reshape(-1, f)
            if gw is not None:
                gw += g.T @ kernels(g).im2col(_contiguous(x[c]), *ctx.geometry)
            if gx is not None:
                gx[c] = kernels(g).col2im(g @ wm, gx[c].shape, *ctx.geometry)
        gb = gy.sum(axis=(0, 2, 3)) if len(inputs) == 3 and needs[2] else None
        return gx, None if gw is None else gw.reshape(w.shape), gb

    def _backward_recorded(ctx, gy):
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
    keeps = ()
    needs_output = False
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
    keeps = ()
    needs_output = False
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


def has_pool_kernel(x):
    """Whether the pooling kernels take array x: float32 or float64 on the CPU (Numba), float32
    on the GPU (CUDA)."""
    return x.dtype == np.float32 or (isinstance(x, np.ndarray) and x.dtype == np.float64)


def adaptive_geometry(x, out_size):
    """The max-pool window that adaptive_argmax uses for x and out_size, or None (a loop)."""
    (h, w), (oh, ow) = x.shape[2:], out_size
    if h % oh == 0 and w % ow == 0 and has_pool_kernel(x):
        return (h // oh, w // ow, h // oh, w // ow, 0, 0)
    return None


def adaptive_argmax(x, out_size):
    """(idx, geometry) for adaptive max-pooling of x (N, C, H, W) to out_size (OH, OW): idx
    (N, C, OH, OW) is the flat index into the H*W plane of the maximum of each adaptive window
    (``geometry.adaptive_windows``), the first one in row-major order on ties, a NaN counting as
    the maximum (as max_pool2d's kernels do). When OH divides H and OW divides W (and a kernel
    takes x's dtype) the windows are max_pool2d's with kernel = stride = H/OH, W/OW: the max-pool
    kernel finds idx, and ``geometry`` is that window; otherwise ``geometry`` is None and a loop
    over the output cells (few: 7x7, 1x1) takes each window's argmax."""
    (n, c, h, w), (oh, ow) = x.shape, out_size
    geometry = adaptive_geometry(x, out_size)
    if geometry is not None:
        return kernels(x).maxpool2d_forward(_contiguous(x), *geometry, oh, ow)[1], geometry
    xp = get_xp(x)
    idx = xp.empty((n, c, oh, ow), dtype=np.int64)
    for i, (r0, r1) in enumerate(adaptive_windows(h, oh)):
        for j, (c0, c1) in enumerate(adaptive_windows(w, ow)):
            wide = c1 - c0  # argmax's index a into the window's rows is (a // wide, a % wide)
            a = x[:, :, r0:r1, c0:c1].reshape(n, c, (r1 - r0) * wide).argmax(axis=2)
            idx[:, :, i, j] = (r0 + a // wide) * w + c0 + a % wide
    return idx, None


class AdaptiveMaxPool2d(Function):
    """y[n, c, i, j] = x[n, c].flat[idx[n, c, i, j]], idx from ``adaptive_argmax``: the max of
    each adaptive window, picked. Backward routes each gradient to where its max was; windows
    may overlap, so a pixel can receive several (they add up)."""
    def forward(ctx, x, idx, geometry):
        ctx.idx, ctx.geometry = idx, geometry
        (n, c, h, w), (oh, ow) = x.shape, idx.shape[2:]
        flat = idx.reshape(n, c, oh * ow)
        return get_xp(x).take_along_axis(x.reshape(n, c, h * w), flat, axis=2).reshape(idx.shape)

    def backward(ctx, gy, y):
        x_shape = ctx.inputs[0].shape
        if ctx.geometry is not None:  # max_pool2d's windows: its backward kernel
            return MaxPool2dGrad.apply(gy, idx=ctx.idx, x_shape=x_shape, geometry=ctx.geometry)
        return AdaptiveMaxPool2dGrad.apply(gy, idx=ctx.idx, x_shape=x_shape)


class AdaptiveMaxPool2dGrad(MaxPool2dGrad):
    """dx = zeros(x_shape) with dx[n, c].flat[idx[n, c, i, j]] += gy[n, c, i, j], one output cell
    (i, j) at a time: within one cell each (n, c) plane gets one index, so the indexed ``+=``
    has no repeated index to lose, and overlapping windows add up across cells. Linear in gy;
    its gradient is MaxPool2dGrad's gather at idx."""
    def forward(ctx, gy, idx, x_shape):
        ctx.idx = idx
        (n, c, h, w), xp = x_shape, get_xp(gy)
        dx = xp.zeros((n, c, h * w), dtype=gy.dtype)
        rows, chans = xp.arange(n).reshape(n, 1), xp.arange(c).reshape(1, c)
        for i, j in np.ndindex(*idx.shape[2:]):
            dx[rows, chans, idx[:, :, i, j]] += gy[:, :, i, j]
        return dx.reshape(x_shape)


class SoftmaxCrossEntropy(Function):
    """Per-row loss_n = logsumexp(z_n) - z_n[label_n], fused with its simple gradient
    dloss_n/dz_n = p_n - onehot(label_n), p_n = softmax(z_n).

    Stable: the row maximum is subtracted before exponentiating, so every exp() is <= 1 and
    logits of magnitude 1e4 give neither inf nor NaN. Backward has two paths. A plain
    ``backward()`` runs with grad mode off and takes the fast one: array code (or the GPU
    kernel), nothing recorded. Under ``create_graph=True`` grad mode is on, and the same
    gradient is built from Tensor ops, so it can be differentiated again (Hessian-vector
    products): d^2 loss_n / dz_n^2 = diag(p_n) - p_n p_n^T.
    """

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
        if is_grad_enabled():
            return ctx.recorded_backward(gy), None
        return _array_grads(ctx, gy)

    def backward_arrays(ctx, gy, inputs, needs):
        """(p - onehot) * gy on arrays, from what forward saved (labels get no gradient)."""
        z, labels = inputs
        xp = get_xp(z)
        if hasattr(ctx, "lse"):  # the GPU kernel path
            return kernels(z).softmax_ce_backward(_contiguous(z), _contiguous(labels), ctx.lse,
                                                  _contiguous(gy)), None
        g = xp.exp(ctx.logp)
        g[xp.arange(len(labels)), labels] -= 1
        g *= gy[:, None]
        return g, None

    def recorded_backward(ctx, gy):
        """(p - onehot) * gy as Tensor ops of z and gy; the shift is a constant (it cancels)."""
        z, labels = ctx.inputs
        xp = get_xp(z.data)
        e = (z - Tensor._wrap(z.data.max(axis=1, keepdims=True))).exp()
        onehot = xp.zeros(z.shape, dtype=z.dtype)
        onehot[xp.arange(len(labels)), labels.data] = 1
        return (e / e.sum(1, keepdims=True) - Tensor._wrap(onehot)) * gy.reshape(-1, 1)


class BCEWithLogits(Function):
    """loss = max(z, 0) - z t + log(1 + exp(-|z|)), the stable form of
    -(t log sigmoid(z) + (1 - t) log(1 - sigmoid(z)));  dloss/dz = sigmoid(z) - t,
    dloss/dt = -z. Backward is Tensor ops, so it is twice differentiable."""
    def forward(ctx, z, t):
        xp = get_xp(z)
        return xp.maximum(z, 0) - z * t + xp.log1p(xp.exp(-xp.abs(z)))

    def backward(ctx, gy, y):
        z, t = ctx.inputs
        return gy * (z.sigmoid() - t), (gy * -z if t.requires_grad else None)
