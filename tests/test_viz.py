"""Seeing the tape: tg.viz.to_dot / draw, tg.pp, the backward trace and anomaly detection."""
import inspect
import os
import re
import warnings

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import nn
from tinygrad_edu.viz import STYLES


def _here():
    """The caller's line number (so a test can say where its next op is created)."""
    return inspect.currentframe().f_back.f_lineno


def _leaf(values, name, requires_grad=True):
    return tg.Tensor(np.array(values, dtype=np.float64), requires_grad=requires_grad, name=name)


def _parse_dot(source):
    """({node id: (shape, attributes, label)}, [(from, to)]) of our DOT output."""
    nodes = {m[0]: (m[1], m[2], m[3].replace("\\n", "\n")) for m in
             re.findall(r'^  (\w+) \[shape=(box|ellipse), ?(.*?),? ?label="(.*)"\];$', source,
                        flags=re.M)}
    edges = re.findall(r"^  (\w+) -> (\w+)", source, flags=re.M)
    return nodes, edges


def _boxes(nodes):
    return {k: v for k, v in nodes.items() if v[0] == "box"}


def _ellipses(nodes):
    return {k: v for k, v in nodes.items() if v[0] == "ellipse"}


def _node_with_label(nodes, first_line):
    found = [k for k, v in nodes.items() if v[2].split("\n")[0] == first_line]
    assert len(found) == 1, f"{len(found)} nodes labelled {first_line!r}"
    return found[0]


# ---- to_dot ---------------------------------------------------------------------------------
def test_dot_has_one_node_per_op_and_tensor_with_edges_shapes_and_dtypes():
    x = tg.Tensor(np.ones((2, 3), dtype=np.float32), name="x")
    W = nn.Parameter(np.ones((3, 4), dtype=np.float32), name="W")
    y = (x @ W).relu().sum(axis=1)
    source = tg.viz.to_dot(y)
    assert source.startswith("digraph") and source.rstrip().endswith("}")
    nodes, edges = _parse_dot(source)
    ops = _ellipses(nodes)
    assert sorted(v[2] for v in ops.values()) == ["MatMul", "Relu", "Sum\naxis=1"]
    assert len(_boxes(nodes)) == 5                           # x, W, x @ W, relu, sum
    assert len(edges) == 2 + 1 + 1 + 3                       # inputs -> ops, ops -> outputs
    assert {a for a, _ in edges} | {b for _, b in edges} <= set(nodes)
    matmul = next(k for k, v in ops.items() if v[2] == "MatMul")
    xid, wid = _node_with_label(nodes, "x"), _node_with_label(nodes, "W")
    assert (xid, matmul) in edges and (wid, matmul) in edges
    assert '[label="0"' in source and '[label="1"' in source  # MatMul's inputs are numbered
    labels = "\n".join(v[2] for v in nodes.values())
    for text in ("(2, 3) float32", "(3, 4) float32", "(2, 4) float32", "(2,) float32"):
        assert text in labels
    (out,) = [k for k, v in nodes.items() if v[2] == "(2,) float32"]     # y, the output
    assert out in {b for _, b in edges} and out not in {a for a, _ in edges}  # arrow in, none out


def test_dot_marks_parameters_leaves_constants_and_output_distinctly():
    W = nn.Parameter(np.ones(2, dtype=np.float32), name="W")
    x = tg.Tensor(np.ones(2, dtype=np.float32), requires_grad=True, name="x")
    c = tg.Tensor(np.ones(2, dtype=np.float32), name="c")
    y = ((W * x) + c).sum()
    nodes, _ = _parse_dot(tg.viz.to_dot(y))
    assert len(set(STYLES.values())) == len(STYLES)
    for name, kind in (("W", "parameter"), ("x", "leaf"), ("c", "constant")):
        shape, attributes, label = nodes[_node_with_label(nodes, name)]
        assert attributes == STYLES[kind] and label.split("\n")[-1] == kind
    styles = sorted(v[1] for v in _boxes(nodes).values())
    assert styles.count(STYLES["output"]) == 1 and styles.count(STYLES["intermediate"]) == 2


@pytest.mark.parametrize("make", [lambda y: y + y * 2, lambda y: y * 2 + y],
                         ids=["y first", "y last"])  # the walk reaches y by both paths
def test_a_shared_subexpression_is_drawn_once(make):
    a, b = _leaf([1.0, 2.0], "a"), _leaf([3.0, 4.0], "b")
    y = a * b
    y.name = "y"
    z = make(y)
    nodes, edges = _parse_dot(tg.viz.to_dot(z))
    yid = _node_with_label(nodes, "y")
    assert len(_boxes(nodes)) == 6 and len(_ellipses(nodes)) == 3   # a, b, y, 2, y*2, z
    assert len([e for e in edges if e[0] == yid]) == 2               # into Mul and into Add
    assert sum(v[2].startswith("2\n") for v in nodes.values()) == 1  # the constant, with value


def test_dot_shows_gradient_norms_only_when_asked():
    a, b = _leaf([3.0, 4.0], "a"), _leaf([1.0, 2.0], "b")
    loss = (a * b).sum()
    loss.backward(retain_graph=True)
    plain, with_grad = tg.viz.to_dot(loss), tg.viz.to_dot(loss, show_grad=True)
    assert "grad" not in plain
    nodes, _ = _parse_dot(with_grad)
    assert nodes[_node_with_label(nodes, "a")][2].endswith(f"grad |g|={np.sqrt(5):.4g}")
    assert nodes[_node_with_label(nodes, "b")][2].endswith("grad |g|=5")
    loss = (a * b).sum()
    loss.backward()                                   # frees the tape: only the output is left
    nodes, edges = _parse_dot(tg.viz.to_dot(loss))
    assert [v[2] for v in _ellipses(nodes).values()] == ["Sum\n(freed)"] and len(edges) == 1


def test_dot_escapes_quotes_in_names():
    x = tg.Tensor([1.0], requires_grad=True, name='say "hi"\\')
    source = tg.viz.to_dot(x * 2)
    assert 'label="say \\"hi\\"\\\\\\n' in source


# ---- draw -----------------------------------------------------------------------------------
def test_draw_without_graphviz_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    y = _leaf([1.0], "x") * 2
    with pytest.raises(RuntimeError) as info:
        tg.viz.draw(y, str(tmp_path / "graph.svg"))
    message = str(info.value)
    assert "Graphviz" in message and "apt-get install graphviz" in message
    assert "brew install graphviz" in message and "to_dot" in message
    assert not (tmp_path / "graph.svg").exists()
    # a .dot path needs no Graphviz: it gets the source
    assert tg.viz.draw(y, str(tmp_path / "graph.dot")) == str(tmp_path / "graph.dot")
    assert (tmp_path / "graph.dot").read_text() == tg.viz.to_dot(y)


@pytest.mark.skipif(os.name != "posix", reason="the fake `dot` is a shell script")
def test_draw_runs_dot_with_the_format_of_the_extension(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dot"   # records its arguments, writes its input (the DOT source) to -o
    fake.write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/args"\ncat > "$3"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ.get("PATH", ""))
    y = (_leaf([1.0, 2.0], "x") * 2).sum()
    out = tmp_path / "graph.png"
    assert tg.viz.draw(y, str(out), show_grad=True) == str(out)
    assert out.read_text() == tg.viz.to_dot(y, show_grad=True)
    assert (bin_dir / "args").read_text().split() == ["-Tpng", "-o", str(out)]
    fake.write_text('#!/bin/sh\necho "syntax error in line 1" >&2\nexit 3\n')
    with pytest.raises(RuntimeError, match="exit code 3.*syntax error in line 1"):
        tg.viz.draw(y, str(out))


# ---- pretty printer -------------------------------------------------------------------------
def test_pp_prints_the_expression_with_names():
    x = tg.Tensor(np.ones((2, 3)), name="x")
    W1, b1 = _leaf(np.ones((3, 4)), "W1"), _leaf(np.zeros(4), "b1")
    W2, b2 = _leaf(np.ones((4, 1)), "W2"), _leaf(np.zeros(1), "b2")
    assert tg.pp((x @ W1 + b1).sigmoid() @ W2 + b2) == "sigmoid(x @ W1 + b1) @ W2 + b2"
    h = (x @ W1 + b1).tanh()
    h.name = "h"                                  # a named intermediate prints by its name
    assert tg.pp(h @ W2) == "h @ W2"
    assert tg.pp(h) == "tanh(x @ W1 + b1)"        # ... except when it is what is printed
    assert tg.pp(tg.Tensor(np.ones((2, 3))) * W1.sum()) == "Tensor(2x3) * sum(W1)"


def test_pp_names_module_parameters_by_their_path():
    x = tg.Tensor(np.ones((2, 3), dtype=np.float32), name="x")
    seq = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 2))
    assert tg.pp(seq(x)) == "sigmoid(x @ 0.weight.T + 0.bias) @ 2.weight.T + 2.bias"

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(3, 4), nn.Linear(4, 2)

        def forward(self, x):
            return self.fc2(self.fc1(x).relu())

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = MLP()

    assert tg.pp(MLP()(x)) == "relu(x @ fc1.weight.T + fc1.bias) @ fc2.weight.T + fc2.bias"
    outer = Outer()
    assert tg.pp(outer.body(x)).startswith("relu(x @ body.fc1.weight.T + body.fc1.bias)")


@pytest.mark.parametrize("make", [
    lambda a, b, c: (a + b) * c, lambda a, b, c: a - (b - c), lambda a, b, c: a - b - c,
    lambda a, b, c: a / (b * c), lambda a, b, c: (a ** b) ** c, lambda a, b, c: a ** b ** c,
    lambda a, b, c: -(a * b) + c, lambda a, b, c: (-a) ** b, lambda a, b, c: -a ** b,
    lambda a, b, c: a * -b - (c + 1), lambda a, b, c: 2 - (a - b) / c,
])
def test_pp_parenthesizes_so_that_python_computes_the_same(make):
    a, b, c = _leaf(1.5, "a"), _leaf(2.0, "b"), _leaf(0.5, "c")
    text = tg.pp(make(a, b, c))
    value = eval(text, {"a": 1.5, "b": 2.0, "c": 0.5})
    assert np.isclose(value, make(a, b, c).item()), text
    assert "((" not in text


def test_pp_shows_op_parameters():
    x = _leaf(np.ones((2, 3)), "x")
    assert tg.pp(x.sum(axis=1)) == "sum(x, axis=1)"
    assert tg.pp(x.mean()) == "mean(x)"                        # all axes: the default
    assert tg.pp(x.reshape(3, 2)) == "reshape(x, (3, 2))"
    assert tg.pp(x[0, 1:]) == "x[0, 1:]"
    assert tg.pp(x.T * 2) == "x.T * 2"
    assert tg.pp(x.clip(0.5, 1.5)) == "clip(x, 0.5, 1.5)"
    assert tg.pp(nn.F.cross_entropy(x, tg.Tensor([0, 2]))) == \
        "mean(softmax_cross_entropy(x, Tensor(2)))"


# ---- backward trace -------------------------------------------------------------------------
_LINE = re.compile(r"^(\S+)\s+grad in (\(.*?\))\s+\|g\|=(\S+)\s+-> (.*)$")


def _parse_trace(out):
    steps = []
    for line in out.strip().splitlines():
        m = _LINE.match(line)
        assert m, f"not a trace line: {line!r}"
        sent = [re.match(r"(\d+):(\S+) (?:(\(.*?\)) \|g\|=(\S+)|-)$", s).groups()
                for s in m[4].split(", ")]
        steps.append((m[1], m[2], float(m[3]), sent))
    return steps


def test_backward_trace_prints_each_step_in_order_with_norms(capsys):
    x, w = _leaf([3.0, 4.0], "x"), _leaf([1.0, 2.0], "w")
    loss = (x * w).sum() * 3
    loss.backward(trace=True)
    steps = _parse_trace(capsys.readouterr().out)
    assert [s[0] for s in steps] == ["Mul", "Sum", "Mul"]          # from the output back
    assert [s[1] for s in steps] == ["()", "()", "(2,)"]
    norms = [1.0, 3.0, 3 * np.sqrt(2)]                             # |dloss/d(node output)|
    assert np.allclose([s[2] for s in steps], norms, rtol=1e-3)
    # what each node sends to each input: position, who, shape and norm (or '-' for nothing)
    assert steps[0][3] == [("0", "Sum", "()", "3"), ("1", "const", None, None)]
    assert steps[1][3][0][:3] == ("0", "Mul", "(2,)")
    assert [(s[1], s[2]) for s in steps[2][3]] == [("x", "(2,)"), ("w", "(2,)")]
    sent = [float(s[3]) for s in steps[2][3]]
    assert np.allclose(sent, [np.linalg.norm(3 * w.numpy()), np.linalg.norm(3 * x.numpy())],
                       rtol=1e-3)                                  # 3 sqrt(5) and 15
    assert np.allclose(x.grad.numpy(), [3.0, 6.0])                 # tracing changes nothing


def test_backward_trace_is_off_by_default_and_on_in_a_context_manager(capsys):
    x = _leaf([1.0, 2.0], "x")
    (x * x).sum().backward()
    assert capsys.readouterr().out == ""
    with tg.viz.trace_backward():
        (x * x).sum().backward()
        tg.grad((x.exp()).sum(), x)                        # tg.grad traces too
    steps = _parse_trace(capsys.readouterr().out)
    assert [s[0] for s in steps] == ["Sum", "Mul", "Sum", "Exp"]
    (x * x).sum().backward()                               # off again after the block
    assert capsys.readouterr().out == ""


# ---- anomaly detection ----------------------------------------------------------------------
def _site(line):
    return f"{__file__}:{line}"


@pytest.fixture
def quiet():
    """NumPy warns about invalid values; the anomaly checks are what is tested here."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def test_anomaly_names_the_op_and_the_line_of_a_nan_in_forward(quiet):
    x = _leaf([1.0, -1.0], "x")
    with tg.detect_anomaly(), pytest.raises(FloatingPointError) as info:
        line = _here() + 1
        x.log()
    assert "output of Log contains NaN" in str(info.value) and _site(line) in str(info.value)
    zero = _leaf([0.0], "zero")
    with tg.detect_anomaly(), pytest.raises(FloatingPointError) as info:
        line = _here() + 1
        zero / zero
    assert "output of Div contains NaN" in str(info.value) and _site(line) in str(info.value)
    with tg.detect_anomaly(), pytest.raises(FloatingPointError, match="Exp contains inf"):
        (x * 1000).exp()


def test_anomaly_names_the_op_whose_gradient_is_not_finite(quiet):
    x = _leaf([0.0, 4.0], "x")
    with tg.detect_anomaly():
        line = _here() + 1
        y = x.sqrt()                                  # finite: sqrt(0) = 0
        loss = (y * 3).sum()
        with pytest.raises(FloatingPointError) as info:
            loss.backward()                           # d sqrt(x)/dx = 1 / (2 sqrt x) = inf at 0
    message = str(info.value)
    assert "gradient for input 0 of Sqrt contains inf" in message
    assert _site(line) in message and "Div" not in message   # the node, not an op inside it


def test_anomaly_reports_the_users_line_not_a_line_inside_the_library(quiet):
    layer = nn.Linear(2, 1)
    with tg.no_grad():
        layer.weight.fill_(float("nan"))
    with tg.detect_anomaly(), pytest.raises(FloatingPointError) as info:
        line = _here() + 1
        layer(tg.Tensor(np.ones((1, 2), dtype=np.float32)))
    assert _site(line) in str(info.value) and "tinygrad_edu" + os.sep not in str(info.value)


def test_without_anomaly_mode_nothing_is_checked(quiet):
    x, zero = _leaf([1.0, -1.0], "x"), _leaf([0.0, 4.0], "zero")
    assert np.isnan(x.log().numpy()[1]) and np.isnan((zero / zero).numpy()[0])
    zero.sqrt().sum().backward()
    assert np.isinf(zero.grad.numpy()[0])


def test_anomaly_mode_is_restored_after_an_error_and_works_as_a_decorator(quiet):
    x = _leaf([-1.0], "x")
    with pytest.raises(FloatingPointError):
        with tg.detect_anomaly():
            x.log()
    assert np.isnan(x.log().numpy()).all()            # off again: no error

    @tg.detect_anomaly()
    def forward():
        return x.log()
    with pytest.raises(FloatingPointError, match="Log"):
        forward()
    x.log()
