"""Regenerate the pictures of docs/internals.md and docs/kernels.md into docs/img/.

    .venv/bin/python scripts/make_figures.py            # writes docs/img/tape.svg, im2col.png
    .venv/bin/python scripts/make_figures.py OUT_DIR    # somewhere else

* ``tape.svg``: the tape of the running example of docs/internals.md, exactly as
  ``tg.viz.draw`` renders it (``tg.viz.to_dot``, then Graphviz's ``dot``).
* ``im2col.png``: which input pixel lands in which row and column of ``cols``, computed by the
  real kernel (``cpu_kernels.im2col``) and drawn with Matplotlib.

Both are deterministic: the same code gives the same bytes (no dates or version stamps beyond
Graphviz's own comment). Without Graphviz the tape is skipped with a message saying how to
install it, the im2col figure is still made, and the exit status is 1.
"""
import os
import pathlib
import sys

import numpy as np

import tinygrad_edu as tg
from tinygrad_edu.ops import cpu_kernels

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img"


# ---- the tape ----------------------------------------------------------------------------------
def tape_example():
    """The running example of docs/internals.md: loss = sum(tanh(x @ W + b) ** 2)."""
    rng = np.random.default_rng(0)
    x = tg.Tensor(rng.normal(size=(4, 3)).astype(np.float32), name="x")
    W = tg.Tensor(rng.normal(size=(3, 2)).astype(np.float32), requires_grad=True, name="W")
    b = tg.Tensor(np.zeros(2, np.float32), requires_grad=True, name="b")
    return ((x @ W + b).tanh() ** 2).sum()


def make_tape(path):
    """Render the example's tape with ``tg.viz.draw`` (raises RuntimeError without Graphviz).
    The picture goes to a temporary file first, so a failure leaves ``path`` as it was."""
    path = pathlib.Path(path)
    tmp = path.with_name(".tmp-" + path.name)
    try:
        tg.viz.draw(tape_example(), str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# ---- im2col ------------------------------------------------------------------------------------
# the example: one image, C=2 channels of 3x3, a 2x2 kernel, stride 1, no padding
C, H, W_, KH, KW = 2, 3, 3, 2, 2
COLOURS = ["#f4a261", "#8ecae6", "#90be6d", "#e9a6d8"]  # one per patch = one per row of cols


def im2col_example():
    """(x, cols): x holds 0..17 (channel 0: 0..8, channel 1: 9..17), so each entry of cols
    names the pixel it was copied from."""
    x = np.arange(C * H * W_, dtype=np.float64).reshape(1, C, H, W_)
    return x, cpu_kernels.im2col(x, KH, KW, 1, 1, 0, 0)


def _cell(ax, x0, y0, text, colour, bold=False):
    from matplotlib.patches import Rectangle
    ax.add_patch(Rectangle((x0, y0), 1, 1, facecolor=colour, edgecolor="#555555", lw=0.8))
    ax.text(x0 + 0.5, y0 + 0.5, text, ha="center", va="center", fontsize=9,
            fontweight="bold" if bold else "normal")


def make_im2col(path):
    """Left: the input once per output position (oy, ox), its patch coloured; right: ``cols``,
    each row in the colour of its patch, columns ordered (c, i, j)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x, cols = im2col_example()
    oh, ow = H - KH + 1, W_ - KW + 1
    fig = Figure(figsize=(9.0, 6.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    gap, strip = 0.8, H + 1.3                    # between the two channels; one strip per row
    top = oh * ow * strip
    mx, my = 11.0, top / 2 + cols.shape[0] / 2   # where the matrix cols starts (top left)
    for r in range(cols.shape[0]):
        oy, ox = divmod(r, ow)
        y_top = top - r * strip - 0.9
        ax.text(0, y_top + 0.35, f"patch (oy, ox) = ({oy}, {ox})", fontsize=9, va="bottom")
        for c in range(C):
            x0 = c * (W_ + gap)
            for i in range(H):
                for j in range(W_):
                    inside = oy <= i < oy + KH and ox <= j < ox + KW
                    _cell(ax, x0 + j, y_top - 1 - i, f"{x[0, c, i, j]:g}",
                          COLOURS[r] if inside else "#f5f5f5", bold=inside)
            if r == 0:
                ax.text(x0 + W_ / 2, top + 0.5, f"x[0, {c}]", ha="center", fontsize=10)
        ax.annotate("", xy=(mx - 0.2, my - r - 0.5), xytext=(2 * W_ + gap + 0.3, y_top - H / 2),
                    arrowprops=dict(arrowstyle="->", color="#555555", lw=1))
        for k in range(cols.shape[1]):
            _cell(ax, mx + k, my - r - 1, f"{cols[r, k]:g}", COLOURS[r])
        ax.text(mx + cols.shape[1] + 0.2, my - r - 0.5, f"row {r}", va="center", fontsize=9)
    for k in range(cols.shape[1]):             # column headers: (c, i, j), the last one fastest
        c, rest = divmod(k, KH * KW)
        i, j = divmod(rest, KW)
        ax.text(mx + k + 0.5, my + 0.15, f"{c},{i},{j}", ha="center", va="bottom", fontsize=8)
    for c in range(C):
        ax.text(mx + (c + 0.5) * KH * KW, my + 0.75, f"channel {c}", ha="center", fontsize=9)
    ax.text(mx + cols.shape[1] / 2, my + 1.6, "cols: row (n, oy, ox), column (c, i, j)",
            ha="center", fontsize=10)
    ax.text(mx + cols.shape[1] / 2, my - cols.shape[0] - 0.7,
            "cols[(n, oy, ox), (c, i, j)]\n= x[n, c, oy*sh - ph + i, ox*sw - pw + j]\n"
            "here: 2x2 kernel, stride 1, no padding", ha="center", va="top", fontsize=9)
    ax.set_xlim(-0.3, mx + cols.shape[1] + 1.6)
    ax.set_ylim(-0.6, top + 1.4)
    ax.set_aspect("equal")
    ax.axis("off")
    # no "Software" stamp (it names Matplotlib's version): the same code gives the same bytes
    fig.savefig(path, metadata={"Software": None}, bbox_inches="tight", pad_inches=0.1)
    return pathlib.Path(path)


def main(argv=None):
    """Make both figures in ``argv[0]`` (default docs/img/); 1 if one could not be made."""
    argv = sys.argv[1:] if argv is None else argv
    out = pathlib.Path(argv[0]) if argv else OUT
    out.mkdir(parents=True, exist_ok=True)
    status = 0
    print(make_im2col(out / "im2col.png"))
    try:
        print(make_tape(out / "tape.svg"))
    except RuntimeError as e:  # tg.viz.draw's message says how to install Graphviz
        print(f"make_figures: {out / 'tape.svg'} was not made: {e}", file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
