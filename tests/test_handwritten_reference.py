"""benchmarks/handwritten.py, the floor that benchmarks/mnist.py compares our engine with, must do
the same work as our engine: from the same initial weights (and, for the modern net, the same
dropout masks: the same seed, drawn in the same order), a few training steps of each
hand-written model give the parameters that our engine gives with the example's own model
(its build function) and optimizer, to float32 tolerance."""
import ast
import os
import pathlib
import sys

import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.nn.functional as F
from tinygrad_edu import optim

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, os.fspath(ROOT / "examples"))
sys.path.insert(0, os.fspath(ROOT / "benchmarks"))

import handwritten  # noqa: E402
import logistic_regression  # noqa: E402
import mlp  # noqa: E402
import modern_net  # noqa: E402

EXAMPLES = {"logistic_regression": (logistic_regression.build,
                                    lambda m: optim.SGD(m.parameters(), lr=0.05)),
            "mlp": (mlp.build, lambda m: optim.SGD(m.parameters(), lr=0.05)),
            "modern_net": (modern_net.build, lambda m: modern_net.optimizer(m, 1e-3))}
SEED = 7  # the dropout masks' seed, for both


def batches(sizes, rng=0):
    """Batches of MNIST-like data: pixels in [0, 1), labels 0..9."""
    rng = np.random.default_rng(rng)
    return [(rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)) for n in sizes]


def ours(name, data):
    """(initial parameters, parameters and losses after training on ``data`` with our engine)."""
    build, make_optimizer = EXAMPLES[name]
    tg.manual_seed(0)
    model = build()
    opt = make_optimizer(model)
    initial = [p.data.copy() for p in model.parameters()]
    tg.manual_seed(SEED)  # the dropout masks come from here on
    model.train()
    losses = []
    for x, y in data:
        loss = F.cross_entropy(model(tg.Tensor(x)), tg.Tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return initial, [p.data for p in model.parameters()], losses


def hand(name, initial, data, rng=SEED):
    model = handwritten.build(name, [p.copy() for p in initial], rng=rng)
    losses = [model.step(x, y) for x, y in data]
    return model.params, losses


@pytest.mark.parametrize("name", list(EXAMPLES))
@pytest.mark.parametrize("sizes", [(16,), (128, 128, 40)], ids=["one_step", "full_then_short"])
def test_the_hand_written_models_train_like_ours(name, sizes):
    data = batches(sizes)
    initial, want, want_losses = ours(name, data)
    got, losses = hand(name, initial, data)
    assert [p.shape for p in got] == [p.shape for p in want]
    for g, w in zip(got, want):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(losses, want_losses, rtol=1e-5)
    moved = max(float(np.abs(w - i).max()) for w, i in zip(want, initial))
    assert moved > 1e-4  # the steps changed the parameters, so the comparison says something


def test_other_dropout_masks_give_other_parameters():
    # the modern net's agreement above rests on the masks: another seed does not agree
    data = batches((32, 32))
    initial, want, _ = ours("modern_net", data)
    got, _ = hand("modern_net", initial, data, rng=SEED + 1)
    assert not all(np.allclose(g, w, rtol=1e-4, atol=1e-6) for g, w in zip(got, want))


def test_the_floor_imports_no_engine():
    tree = ast.parse((ROOT / "benchmarks" / "handwritten.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported == {"numpy"}


def test_init_params_draws_the_examples_init():
    w, b, w2, b2 = handwritten.init_params((784, 625, 10), rng=0)
    assert (w.shape, b.shape, w2.shape, b2.shape) == ((625, 784), (625,), (10, 625), (10,))
    assert all(p.dtype == np.float32 for p in (w, b, w2, b2))
    assert abs(float(w.std()) - 0.01) < 2e-4 and not b.any() and not b2.any()
    assert len(handwritten.init_params((784, 10), bias=False)) == 1
