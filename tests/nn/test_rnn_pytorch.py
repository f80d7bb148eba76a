"""Fidelity to PyTorch: a PyTorch state_dict loads into our recurrent layers and cells, and both
give the same outputs and gradients. The numbers were recorded once from PyTorch 2.13 by
tests/fixtures/make_rnn_fixtures.py (see its docstring for the keys); PyTorch is not needed
here."""
from pathlib import Path

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import nn

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
LAYERS = {"rnn_tanh": lambda: nn.RNN(2, 3, 2, nonlinearity="tanh", **BIDI),
          "rnn_relu": lambda: nn.RNN(2, 3, 2, nonlinearity="relu", **BIDI),
          "lstm": lambda: nn.LSTM(2, 3, 2, **BIDI), "gru": lambda: nn.GRU(2, 3, 2, **BIDI)}
BIDI = dict(bidirectional=True, batch_first=True)
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-6)}


def load(path, prefix=""):
    with np.load(path) as f:
        return {k[len(prefix):]: f[k] for k in f.files if k.startswith(prefix)}


def run(module, d, dtype, outputs):
    """Load the fixture's state_dict, run on its inputs, backprop its loss: (outputs, grads)."""
    module.load_state_dict({k[len("param/"):]: v for k, v in d.items() if k.startswith("param/")})
    if dtype == np.float64:  # load_state_dict rounds to the module's float32; go back to float64
        for name, p in module.named_parameters():
            p.data = d[f"param/{name}"].copy()
    x = tg.tensor(d["x"].astype(dtype), requires_grad=True)
    states = [tg.tensor(d[s].astype(dtype), requires_grad=True) for s in ("h0", "c0") if s in d]
    y = module(x, states[0] if len(states) == 1 else tuple(states))
    if isinstance(y, tuple) and isinstance(y[1], tuple):   # output, (h_n, c_n)
        y = (y[0],) + y[1]
    y = y if isinstance(y, tuple) else (y,)
    loss = sum((t * tg.tensor(d[f"r_{name}"].astype(dtype))).sum() for t, name in zip(y, outputs))
    loss.backward()
    grads = {"grad/x": x.grad, **{f"grad/{s}": t.grad for s, t in zip(("h0", "c0"), states)}}
    grads.update({f"grad/param/{name}": p.grad for name, p in module.named_parameters()})
    return dict(zip(outputs, y)), grads


def compare(got, d, dtype):
    for name, t in got.items():
        assert t.dtype == dtype and t.shape == d[name].shape, name
        np.testing.assert_allclose(t.numpy(), d[name], err_msg=name, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", sorted(LAYERS))
def test_layers_match_pytorch(case, dtype):
    d = load(FIXTURES / f"rnn_{case}.npz")
    module = LAYERS[case]()
    assert list(module.state_dict()) == [k[len("param/"):] for k in d if k.startswith("param/")]
    outputs, grads = run(module, d, dtype, ["out", "h_n", "c_n"] if case == "lstm" else
                         ["out", "h_n"])
    assert len(grads) == len([k for k in d if k.startswith("grad/")])
    compare(outputs, d, dtype)
    compare(grads, d, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cells_match_pytorch(kind, dtype):
    d = load(FIXTURES / "rnn_cells.npz", prefix=f"{kind}/")
    outputs, grads = run(getattr(nn, kind)(2, 3), d, dtype,
                         ["h", "c"] if kind == "LSTMCell" else ["h"])
    compare(outputs, d, dtype)
    compare(grads, d, dtype)
