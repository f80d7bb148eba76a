"""NumPy references for the recurrent tests: the equations of PyTorch's documentation, step by
step in plain loops (float64), and helpers to draw small layers and their inputs.

``import rnn_refs`` works from the tests in tests/nn (pytest puts a test file's folder on
sys.path, as for ``refs``).
"""
import numpy as np

import tinygrad_edu as tg
from tinygrad_edu import nn

KINDS = {"RNN": (1, 1), "RNN_relu": (1, 1), "LSTM": (4, 2), "GRU": (3, 1)}  # (gates, states)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def cell(kind, x, state, w_ih, w_hh, b_ih, b_hh):
    """One step: x (N, in), state a tuple (h,) or (h, c) of (N, H) -> the new state."""
    if kind == "LSTM":
        h, c = state
        i, f, g, o = np.split(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh, 4, axis=1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        return sigmoid(o) * np.tanh(c), c
    h, = state
    if kind == "GRU":
        x_r, x_z, x_n = np.split(x @ w_ih.T + b_ih, 3, axis=1)
        h_r, h_z, h_n = np.split(h @ w_hh.T + b_hh, 3, axis=1)
        r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
        n = np.tanh(x_n + r * h_n)
        return ((1 - z) * n + z * h,)
    a = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    return (np.tanh(a) if kind == "RNN" else np.maximum(a, 0),)


def layer(kind, x, states, weights, num_layers, bidirectional):
    """A whole layer on time-major x (L, N, in) with states [(layers*D, N, H), ...] and a dict
    of weights by PyTorch's names (missing biases count as zeros) -> (output, [h_n(, c_n)])."""
    L, N = x.shape[:2]
    D = 2 if bidirectional else 1
    finals = []
    for k in range(num_layers):
        outs = []
        for d in range(D):
            suffix = "_reverse" if d else ""
            w_ih, w_hh = weights[f"weight_ih_l{k}{suffix}"], weights[f"weight_hh_l{k}{suffix}"]
            zero = np.zeros(w_ih.shape[0])
            b_ih = weights.get(f"bias_ih_l{k}{suffix}", zero)
            b_hh = weights.get(f"bias_hh_l{k}{suffix}", zero)
            state = tuple(s[k * D + d] for s in states)
            out = np.zeros((L, N, w_hh.shape[1]))
            for t in (reversed(range(L)) if d else range(L)):
                state = cell(kind, x[t], state, w_ih, w_hh, b_ih, b_hh)
                out[t] = state[0]
            outs.append(out)
            finals.append(state)
        x = np.concatenate(outs, axis=2)
    return x, [np.stack([f[i] for f in finals]) for i in range(len(states))]


def make_layer(kind, input_size, hidden_size, dtype=np.float64, seed=0, **kwargs):
    """nn.RNN/LSTM/GRU (``kind`` "RNN_relu": nonlinearity relu) with U(-1, 1) weights (larger
    than the default init, so every gate matters) of ``dtype``."""
    tg.manual_seed(seed)
    if kind == "RNN_relu":
        kwargs["nonlinearity"] = "relu"
    m = getattr(nn, kind.split("_")[0])(input_size, hidden_size, **kwargs)
    rng = np.random.default_rng(seed)
    m.load_state_dict({k: rng.uniform(-1, 1, v.shape) for k, v in m.state_dict().items()})
    for p in m.parameters():
        p.data = p.data.astype(dtype)
    return m


def weights_of(module):
    return {name: p.data.astype(np.float64) for name, p in module.named_parameters()}
