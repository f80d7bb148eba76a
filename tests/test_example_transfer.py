"""examples/transfer.py on tiny slices: every method runs for every target and budget, the
frozen method really leaves the pre-trained layers alone, and bad options stop before work."""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, os.fspath(EXAMPLES))

import transfer  # noqa: E402

import tinygrad_edu as tg  # noqa: E402

TINY = ["--limit", "200", "--pretrain-epochs", "1", "--steps", "2", "--budgets", "1", "3",
        "--repeats", "1"]


def test_every_method_runs_for_every_target_and_budget(capsys):
    results = transfer.main(TINY)
    text = capsys.readouterr().out
    assert sorted(results) == sorted((t, k) for t in ("sklearn digits (10 classes)",
                                                      "MNIST 5-9 (5 classes)") for k in (1, 3))
    for accs in results.values():
        assert sorted(accs) == ["finetune", "frozen", "scratch"]
        assert all(0.0 <= a <= 1.0 for a in accs.values())
    assert "pre-trained on 200 MNIST images of 0-4" in text
    assert text.count("| sklearn digits (10 classes) |") == 2 and "s in all)" in text


def test_sklearn_digits_are_brought_to_mnist_framing():
    (X, y), (Xt, yt) = transfer.sklearn_digits(seed=0)
    assert X.shape[1:] == (1, 28, 28) and X.dtype == np.float32
    assert len(X) + len(Xt) == 1797 and sorted(np.unique(y)) == list(range(10))
    assert 0.0 <= X.min() and X.max() <= 1.0
    assert not X[:, :, :4].any() and not X[:, :, -4:].any()         # the 4-pixel MNIST margin


def test_per_class_draws_k_of_each_class_without_replacement():
    y = np.repeat(np.arange(3), 10)
    X = np.arange(30)
    Xs, ys = transfer.per_class(X, y, 4, np.random.default_rng(0))
    assert np.bincount(ys).tolist() == [4, 4, 4] and len(set(Xs.tolist())) == 12
    assert (y[Xs] == ys).all()


def test_the_frozen_method_trains_only_the_new_classifier():
    tg.manual_seed(0)
    source = transfer.build(5)
    net = transfer.transfer_net(10, source)
    before = {k: v.copy() for k, v in net.state_dict().items()}
    source_before = {k: v.copy() for k, v in source.state_dict().items()}
    X = np.random.default_rng(0).random((20, 1, 28, 28), dtype=np.float32)
    y = np.arange(20) % 10
    transfer.train(net, net.classifier.parameters(), (X, y), steps=4, lr=1e-2, seed=0)
    after = net.state_dict()
    moved = {k for k in before if not np.array_equal(before[k], after[k])}
    assert moved == {f"classifier.{i}.{p}" for i in (0, 3) for p in ("weight", "bias")}
    # the kept blocks are the source's first three, under their own names, copied
    kept = [k for k in before if k.startswith("features.")]
    assert kept and max(int(k.split(".")[1]) for k in kept) < transfer.CUT
    assert all(np.array_equal(before[k], source_before[k]) for k in kept)
    assert all(np.array_equal(v, source_before[k]) for k, v in source.state_dict().items())
    assert net(tg.Tensor(X[:2])).shape == (2, 10)


@pytest.mark.parametrize("args, message", [
    (["--budgets", "0"], "must be at least 1"),
    (["--steps", "0"], "must be at least 1"),
    (["--budgets", "500"], "images of its rarest class"),
    (["--limit", "0"], "--limit must be at least 1"),
])
def test_bad_options_stop_before_any_work(args, message, tmp_path):
    result = subprocess.run([sys.executable, str(EXAMPLES / "transfer.py"), *args],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr and result.stdout == ""
