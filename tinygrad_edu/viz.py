"""Seeing the tape: a Theano-style pretty printer, Graphviz pictures and the backward trace.

    y = (x @ W1 + b1).sigmoid() @ W2 + b2
    print(tg.pp(y))                  # sigmoid(x @ W1 + b1) @ W2 + b2
    dot = tg.viz.to_dot(y)           # Graphviz source: tensors as boxes, ops as ellipses
    tg.viz.draw(y, "graph.svg")      # needs Graphviz's `dot` program
    loss.backward(trace=True)        # prints each step of backpropagation
    with tg.viz.trace_backward():    # the same for every backward pass (and tg.grad) inside
        loss.backward()

Everything here only *reads* the tape: the output's ``_ctx``, its ``inputs``, their ``_ctx``...
All walks are iterative (no recursion limit) and visit a shared subexpression once. The backward
trace and anomaly detection (``tg.detect_anomaly()``) live in ``debug.py``, as hooks of the engine.
"""
import os
import re
import shutil
import subprocess

import numpy as np

from .debug import _norm, trace_backward, trace_line  # noqa: F401 (part of tg.viz)
from .tensor import _key, graph_order

__all__ = ["pp", "to_dot", "draw", "trace_backward", "trace_line"]


def _nodes(root):
    """Every tensor reachable from ``root`` through the tape, each once, inputs before outputs."""
    return graph_order([root], grad_only=False)


def _leaf_name(t):
    """How a tensor that is not expanded prints: its name, its value (0-d) or its shape."""
    if t.name:
        return t.name
    if t.ndim == 0:
        return f"{t.item():g}"
    return "Tensor(" + "x".join(map(str, t.shape)) + ")"


def _op_name(ctx):
    """The op's class name in snake case: SoftmaxCrossEntropy -> softmax_cross_entropy."""
    name = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", type(ctx).__name__)
    return name.lower()


def _axes(axes, ndim):
    """``axis=...`` of a reduction, or nothing when it reduces every axis (the default)."""
    if axes is None:
        return []
    axes = tuple(axes) if isinstance(axes, (tuple, list)) else (axes,)
    if sorted(a % max(ndim, 1) for a in axes) == list(range(ndim)):
        return []
    return [f"axis={axes[0]}" if len(axes) == 1 else f"axis={axes}"]


def _op_params(ctx, y):
    """The non-tensor arguments worth showing, as strings: ``axis=1``, ``(3, 2)``..."""
    op, saved = type(ctx).__name__, getattr(ctx, "__dict__", {})
    if op in ("Reshape", "BroadcastTo", "SumTo"):   # the target shape is the output's shape
        return [str(tuple(y.shape))]
    if op == "Cast":
        return [str(y.dtype)]
    if op == "Clip":
        return [f"{saved.get('lo')}", f"{saved.get('hi')}"]
    if "axes" in saved:
        return _axes(saved["axes"], ctx.inputs[0].ndim if ctx.inputs else 0)
    if "axis" in saved:
        return [f"axis={saved['axis']}"]
    if "dims" in saved:
        return [f"dims={saved['dims']}"]
    return []


# ---- pretty printer ---------------------------------------------------------------------------
# Python's precedence levels, so that the printed expression means what the tape computed:
# an atom (name, call, x[i], x.T) > ** > unary minus > * / @ > + -.
ATOM, POWER, UNARY, PRODUCT, SUM = 9, 5, 4, 3, 2
_INFIX = {"Add": ("+", SUM), "Sub": ("-", SUM), "Mul": ("*", PRODUCT), "Div": ("/", PRODUCT),
          "MatMul": ("@", PRODUCT), "Pow": ("**", POWER)}


def _wrap(arg, at_least):
    """An argument's text, in parentheses if it binds less tightly than ``at_least``."""
    text, prec = arg
    return text if prec >= at_least else f"({text})"


def _index_text(index):
    """``x[...]``'s index as Python would write it (integer arrays as ``[...]``)."""
    def one(p):
        if p is Ellipsis:
            return "..."
        if p is None:
            return "None"
        if isinstance(p, slice):
            text = ("" if p.start is None else str(p.start)) + ":" + \
                   ("" if p.stop is None else str(p.stop))
            return text + ("" if p.step is None else f":{p.step}")
        if isinstance(p, (int, np.integer)):
            return str(int(p))
        return "[...]"
    return ", ".join(one(p) for p in (index if isinstance(index, tuple) else (index,)))


def _expression(ctx, y, args):
    """(text, precedence) of one op applied to its arguments' (text, precedence)."""
    op = type(ctx).__name__
    if op in _INFIX and len(args) == 2:
        sym, prec = _INFIX[op]
        if op == "Pow":   # right-associative: a ** b ** c is a ** (b ** c); a ** -b is fine
            return f"{_wrap(args[0], ATOM)} ** {_wrap(args[1], UNARY)}", POWER
        return f"{_wrap(args[0], prec)} {sym} {_wrap(args[1], prec + 1)}", prec
    if op == "Neg":
        return "-" + _wrap(args[0], UNARY), UNARY
    if op == "Linear":    # nn.functional.linear: x @ w.T + b in one node
        text = f"{_wrap(args[0], PRODUCT)} @ {_wrap(args[1], ATOM)}.T"
        return (f"{text} + {_wrap(args[2], SUM + 1)}", SUM) if len(args) == 3 else (text, PRODUCT)
    if op == "GetItem":
        return f"{_wrap(args[0], ATOM)}[{_index_text(ctx.index)}]", ATOM
    if op == "Permute" and len(ctx.dims) >= 2:
        n = len(ctx.dims)
        if tuple(ctx.dims) == tuple(range(n - 1, -1, -1)):
            return f"{_wrap(args[0], ATOM)}.T", ATOM
        if tuple(ctx.dims) == tuple(range(n - 2)) + (n - 1, n - 2):
            return f"{_wrap(args[0], ATOM)}.mT", ATOM
    inner = ", ".join([text for text, _ in args] + _op_params(ctx, y))
    return f"{_op_name(ctx)}({inner})", ATOM


def pp(tensor):
    """The expression that produced ``tensor``, e.g. ``sigmoid(x @ W1 + b1) @ W2 + b2``.

    Named tensors (``Tensor(..., name="W1")``; module parameters are named after their path,
    ``0.weight`` or ``fc1.weight``) print by name, even when they were computed: naming an
    intermediate ``h.name = "h"`` shortens the printout. Unnamed leaves print as their value
    (0-d) or shape, e.g. ``Tensor(2x3)``. Only what is on the tape shows: an op on tensors that
    require no grad (or under ``no_grad``) records nothing, so its result prints as a leaf. A
    node freed by ``backward()`` prints as ``op(<freed>)``. A shared subexpression prints
    wherever it is used (the picture of ``to_dot`` draws it once).
    """
    text = {}  # _key(tensor) -> (expression, precedence)
    for t in _nodes(tensor):
        ctx = t._ctx
        if ctx is None or (t.name and t is not tensor):
            name = _leaf_name(t)
            text[_key(t)] = (name, UNARY if name.startswith("-") else ATOM)
        elif ctx.inputs is None:
            text[_key(t)] = (f"{_op_name(ctx)}(<freed>)", ATOM)
        else:
            text[_key(t)] = _expression(ctx, t, [text[_key(x)] for x in ctx.inputs])
    return text[_key(tensor)][0]


# ---- Graphviz ---------------------------------------------------------------------------------
# What each kind of tensor box looks like. The kind is also written in the box, so a picture
# printed in black and white still says which is which.
STYLES = {
    "output": 'style=filled, fillcolor="#c8f0c8"',                          # the tensor drawn
    "parameter": 'style="filled,bold", fillcolor="#9cc3ff", penwidth=2',     # an nn.Parameter
    "leaf": 'style=filled, fillcolor="#dcebff"',          # another leaf that requires grad
    "constant": 'style=filled, fillcolor="#eeeeee"',      # data: a leaf that requires no grad
    "intermediate": 'style=solid',                        # computed by an op
}


def _kind(t, root):
    from .nn.module import Parameter   # here, not at the top: nn imports much more than viz needs
    if t is root:
        return "output"
    if t._ctx is not None:
        return "intermediate"
    if isinstance(t, Parameter):
        return "parameter"
    return "leaf" if t.requires_grad else "constant"


def _escape(text):
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


def _tensor_label(t, kind, show_grad):
    lines = [_escape(t.name)] if t.name else []
    if t._ctx is None and not t.name and t.ndim == 0:
        lines.append(_leaf_name(t))               # a scalar constant: show its value
    lines.append(f"{tuple(t.shape)} {t.dtype}")
    if kind in ("parameter", "leaf", "constant"):
        lines.append(kind)
    if show_grad and t.grad is not None:
        lines.append(f"grad |g|={_norm(t.grad):.4g}")
    return "\\n".join(lines)


def to_dot(tensor, show_grad=False):
    """Graphviz DOT source for the tape that produced ``tensor``.

    One box per tensor, with its name (if any), shape and dtype; one ellipse per op, with its
    parameters (``axis=1``...). Arrows follow the forward pass, input -> op -> output, and are
    numbered by input position where an op has several inputs. The boxes' colours (``STYLES``)
    and a word in each leaf's box tell parameters (``nn.Parameter``), other leaves that require
    grad, constants and the output apart. A tensor used twice is drawn once, with two arrows.

    With ``show_grad=True`` every tensor that has a ``.grad`` (the leaves, after ``backward``)
    shows that gradient's norm. ``backward()`` frees the tape: call it with
    ``retain_graph=True`` to draw the whole graph afterwards; freed ops say "(freed)".
    """
    ids = {}  # ("t", _key(tensor)) or id(node) -> "t3" / "f2": short Graphviz names
    lines = ["digraph tape {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    for t in _nodes(tensor):
        tid = ids["t", _key(t)] = f"t{len(ids)}"
        kind = _kind(t, tensor)
        lines.append(f'  {tid} [shape=box, {STYLES[kind]}, '
                     f'label="{_tensor_label(t, kind, show_grad)}"];')
        ctx = t._ctx
        if ctx is None:
            continue
        fid = ids[id(ctx)] = f"f{len(ids)}"
        label = [type(ctx).__name__]
        label += ["(freed)"] if ctx.inputs is None else [_escape(p) for p in _op_params(ctx, t)]
        op_label = "\\n".join(label)
        lines.append(f'  {fid} [shape=ellipse, label="{op_label}"];')
        for i, x in enumerate(ctx.inputs or ()):
            number = f' [label="{i}", fontsize=8]' if len(ctx.inputs) > 1 else ""
            lines.append(f"  {ids['t', _key(x)]} -> {fid}{number};")
        lines.append(f"  {fid} -> {tid};")
    lines.append("}")
    return "\n".join(lines) + "\n"


_INSTALL_HINT = ("apt-get install graphviz (Debian/Ubuntu), brew install graphviz (macOS), "
                 "conda install graphviz, or https://graphviz.org/download/")


def draw(tensor, path, show_grad=False):
    """Render the tape of ``tensor`` to ``path`` with Graphviz and return ``path``.

    The format comes from the extension (``.svg``, ``.png``, ``.pdf``...). A ``.dot`` or ``.gv``
    path just receives the DOT source, which needs no Graphviz at all.
    """
    source = to_dot(tensor, show_grad)
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "svg"
    if fmt in ("dot", "gv"):
        with open(path, "w") as f:
            f.write(source)
        return path
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError("tg.viz.draw() needs Graphviz's `dot` program, which is not on your "
                           f"PATH. Install Graphviz: {_INSTALL_HINT}. Without it, "
                           "tg.viz.to_dot() gives the DOT source, and draw(t, 'graph.dot') "
                           "saves it (paste it into any online Graphviz viewer).")
    done = subprocess.run([dot, f"-T{fmt}", "-o", path], input=source.encode(),
                          capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"Graphviz `dot -T{fmt}` failed (exit code {done.returncode}): "
                           + done.stderr.decode(errors="replace").strip())
    return path
