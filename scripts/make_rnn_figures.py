"""Regenerate the pictures of docs/rnn.md into docs/img/.

    .venv/bin/python scripts/make_rnn_figures.py            # rnn_unrolled.svg, rnn_gradients.png
    .venv/bin/python scripts/make_rnn_figures.py OUT_DIR    # somewhere else

* ``rnn_unrolled.svg``: the tape of a 3-step tanh RNN written out with tensor ops, exactly as
  ``tg.viz.draw`` renders it (Graphviz's ``dot``).
* ``rnn_gradients.png``: how the gradient of a loss on the last hidden state shrinks or grows
  on its way back through 100 steps: ``||dL/dh_t||`` for every t, measured with ``tg.grad`` on
  ``nn.RNNCell`` and ``nn.LSTMCell`` (``gradient_norms``), drawn with Matplotlib.

Both are deterministic (fixed seeds, no version stamps). Without Graphviz the tape is skipped
with a message saying how to install it, the other figure is still made, and the exit status
is 1.
"""
import os
import pathlib
import sys

import numpy as np

import tinygrad_edu as tg
from tinygrad_edu import nn

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img"


# ---- the unrolled graph ------------------------------------------------------------------------
def unrolled_example(steps=3):
    """h_t = tanh(x_t @ W_xh + h_{t-1} @ W_hh + b) for t = 1..steps, from h_0 = 0; returns h_3.
    A batch of 2, 3 inputs, 4 hidden units; every tensor is named as in docs/rnn.md."""
    rng = np.random.default_rng(0)
    W_xh = tg.Tensor(rng.normal(0, 0.5, (3, 4)).astype(np.float32), requires_grad=True,
                     name="W_xh")
    W_hh = tg.Tensor(rng.normal(0, 0.5, (4, 4)).astype(np.float32), requires_grad=True,
                     name="W_hh")
    b = tg.Tensor(np.zeros(4, np.float32), requires_grad=True, name="b")
    h = tg.Tensor(np.zeros((2, 4), np.float32), name="h0")
    for t in range(1, steps + 1):
        x = tg.Tensor(rng.normal(size=(2, 3)).astype(np.float32), name=f"x{t}")
        h = (x @ W_xh + h @ W_hh + b).tanh()
        h.name = f"h{t}"
    return h


def make_unrolled(path):
    """Render the example's tape with ``tg.viz.draw`` (raises RuntimeError without Graphviz),
    through a temporary file, so a failure leaves ``path`` as it was."""
    path = pathlib.Path(path)
    tmp = path.with_name(".tmp-" + path.name)
    try:
        tg.viz.draw(unrolled_example(), str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# ---- vanishing and exploding gradients ---------------------------------------------------------
CURVES = {   # label -> (cell, how its initial weights are changed)
    "tanh RNN, PyTorch's initialisation": ("rnn", None),
    "tanh RNN, W_hh x 3": ("rnn", "scale"),
    "LSTM, PyTorch's initialisation": ("lstm", None),
    "LSTM, forget-gate bias 1": ("lstm", "forget1"),
}


def gradient_norms(cell="rnn", change=None, steps=100, batch=16, inputs=8, hidden=64, seed=0):
    """``||dL/dh_t||`` for t = 1..steps (an array, t = steps last), where L = sum(h_T * v) for
    a fixed random v: the gradient of a loss on the last state, with respect to every earlier
    state, through the recurrence. ``change``: None, "scale" (W_hh times 3) or "forget1" (the
    LSTM's forget-gate biases set to 1, the others kept)."""
    tg.manual_seed(seed)
    rng = np.random.default_rng(seed)
    layer = nn.RNNCell(inputs, hidden) if cell == "rnn" else nn.LSTMCell(inputs, hidden)
    # in float64, so that the smallest gradients (1e-40 and below) do not underflow to 0
    weights = {name: p.numpy().astype(np.float64) for name, p in layer.named_parameters()}
    if change == "scale":
        weights["weight_hh"] *= 3.0
    elif change == "forget1":     # gates i, f, g, o: rows H..2H of the biases are f's
        weights["bias_ih"][hidden:2 * hidden] = 1.0
        weights["bias_hh"][hidden:2 * hidden] = 0.0
    for name, w in weights.items():
        setattr(layer, name, nn.Parameter(w))
    xs = tg.from_numpy(rng.standard_normal((steps, batch, inputs)))
    v = tg.from_numpy(rng.standard_normal((batch, hidden)))
    h0 = tg.zeros(batch, hidden, dtype="float64")
    state, hs = ((h0, h0) if cell == "lstm" else h0), []
    for t in range(steps):
        state = layer(xs[t], state)
        hs.append(state[0] if cell == "lstm" else state)
    grads = tg.grad((hs[-1] * v).sum(), hs)
    return np.array([float(np.linalg.norm(g.numpy())) for g in grads])


def make_gradients(path, steps=100):
    """One curve per entry of CURVES: ``||dL/dh_t|| / ||dL/dh_T||`` against T - t, log scale."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    back = np.arange(steps)                       # steps back from the last state
    for label, (cell, change) in CURVES.items():
        norms = gradient_norms(cell, change, steps)[::-1]
        ax.semilogy(back, norms / norms[0], label=label, lw=1.8,
                    ls="--" if change == "scale" else "-")
    ax.set(xlabel="time steps back from the last state (T - t)",
           ylabel="||dL/dh_t|| / ||dL/dh_T||",
           title=f"Gradient of a loss on h_T, back through {steps} steps (64 units, at init)")
    ax.set_ylim(1e-30, 1e8)
    ax.grid(alpha=0.3, which="major")
    ax.legend(loc="lower left", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    return pathlib.Path(path)


def main(argv=None):
    """Make both figures in ``argv[0]`` (default docs/img/); 1 if one could not be made."""
    argv = sys.argv[1:] if argv is None else argv
    out = pathlib.Path(argv[0]) if argv else OUT
    out.mkdir(parents=True, exist_ok=True)
    status = 0
    print(make_gradients(out / "rnn_gradients.png"))
    try:
        print(make_unrolled(out / "rnn_unrolled.svg"))
    except RuntimeError as e:  # tg.viz.draw's message says how to install Graphviz
        print(f"make_rnn_figures: {out / 'rnn_unrolled.svg'} was not made: {e}", file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
