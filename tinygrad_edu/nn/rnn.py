"""Recurrent layers (RNN, LSTM, GRU) and their one-step cells, PyTorch's ``torch.nn`` classes.

Signatures, call conventions, return values, parameter names and layouts and the default
initialization are PyTorch's, so a PyTorch ``state_dict``'s arrays load into these layers and
both give the same outputs and gradients (``tests/nn/test_rnn_pytorch.py`` checks it)::

    lstm = nn.LSTM(28, 128, num_layers=2, batch_first=True)
    output, (h_n, c_n) = lstm(x)              # x (N, L, 28) -> output (N, L, 128)
    output, (h_n, c_n) = lstm(x, (h_n.detach(), c_n.detach()))   # truncated BPTT: carry on

Shapes (D = 2 if bidirectional else 1): input (L, N, H_in), or (N, L, H_in) with
``batch_first``, or unbatched (L, H_in); h_0, c_0, h_n and c_n (num_layers * D, N, H), or
(num_layers * D, H) unbatched, never batch first; output (L, N, D * H) (batch first and
unbatched like the input), the last layer's h at every step, both directions side by side.
The states default to zeros. ``dropout`` zeroes each element of every layer's output but the
last's, in training mode only (drawn from ``tg.manual_seed``'s generator).

Parameters of layer k (suffix "_reverse" for the second direction): ``weight_ih_l{k}``
(G*H, H_in) for k = 0, (G*H, D*H) above; ``weight_hh_l{k}`` (G*H, H); ``bias_ih_l{k}`` and
``bias_hh_l{k}`` (G*H,), absent when ``bias=False``; G = 1 (RNN), 4 (LSTM, gate rows i, f, g,
o), 3 (GRU, rows r, z, n). All start as U(-1/sqrt(H), 1/sqrt(H)).

How it runs: per layer and direction, the input projection of ALL steps is one matrix
multiply, and the loop over time is one node of the tape (``ops/recurrent.py``, which says why
not one node per step); its backward is backpropagation through time, and the layers are twice
differentiable. The cells are one fused node per call after the input projection (LSTMCell,
GRUCell), or plain ops (RNNCell: two Linear, an Add and the nonlinearity).
"""
import math
import warnings

import numpy as np

from ..creation import zeros
from ..ops import cat, stack
from ..ops.recurrent import gru_cell, gru_sequence, lstm_cell, lstm_sequence, rnn_sequence
from ..tensor import Tensor
from . import functional as F
from . import init
from .layers import _int
from .module import Module, Parameter

_NONLINEARITIES = ("tanh", "relu")


def _nonlinearity(name, value):
    if value not in _NONLINEARITIES:
        raise ValueError(f"{name}: unknown nonlinearity {value!r}; select from 'tanh' or 'relu'")
    return value


def _check_like(name, what, t, like):
    """t must be a Tensor of ``like``'s dtype and device (``like``: the first weight)."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name}: {what} must be a Tensor, got {type(t).__name__}")
    if t.dtype != like.dtype:
        raise TypeError(f"{name}: {what} has dtype {t.dtype}, the parameters {like.dtype}; "
                        "convert one with .to(dtype)")
    if t.device != like.device:
        raise ValueError(f"{name}: {what} is on {t.device}, the parameters on {like.device}")


def _check_states(name, hx, count, expected, like):
    """hx as a list of ``count`` state tensors of shape ``expected`` (None: zeros, later)."""
    labels = ("h_0", "c_0")[:count]
    if hx is None:
        return None
    states = [hx] if count == 1 else hx
    if count == 2 and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
        raise TypeError(f"{name}: the state must be a tuple (h_0, c_0), got {type(hx).__name__}")
    for label, s in zip(labels, states):
        _check_like(name, label, s, like)
        if s.shape != expected:
            raise ValueError(f"{name}: expected {label} of shape {expected}, got {s.shape}")
    return list(states)


class RNNBase(Module):
    """What RNN, LSTM and GRU share: the parameters, the checks and the loop over layers and
    directions. A subclass sets ``gates`` (G) and ``states`` (1, or 2 for LSTM's (h, c)) and
    writes ``_direction``, one direction of one layer."""
    gates, states = 1, 1

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False):
        super().__init__()
        name = type(self).__name__
        self.input_size = _int(name, "input_size", input_size)
        self.hidden_size = _int(name, "hidden_size", hidden_size)
        self.num_layers = _int(name, "num_layers", num_layers)
        if (isinstance(dropout, bool) or not isinstance(dropout, (int, float))
                or not 0 <= dropout <= 1):
            raise ValueError(f"{name}: dropout must be a number in [0, 1] (the probability of "
                             f"zeroing an element), got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{name}: dropout acts between layers, so dropout={dropout} with "
                          "num_layers=1 does nothing", stacklevel=2)
        self.bias, self.batch_first = bool(bias), bool(batch_first)
        self.dropout, self.bidirectional = float(dropout), bool(bidirectional)
        H, rows = self.hidden_size, self.gates * self.hidden_size
        for k in range(self.num_layers):
            for suffix in ("", "_reverse")[:self.num_directions]:
                fan_in = self.input_size if k == 0 else H * self.num_directions
                setattr(self, f"weight_ih_l{k}{suffix}", Parameter(np.zeros((rows, fan_in),
                                                                            np.float32)))
                setattr(self, f"weight_hh_l{k}{suffix}", Parameter(np.zeros((rows, H),
                                                                            np.float32)))
                if self.bias:
                    setattr(self, f"bias_ih_l{k}{suffix}", Parameter(np.zeros(rows, np.float32)))
                    setattr(self, f"bias_hh_l{k}{suffix}", Parameter(np.zeros(rows, np.float32)))
        self.reset_parameters()

    num_directions = property(lambda self: 2 if self.bidirectional else 1)

    def reset_parameters(self):
        """Every parameter ~ U(-1/sqrt(H), 1/sqrt(H)), PyTorch's initialization."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    @property
    def all_weights(self):
        """[[w_ih, w_hh, b_ih, b_hh] (without the biases if bias=False)] per layer and
        direction, in PyTorch's order."""
        return [[getattr(self, f"{kind}_l{k}{suffix}") for kind in
                 ("weight_ih", "weight_hh", "bias_ih", "bias_hh")[:4 if self.bias else 2]]
                for k in range(self.num_layers)
                for suffix in ("", "_reverse")[:self.num_directions]]

    def _check(self, x, hx):
        """(x as (L, N, H_in), the initial states as lists or None, whether x was batched),
        or an error naming the expected and the given shape; changes nothing."""
        name, w = type(self).__name__, self.weight_ih_l0
        _check_like(name, "input", x, w)
        layout = "(N, L, {})" if self.batch_first else "(L, N, {})"
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: expected input of shape {layout.format(self.input_size)}"
                             f" or (L, {self.input_size}) unbatched, got {x.shape}")
        batched = x.ndim == 3
        if not batched:
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        if x.shape[0] == 0:
            raise ValueError(f"{name}: input of shape {x.shape} has no time steps")
        states = self.num_layers * self.num_directions
        expected = (states, x.shape[1], self.hidden_size) if batched else \
            (states, self.hidden_size)
        hx = _check_states(name, hx, self.states, expected, w)
        if hx is not None and not batched:
            hx = [s.unsqueeze(1) for s in hx]
        return x, hx, batched

    def forward(self, input, hx=None):  # noqa: A002 (PyTorch's name)
        x, hx, batched = self._check(input, hx)
        L, N, H = x.shape[0], x.shape[1], self.hidden_size
        zero = zeros(N, H, dtype=x.dtype, device=x.device) if hx is None else None
        finals = [[] for _ in range(self.states)]  # h_n (and c_n) of every layer and direction
        weights, D = self.all_weights, self.num_directions
        for k in range(self.num_layers):
            if k > 0 and self.dropout and self.training:
                x = F.dropout(x, self.dropout)
            rows = x.reshape(L * N, x.shape[2])
            outs = []
            for i in range(k * D, (k + 1) * D):   # the directions of layer k
                init_states = [zero] * self.states if hx is None else [s[i] for s in hx]
                out, last = self._direction(rows, (L, N), weights[i], init_states, i % D == 1)
                outs.append(out)
                for f, s in zip(finals, last):
                    f.append(s)
            x = outs[0] if D == 1 else cat(outs, axis=2)
        finals = [stack(f) for f in finals]
        if not batched:
            x, finals = x.squeeze(1), [f.squeeze(1) for f in finals]
        elif self.batch_first:
            x = x.transpose(0, 1)
        return x, finals[0] if self.states == 1 else tuple(finals)

    def _projection(self, rows, shape, w_ih, bias):
        """x W_ih^T + bias for all L*N rows at once, as (L, N, G*H): one matrix multiply."""
        return F.linear(rows, w_ih, bias).reshape(*shape, w_ih.shape[0])

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) at each step of each
    layer (``nonlinearity="relu"``: relu instead of tanh), PyTorch's ``nn.RNN``.

    ``output, h_n = rnn(x, h_0=None)``; shapes and parameters in the module docstring (G = 1).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False):
        self.nonlinearity = _nonlinearity("RNN", nonlinearity)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional)

    def _direction(self, rows, shape, weights, init_states, reverse):
        w_ih, w_hh, *b = weights
        xg = self._projection(rows, shape, w_ih, b[0] + b[1] if b else None)
        out = rnn_sequence(xg, init_states[0], w_hh, self.nonlinearity, reverse)
        return out, [out[0 if reverse else -1]]


class LSTM(RNNBase):
    """Long short-term memory, PyTorch's ``nn.LSTM``. At each step of each layer, with gate
    rows i, f, g, o of the weights:

        i = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)     (input gate)
        f = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)     (forget gate)
        g = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)        (cell candidate)
        o = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)     (output gate)
        c_t = f * c_{t-1} + i * g;   h_t = o * tanh(c_t)

    ``output, (h_n, c_n) = lstm(x, (h_0, c_0))`` (the state may be omitted: zeros); shapes and
    parameters in the module docstring (G = 4).
    """
    gates, states = 4, 2

    def _direction(self, rows, shape, weights, init_states, reverse):
        w_ih, w_hh, *b = weights
        xg = self._projection(rows, shape, w_ih, b[0] + b[1] if b else None)
        hc = lstm_sequence(xg, init_states[0], init_states[1], w_hh, reverse)
        last = 0 if reverse else -1
        return hc[0], [hc[0, last], hc[1, last]]


class GRU(RNNBase):
    """Gated recurrent unit, PyTorch's ``nn.GRU``. At each step of each layer, with gate rows
    r, z, n of the weights:

        r = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)     (reset gate)
        z = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)     (update gate)
        n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))
        h_t = (1 - z) * n + z * h_{t-1}

    ``output, h_n = gru(x, h_0=None)``; shapes and parameters in the module docstring (G = 3).
    """
    gates = 3

    def _direction(self, rows, shape, weights, init_states, reverse):
        w_ih, w_hh, *b = weights
        xg = self._projection(rows, shape, w_ih, b[0] if b else None)
        out = gru_sequence(xg, init_states[0], w_hh, b[1] if b else None, reverse)
        return out, [out[0 if reverse else -1]]


# ---- cells: one time step ----------------------------------------------------------------------

class RNNCellBase(Module):
    """What the cells share: ``weight_ih`` (G*H, input_size), ``weight_hh`` (G*H, H),
    ``bias_ih`` and ``bias_hh`` (G*H,) or None, all U(-1/sqrt(H), 1/sqrt(H)); the checks.
    Input (N, input_size) or unbatched (input_size,); states (N, H) or (H,), default zeros."""
    gates, states = 1, 1

    def __init__(self, input_size, hidden_size, bias=True):
        super().__init__()
        name = type(self).__name__
        self.input_size = _int(name, "input_size", input_size)
        self.hidden_size = _int(name, "hidden_size", hidden_size)
        self.bias = bool(bias)
        rows = self.gates * self.hidden_size
        self.weight_ih = Parameter(np.zeros((rows, self.input_size), np.float32))
        self.weight_hh = Parameter(np.zeros((rows, self.hidden_size), np.float32))
        self.bias_ih = Parameter(np.zeros(rows, np.float32)) if bias else None
        self.bias_hh = Parameter(np.zeros(rows, np.float32)) if bias else None
        self.reset_parameters()

    reset_parameters = RNNBase.reset_parameters

    def _check(self, x, hx):
        """(x as (N, input_size), the states as a list, whether x was batched); or an error
        naming the expected and the given shape, before anything is computed."""
        name, w = type(self).__name__, self.weight_ih
        _check_like(name, "input", x, w)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: expected input of shape (N, {self.input_size}) or "
                             f"({self.input_size},) unbatched, got {x.shape}")
        batched = x.ndim == 2
        expected = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
        hx = _check_states(name, hx, self.states, expected, w)
        if hx is None:
            hx = [zeros(*expected, dtype=x.dtype, device=x.device)] * self.states
        if not batched:
            x, hx = x.unsqueeze(0), [s.unsqueeze(0) for s in hx]
        return x, hx, batched

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s


class RNNCell(RNNCellBase):
    """h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu), PyTorch's ``nn.RNNCell``:
    ``h' = cell(x, h=None)``."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh"):
        self.nonlinearity = _nonlinearity("RNNCell", nonlinearity)
        super().__init__(input_size, hidden_size, bias)

    def forward(self, input, hx=None):  # noqa: A002 (PyTorch's name)
        x, (h,), batched = self._check(input, hx)
        a = F.linear(x, self.weight_ih, self.bias_ih) + F.linear(h, self.weight_hh, self.bias_hh)
        h = a.tanh() if self.nonlinearity == "tanh" else a.relu()
        return h if batched else h.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step, PyTorch's ``nn.LSTMCell``: ``(h', c') = cell(x, (h, c))`` (the state may
    be omitted: zeros). With gate rows i, f, g, o of the weights:

        [a_i | a_f | a_g | a_o] = x W_ih^T + b_ih + h W_hh^T + b_hh
        i, f, o = sigmoid(a_i, a_f, a_o);  g = tanh(a_g);  c' = f * c + i * g;  h' = o * tanh(c')

    One fused node (``ops.recurrent.LSTMCell``) after the input projection.
    """
    gates, states = 4, 2

    def forward(self, input, hx=None):  # noqa: A002 (PyTorch's name)
        x, (h, c), batched = self._check(input, hx)
        bias = self.bias_ih + self.bias_hh if self.bias else None
        h, c = lstm_cell(F.linear(x, self.weight_ih, bias), h, c, self.weight_hh)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    """One GRU step, PyTorch's ``nn.GRUCell``: ``h' = cell(x, h=None)``. With gate rows r, z, n:

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr);  z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn));  h' = (1 - z) * n + z * h

    One fused node (``ops.recurrent.GRUCell``) after the input projection.
    """
    gates = 3

    def forward(self, input, hx=None):  # noqa: A002 (PyTorch's name)
        x, (h,), batched = self._check(input, hx)
        h = gru_cell(F.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh)
        return h if batched else h.squeeze(0)


__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]
