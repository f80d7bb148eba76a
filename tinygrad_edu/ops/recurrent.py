"""Recurrent ops: the fused LSTM and GRU cells (one step), and the loops over time the layers use.

Both work on the input projection ``xg = x @ W_ih.T + biases``, which the caller computes for
all time steps at once with one matrix multiply; an op adds ``h @ W_hh.T`` and does the cell's
elementwise work with a kernel (``cpu_kernels`` / ``cuda_kernels``: lstm_cell_*, gru_cell_*).

* ``LSTMCell``, ``GRUCell``: one step, one node (used by ``nn.LSTMCell`` and ``nn.GRUCell``).
* ``LSTMSequence``, ``GRUSequence``, ``RNNSequence``: one direction of one layer over the whole
  sequence, one node. Forward is a loop over the steps, backward the loop back through time
  (BPTT), then one matrix multiply for dW_hh over all steps (``weight_grad``), as cuDNN does.

Why not a cell node per step in the layers? Step t would take its slice xg[t] of the (L, N, G)
projection, and a node has one output, so that slice's gradient is a full (L, N, G) array of
zeros with row t filled in, added to the others: L full-size arrays per backward, quadratic in
L (at batch 64, 28 steps, hidden 128 that alone took 18 ms, more than PyTorch's whole forward
and backward). A loop inside one node writes each step's gradient straight into place.

Backward has two paths, as in ``SoftmaxCrossEntropy``. A plain ``backward()`` runs with grad
mode off and takes the fast one: kernels on arrays, nothing recorded. Under
``create_graph=True`` grad mode is on, and the gradient is built from Tensor ops of the inputs
(the gates are recomputed), so it can be differentiated again: the cells write the kernels'
formulas as Tensor ops; the sequences unroll themselves into cell nodes and differentiate those
(quadratic in L, as said above, which is fine for second derivatives on small problems).
"""
from ..backend import get_xp
from ..tensor import Function, Tensor, grad, is_grad_enabled
from .movement import cat, stack
from .nn_ops import _contiguous, kernels


def _fast(*arrays):
    """The arrays a kernel returned, as Tensors (to finish the backward with Tensor ops)."""
    return tuple(Tensor._wrap(a) for a in arrays)


class LSTMCell(Function):
    """One LSTM step (PyTorch's equations and gate order i, f, g, o), as one node.

    Inputs xg (N, 4H) = x W_ih^T + b_ih + b_hh, h, c (N, H), w_hh (4H, H):

        gates = xg + h w_hh^T = [a_i | a_f | a_g | a_o]
        i, f, o = sigmoid(a_i, a_f, a_o);  g = tanh(a_g)
        c' = f * c + i * g;  h' = o * tanh(c')

    Output (2, N, H): out[0] = h', out[1] = c'. Backward from dh = gy[0], dc = gy[1]: the
    kernel gives dgates and dc_prev (``cpu_kernels.lstm_cell_backward``); then
    dxg = dgates, dh_prev = dgates w_hh, dw_hh = dgates^T h.
    """
    def forward(ctx, xg, h, c, w_hh):
        gates = h @ w_hh.T
        gates += xg
        h, c, ctx.act = kernels(xg).lstm_cell_forward(gates, _contiguous(c))
        return get_xp(xg).stack((h, c))

    def backward(ctx, gy, y):
        xg, h, c, w_hh = ctx.inputs
        if is_grad_enabled():
            dgates, dc = ctx.recorded_gates_grad(gy)
        else:
            dgates, dc = _fast(*kernels(gy.data).lstm_cell_backward(
                _contiguous(gy.data[0]), _contiguous(gy.data[1]), ctx.act, _contiguous(c.data)))
        return (dgates, dgates @ w_hh if h.requires_grad else None,
                dc if c.requires_grad else None, dgates.T @ h if w_hh.requires_grad else None)

    def recorded_gates_grad(ctx, gy):
        """(dgates, dc_prev): the kernel's formulas as Tensor ops of the inputs and gy."""
        xg, h, c, w_hh = ctx.inputs
        H = h.shape[1]
        gates = xg + h @ w_hh.T
        i, f, o = (gates[:, k * H:(k + 1) * H].sigmoid() for k in (0, 1, 3))
        g = gates[:, 2 * H:3 * H].tanh()
        tc = (f * c + i * g).tanh()
        dh, dc = gy[0], gy[1]
        dct = dc + dh * o * (1 - tc * tc)
        dgates = cat([dct * g * i * (1 - i), dct * c * f * (1 - f), dct * i * (1 - g * g),
                      dh * tc * o * (1 - o)], axis=1)
        return dgates, dct * f


class GRUCell(Function):
    """One GRU step (PyTorch's equations and gate order r, z, n), as one node.

    Inputs xg (N, 3H) = x W_ih^T + b_ih, h (N, H), w_hh (3H, H) and optionally b_hh (3H,):

        hg = h w_hh^T + b_hh;  r = sigmoid(xg_r + hg_r);  z = sigmoid(xg_z + hg_z)
        n = tanh(xg_n + r * hg_n);  h' = (1 - z) * n + z * h

    Backward: the kernel gives dxg, dhg and the direct path dh * z
    (``cpu_kernels.gru_cell_backward``); then dh_prev = dh * z + dhg w_hh, dw_hh = dhg^T h,
    db_hh = dhg summed over the batch.
    """
    def forward(ctx, xg, h, w_hh, *b_hh):
        hg = h @ w_hh.T
        if b_hh:
            hg += b_hh[0]
        h, ctx.act = kernels(xg).gru_cell_forward(_contiguous(xg), hg, _contiguous(h))
        return h

    def backward(ctx, gy, y):
        xg, h, w_hh = ctx.inputs[:3]
        if is_grad_enabled():
            dxg, dhg, dh = ctx.recorded_grads(gy)
        else:
            dxg, dhg, dh = _fast(*kernels(gy.data).gru_cell_backward(
                _contiguous(gy.data), ctx.act, _contiguous(h.data)))
        grads = (dxg, dh + dhg @ w_hh if h.requires_grad else None,
                 dhg.T @ h if w_hh.requires_grad else None)
        if len(ctx.inputs) == 4:
            grads += (dhg.sum(0) if ctx.inputs[3].requires_grad else None,)
        return grads

    def recorded_grads(ctx, dh):
        """(dxg, dhg, dh * z): the kernel's formulas as Tensor ops of the inputs and dh."""
        xg, h, w_hh = ctx.inputs[:3]
        H = h.shape[1]
        hg = h @ w_hh.T
        if len(ctx.inputs) == 4:
            hg = hg + ctx.inputs[3]
        r = (xg[:, :H] + hg[:, :H]).sigmoid()
        z = (xg[:, H:2 * H] + hg[:, H:2 * H]).sigmoid()
        hg_n = hg[:, 2 * H:]
        n = (xg[:, 2 * H:] + r * hg_n).tanh()
        dn = dh * (1 - z) * (1 - n * n)
        dr = dn * hg_n * r * (1 - r)
        dz = dh * (h - n) * z * (1 - z)
        return cat([dr, dz, dn], axis=1), cat([dr, dz, dn * r], axis=1), dh * z


class _Sequence(Function):
    """What the loops over time share: the order of the steps and the two backward paths.

    A subclass writes ``forward`` (the loop over arrays), ``array_backward(gy, y)`` (BPTT over
    arrays: one array or None per input) and ``unrolled(*inputs)`` (the same forward as a
    graph of per-step Tensor ops, which the recorded backward differentiates).
    """
    def steps(ctx, L):
        """The time steps in the order the recurrence visits them."""
        return range(L - 1, -1, -1) if ctx.reverse else range(L)

    def first_and_previous(ctx, t, L):
        """(whether t is the first step visited, the index of the step visited before it)."""
        return (t == L - 1, t + 1) if ctx.reverse else (t == 0, t - 1)

    def weight_grad(ctx, da, h0, hs):
        """dw_hh = sum_t da[t]^T h_prev(t), with h_prev(t) the state step t started from: the
        neighbouring step's h (one matrix multiply for all those steps) or h0 (the first)."""
        G, H = da.shape[2], hs.shape[2]
        first, late, prev = (-1, slice(None, -1), slice(1, None)) if ctx.reverse else \
            (0, slice(1, None), slice(None, -1))
        return da[late].reshape(-1, G).T @ hs[prev].reshape(-1, H) + da[first].T @ h0

    def backward(ctx, gy, y):
        if is_grad_enabled():
            wrt = [x for x in ctx.inputs if x.requires_grad]
            grads = iter(grad(ctx.unrolled(*ctx.inputs), wrt, gy, create_graph=True,
                              allow_unused=True))
            return tuple(next(grads) if x.requires_grad else None for x in ctx.inputs)
        grads = ctx.array_backward(gy.data, y.data)
        return tuple(None if g is None or not x.requires_grad else Tensor._wrap(g)
                     for x, g in zip(ctx.inputs, grads))


class LSTMSequence(_Sequence):
    """One direction of one LSTM layer over a whole sequence: ``LSTMCell`` at every step.

    Inputs xg (L, N, 4H) = the input projection of all steps, x W_ih^T + b_ih + b_hh; h0, c0
    (N, H); w_hh (4H, H). ``reverse``: visit t = L-1 down to 0. Output (2, L, N, H): out[0, t]
    and out[1, t] are h and c after step t (in time order, whatever the direction).

    Backward through time: visiting the steps the other way, dh_t = gy_h[t] + dgates_{t+1} w_hh
    and dc_t = gy_c[t] + dc_prev_{t+1} go into the kernel, whose dgates_t is row t of dxg;
    then dw_hh = sum_t dgates_t^T h_{t-1} for all steps at once.
    """
    def forward(ctx, xg, h0, c0, w_hh, reverse):
        ctx.reverse = reverse
        L, N, H = xg.shape[0], xg.shape[1], w_hh.shape[1]
        kernel = kernels(xg).lstm_cell_forward
        y = get_xp(xg).empty((2, L, N, H), dtype=xg.dtype)
        h, c, ctx.acts = h0, _contiguous(c0), [None] * L
        w_t = _contiguous(w_hh.T)     # (a GEMM with a row-major operand is ~10% faster)
        for t in ctx.steps(L):
            gates = h @ w_t
            gates += xg[t]
            h, c, ctx.acts[t] = kernel(gates, c)
            y[0, t], y[1, t] = h, c
        return y

    def array_backward(ctx, gy, y):
        xg, h0, c0, w_hh = (x.data for x in ctx.inputs)
        L = xg.shape[0]
        kernel = kernels(xg).lstm_cell_backward
        dxg = get_xp(xg).empty_like(xg)
        dh = dc = 0
        for t in reversed(ctx.steps(L)):
            first, p = ctx.first_and_previous(t, L)
            dgates, dc = kernel(_contiguous(gy[0, t] + dh), _contiguous(gy[1, t] + dc),
                                ctx.acts[t], _contiguous(c0) if first else y[1, p])
            dxg[t] = dgates
            dh = dgates @ w_hh
        dw = ctx.weight_grad(dxg, h0, y[0]) if ctx.inputs[3].requires_grad else None
        return dxg, dh, dc, dw

    def unrolled(ctx, xg, h0, c0, w_hh):
        h, c, out = h0, c0, [None] * xg.shape[0]
        for t in ctx.steps(xg.shape[0]):
            out[t] = LSTMCell.apply(xg[t], h, c, w_hh)
            h, c = out[t][0], out[t][1]
        return stack(out, axis=1)


class GRUSequence(_Sequence):
    """One direction of one GRU layer over a whole sequence: ``GRUCell`` at every step.

    Inputs xg (L, N, 3H) = x W_ih^T + b_ih for all steps, h0 (N, H), w_hh (3H, H) and
    optionally b_hh (3H,). Output (L, N, H): h after each step, in time order.

    Backward through time: dh_t = gy[t] + (dh_{t+1} z_{t+1} + dhg_{t+1} w_hh) goes into the
    kernel, whose dxg_t and dhg_t are row t of dxg and dhg; then dw_hh = sum_t dhg_t^T h_{t-1}
    for all steps at once and db_hh = dhg summed over steps and batch.
    """
    def forward(ctx, xg, h0, w_hh, *b_hh, reverse):
        ctx.reverse = reverse
        L = xg.shape[0]
        kernel = kernels(xg).gru_cell_forward
        y = get_xp(xg).empty((L,) + h0.shape, dtype=xg.dtype)
        h, ctx.acts = _contiguous(h0), [None] * L
        w_t = _contiguous(w_hh.T)
        for t in ctx.steps(L):
            hg = h @ w_t
            if b_hh:
                hg += b_hh[0]
            h, ctx.acts[t] = kernel(xg[t], hg, h)
            y[t] = h
        return y

    def array_backward(ctx, gy, y):
        xg, h0, w_hh = (x.data for x in ctx.inputs[:3])
        L, H = xg.shape[0], w_hh.shape[1]
        kernel = kernels(xg).gru_cell_backward
        xp = get_xp(xg)
        dxg, dhg = xp.empty_like(xg), xp.empty_like(xg)
        dh = 0
        for t in reversed(ctx.steps(L)):
            first, p = ctx.first_and_previous(t, L)
            dxg[t], dhg[t], dh = kernel(_contiguous(gy[t] + dh), ctx.acts[t],
                                        _contiguous(h0) if first else y[p])
            dh += dhg[t] @ w_hh
        dw = ctx.weight_grad(dhg, h0, y) if ctx.inputs[2].requires_grad else None
        return dxg, dh, dw, dhg.reshape(-1, 3 * H).sum(0) if len(ctx.inputs) == 4 else None

    def unrolled(ctx, xg, h0, w_hh, *b_hh):
        h, out = h0, [None] * xg.shape[0]
        for t in ctx.steps(xg.shape[0]):
            h = out[t] = GRUCell.apply(xg[t], h, w_hh, *b_hh)
        return stack(out)


class RNNSequence(_Sequence):
    """One direction of one Elman RNN layer over a whole sequence (no kernel: NumPy does it).

    Inputs xg (L, N, H) = x W_ih^T + b_ih + b_hh for all steps, h0 (N, H), w_hh (H, H):
    h_t = act(xg[t] + h_{t-1} w_hh^T), act = tanh or relu. Output (L, N, H): every h_t.

    Backward through time: da_t = (gy[t] + da_{t+1} w_hh) * act'(h_t), with
    tanh' = 1 - h_t^2 and relu' = (h_t > 0) (0 at 0, as PyTorch); da_t is row t of dxg, and
    dw_hh = sum_t da_t^T h_{t-1} for all steps at once.
    """
    def forward(ctx, xg, h0, w_hh, reverse, nonlinearity):
        ctx.reverse, ctx.nonlinearity = reverse, nonlinearity
        xp = get_xp(xg)
        y = xp.empty(xg.shape, dtype=xg.dtype)
        h, w_t = h0, _contiguous(w_hh.T)
        for t in ctx.steps(xg.shape[0]):
            h = h @ w_t
            h += xg[t]
            h = xp.tanh(h, out=h) if nonlinearity == "tanh" else xp.maximum(h, 0, out=h)
            y[t] = h
        return y

    def array_backward(ctx, gy, y):
        xg, h0, w_hh = (x.data for x in ctx.inputs)
        dxg = get_xp(xg).empty_like(xg)
        da = 0
        for t in reversed(ctx.steps(xg.shape[0])):
            dh = gy[t] + da
            da = dh * (1 - y[t] * y[t]) if ctx.nonlinearity == "tanh" else dh * (y[t] > 0)
            dxg[t] = da
            da = da @ w_hh
        dw = ctx.weight_grad(dxg, h0, y) if ctx.inputs[2].requires_grad else None
        return dxg, da, dw

    def unrolled(ctx, xg, h0, w_hh):
        h, out = h0, [None] * xg.shape[0]
        for t in ctx.steps(xg.shape[0]):
            a = xg[t] + h @ w_hh.T
            h = out[t] = a.tanh() if ctx.nonlinearity == "tanh" else a.relu()
        return stack(out)


def lstm_cell(xg, h, c, w_hh):
    """(h', c') of one LSTM step; see ``LSTMCell``."""
    out = LSTMCell.apply(xg, h, c, w_hh)
    return out[0], out[1]


def gru_cell(xg, h, w_hh, b_hh=None):
    """h' of one GRU step; see ``GRUCell``."""
    return GRUCell.apply(xg, h, w_hh, *(() if b_hh is None else (b_hh,)))


def lstm_sequence(xg, h0, c0, w_hh, reverse=False):
    """(2, L, N, H): h and c after every step; see ``LSTMSequence``."""
    return LSTMSequence.apply(xg, h0, c0, w_hh, reverse=bool(reverse))


def gru_sequence(xg, h0, w_hh, b_hh=None, reverse=False):
    """(L, N, H): h after every step; see ``GRUSequence``."""
    return GRUSequence.apply(xg, h0, w_hh, *(() if b_hh is None else (b_hh,)),
                             reverse=bool(reverse))


def rnn_sequence(xg, h0, w_hh, nonlinearity="tanh", reverse=False):
    """(L, N, H): h after every step; see ``RNNSequence``."""
    return RNNSequence.apply(xg, h0, w_hh, reverse=bool(reverse), nonlinearity=nonlinearity)
