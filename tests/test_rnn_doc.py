"""docs/rnn.md matches what it shows: the unrolled graph it links is the tape of the current code,
and the gradient norms it describes are what scripts/make_rnn_figures.py measures. (Its code
blocks are run by tests/test_docs.py.)"""
import importlib.util
import pathlib
import shutil

import numpy as np
import pytest

import tinygrad_edu as tg

from test_internals_doc import dot_content, image_links, svg_content

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "rnn.md"


def load_script():
    spec = importlib.util.spec_from_file_location("make_rnn_figures",
                                                  ROOT / "scripts" / "make_rnn_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


figures = load_script()


def test_the_doc_links_both_figures():
    assert set(image_links(DOC)) == {"img/rnn_unrolled.svg", "img/rnn_gradients.png"}


def test_the_committed_graph_is_the_tape_of_the_current_code():
    """Rerun scripts/make_rnn_figures.py when this fails: the picture shows an older tape."""
    committed = svg_content((ROOT / "docs" / "img" / "rnn_unrolled.svg").read_text())
    assert committed == dot_content(tg.viz.to_dot(figures.unrolled_example()))


def test_the_doc_builds_the_graph_of_the_figure():
    h3 = figures.unrolled_example()
    assert tg.pp(h3) == "tanh(x3 @ W_xh + h2 @ W_hh + b)" and tg.pp(h3) in DOC.read_text()
    ops = [type(t._ctx).__name__ for t in tg.viz._nodes(h3) if t._ctx is not None]
    assert sorted(ops) == sorted(["MatMul"] * 6 + ["Add"] * 6 + ["Tanh"] * 3)   # 5 per step


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_make_unrolled_renders_the_tape(tmp_path):
    path = figures.make_unrolled(tmp_path / "g.svg")
    assert svg_content(path.read_text()) == dot_content(tg.viz.to_dot(figures.unrolled_example()))
    assert [p.name for p in tmp_path.iterdir()] == ["g.svg"]


def test_without_graphviz_the_script_says_so_and_keeps_the_old_picture(tmp_path, monkeypatch,
                                                                     capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))
    out = tmp_path / "img"
    out.mkdir()
    (out / "rnn_unrolled.svg").write_text("the previous picture")
    assert figures.main([str(out)]) == 1
    assert "rnn_unrolled.svg was not made" in capsys.readouterr().err
    assert (out / "rnn_unrolled.svg").read_text() == "the previous picture"
    assert sorted(p.name for p in out.iterdir()) == ["rnn_gradients.png", "rnn_unrolled.svg"]


@pytest.fixture(scope="module")
def norms():
    """label -> ||dL/dh_t|| / ||dL/dh_T|| by steps back (index k: k steps back), as drawn."""
    return {label: (lambda n: n[::-1] / n[-1])(figures.gradient_norms(cell, change))
            for label, (cell, change) in figures.CURVES.items()}


def test_the_gradient_norms_are_what_the_doc_says(norms):
    rnn, big, lstm, forget1 = (norms[label] for label in figures.CURVES)
    assert all(len(n) == 100 and n[0] == 1.0 for n in (rnn, big, lstm, forget1))
    assert rnn[99] < 1e-20 and rnn[20] < 1e-4                  # vanishes ...
    assert 0.45 < (rnn[99] / rnn[50]) ** (1 / 49) < 0.7          # ... by ~0.58 per step
    assert big[99] > 1e2                                        # explodes
    assert lstm[99] < 1e-15                                     # vanishes too, at init
    assert 1e-10 < forget1[99] < 1e-6                           # "1e-8 instead of 1e-20"
    assert all(np.isfinite(n).all() and (n > 0).all() for n in norms.values())


def test_gradient_norms_are_backpropagation_through_time_by_hand():
    steps, batch, inputs, hidden = 6, 2, 3, 4
    n = figures.gradient_norms("rnn", "scale", steps, batch, inputs, hidden, seed=3)
    # the same cell, inputs and v, drawn the way gradient_norms draws them
    tg.manual_seed(3)
    cell = tg.nn.RNNCell(inputs, hidden)
    w = {k: p.numpy().astype(np.float64) for k, p in cell.named_parameters()}
    w["weight_hh"] *= 3.0
    rng = np.random.default_rng(3)
    xs = rng.standard_normal((steps, batch, inputs))
    v = rng.standard_normal((batch, hidden))
    hs, h = [], np.zeros((batch, hidden))
    for x in xs:
        h = np.tanh(x @ w["weight_ih"].T + w["bias_ih"] + h @ w["weight_hh"].T + w["bias_hh"])
        hs.append(h)
    dh, expected = v, []
    for t in reversed(range(steps)):
        expected.append(np.linalg.norm(dh))
        dh = (dh * (1 - hs[t] ** 2)) @ w["weight_hh"]             # dL/dh_{t-1}
    assert np.allclose(n, expected[::-1], rtol=1e-10)


def test_the_gradient_figure_is_deterministic(tmp_path):
    a = figures.make_gradients(tmp_path / "a.png").read_bytes()
    b = figures.make_gradients(tmp_path / "b.png").read_bytes()
    assert a == b and a.startswith(b"\x89PNG") and len(a) < 200_000
    assert b"atplotlib" not in a                                # no version stamp
