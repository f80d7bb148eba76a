"""Seeing the tape: Graphviz pictures, a Theano-style pretty printer and the backward trace.

    y = (x @ W1 + b1).sigmoid() @ W2 + b2
    print(tg.pp(y))                  # sigmoid(x @ W1 + b1) @ W2 + b2
    dot = tg.viz.to_dot(y)           # Graphviz source: tensors as boxes, ops as ellipses
    tg.viz.draw(y, "graph.svg")      # needs Graphviz's `dot` program
    loss.backward(trace=True)        # prints each step of backpropagation

All walks are iterative (no recursion limit) and visit a shared subexpression once.
"""
import os
import shutil
import subprocess

import numpy as np

from .backend import to_device


def _nodes(root):
    """Every tensor reachable from ``root`` through the tape, inputs before outputs."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        ctx = t._ctx
        if ctx is not None and ctx.inputs is not None:
            stack.extend((x, False) for x in reversed(ctx.inputs) if id(x) not in seen)
    return order


def _norm(t):
    return float(np.sqrt((to_device(t.data, "cpu").astype(np.float64) ** 2).sum()))


def _leaf_name(t):
    if t.name:
        return t.name
    if t.ndim == 0:
        return f"{t.item():g}"
    return "Tensor(" + "x".join(map(str, t.shape)) + ")"


# ---- pretty printer ---------------------------------------------------------------------------
_INFIX = {"Add": ("+", 1), "Sub": ("-", 1), "Mul": ("*", 2), "Div": ("/", 2), "MatMul": ("@", 2),
          "Pow": ("**", 4)}


def pp(tensor):
    """The expression that produced ``tensor``, e.g. ``sigmoid(x @ W1 + b1) @ W2 + b2``.
    Named tensors (``Tensor(..., name="W1")``, module parameters) print by name."""
    text = {}  # id(tensor) -> (expression, precedence)
    for t in _nodes(tensor):
        ctx = t._ctx
        if ctx is None or ctx.inputs is None or (t.name and t is not tensor):
            text[id(t)] = (_leaf_name(t), 9)
            continue
        op, args = type(ctx).__name__, [text[id(x)] for x in ctx.inputs]
        if op in _INFIX and len(args) == 2:
            sym, prec = _INFIX[op]
            left = args[0][0] if args[0][1] >= prec else f"({args[0][0]})"
            right = args[1][0] if args[1][1] > prec else f"({args[1][0]})"
            text[id(t)] = (f"{left} {sym} {right}", prec)
        elif op == "Neg":
            text[id(t)] = ("-" + (args[0][0] if args[0][1] >= 3 else f"({args[0][0]})"), 3)
        elif op == "GetItem":
            text[id(t)] = (f"{args[0][0] if args[0][1] >= 9 else '(' + args[0][0] + ')'}[...]", 9)
        else:
            params = _params(ctx)
            inner = ", ".join([a for a, _ in args] + params)
            text[id(t)] = (f"{op.lower()}({inner})", 9)
    return text[id(tensor)][0]


def _params(ctx):
    shown = {"axes": "axis", "shape": "shape", "dims": "dims"}
    return [f"{label}={getattr(ctx, key)}" for key, label in shown.items()
            if key in getattr(ctx, "__dict__", {})]


# ---- Graphviz ---------------------------------------------------------------------------------
def _label(t, show_grad):
    head = t.name or ""
    body = f"{tuple(t.shape)} {t.dtype}"
    if show_grad and t.grad is not None:
        body += f"\\ngrad norm {_norm(t.grad):.4g}"
    return f"{head}\\n{body}" if head else body


def to_dot(tensor, show_grad=False):
    """Graphviz DOT source for the tape that produced ``tensor``.

    Tensors are boxes (parameters and other leaves that require grad in blue, constants in
    grey, the output in green), ops are ellipses, arrows follow the forward pass. With
    ``show_grad=True`` each tensor that has a ``.grad`` shows its norm (call backward with
    ``retain_graph=True`` to keep the tape for drawing).
    """
    lines = ["digraph tape {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    for t in _nodes(tensor):
        ctx = t._ctx
        if t is tensor:
            style = 'style=filled, fillcolor="#c8f0c8"'
        elif ctx is None and t.requires_grad:
            style = 'style=filled, fillcolor="#cfe3ff"'
        elif ctx is None:
            style = 'style=filled, fillcolor="#eeeeee"'
        else:
            style = 'style=""'
        lines.append(f'  t{id(t)} [shape=box, {style}, label="{_label(t, show_grad)}"];')
        if ctx is not None:
            freed = " (freed)" if ctx.inputs is None else ""
            lines.append(f'  f{id(ctx)} [shape=ellipse, label="{type(ctx).__name__}{freed}"];')
            lines.append(f"  f{id(ctx)} -> t{id(t)};")
            for i, x in enumerate(ctx.inputs or ()):
                lines.append(f'  t{id(x)} -> f{id(ctx)} [label="{i}", fontsize=8];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw(tensor, path, show_grad=False):
    """Render the tape to ``path`` (format from its extension: svg, png, pdf) with Graphviz."""
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError("drawing needs Graphviz's `dot` program, which is not installed: "
                           "apt-get install graphviz (Debian/Ubuntu), brew install graphviz "
                           "(macOS) or conda install graphviz; tg.viz.to_dot() gives the "
                           "DOT source without it")
    fmt = os.path.splitext(path)[1].lstrip(".") or "svg"
    subprocess.run([dot, f"-T{fmt}", "-o", path], input=to_dot(tensor, show_grad).encode(),
                   check=True)
    return path


# ---- backward trace ---------------------------------------------------------------------------
def trace_line(ctx, y, gy, gxs):
    """One line of ``backward(trace=True)``: node, incoming gradient, what goes to each input."""
    sent = []
    for i, (x, gx) in enumerate(zip(ctx.inputs, gxs)):
        who = x.name or (type(x._ctx).__name__ if x._ctx is not None else "leaf")
        if gx is None or not x.requires_grad:
            sent.append(f"{i}:{who} -")
        else:
            sent.append(f"{i}:{who} {tuple(gx.shape)} |g|={_norm(gx):.4g}")
    return (f"{type(ctx).__name__:<14} grad in {str(tuple(gy.shape)):<12} |g|={_norm(gy):<10.4g}"
            f" -> " + ", ".join(sent))
