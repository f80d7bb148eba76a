"""The training loop: history, early stopping with restore, checkpoint and exact resume, the
progress bar, learning-curve plots and the loop's error checks, on small synthetic data."""
import sys

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import nn, optim
from tinygrad_edu.training import History, accuracy, evaluate, fit


def blobs(n, seed, flip=False):
    """Two Gaussian blobs in 4-D; ``flip`` swaps the labels (a validation set that training on
    the unflipped data can only get worse at)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = (rng.standard_normal((n, 4)) + 2.0 * (2 * y[:, None] - 1)).astype(np.float32)
    return X, (1 - y if flip else y)


def model_and_optimizer(dropout=0.0, lr=0.1):
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(dropout), nn.Linear(8, 2))
    return model, optim.SGD(model.parameters(), lr=lr, momentum=0.9)


def test_fit_records_each_epoch_and_learns(capsys):
    model, opt = model_and_optimizer()
    history = fit(model, opt, blobs(256, 0), blobs(128, 1), epochs=3, batch_size=32,
                  progress=False)
    assert history["epoch"] == [1, 2, 3] and len(history) == 3
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["valid_acc"][-1] > 0.95
    assert history.best("valid_acc", mode="max")["valid_acc"] == max(history["valid_acc"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["epoch", "seconds", "train", "loss", "train", "acc", "valid",
                                "loss", "valid", "acc"]
    assert len(lines) == 4 and lines[3].split()[0] == "3"


def test_evaluate_and_accuracy_leave_the_mode_and_the_tape_alone():
    model, _ = model_and_optimizer(dropout=0.5)
    X, y = blobs(64, 2)
    model.train()
    loss, acc = evaluate(model, X, y)
    assert model.training and 0.0 <= acc <= 1.0 and loss > 0
    assert accuracy(model, X, y) == acc  # eval mode: dropout off, so the same answer twice
    assert all(p.grad is None for p in model.parameters())


def test_early_stopping_stops_after_patience_and_restores_the_best_parameters(capsys):
    model, opt = model_and_optimizer()
    valid = blobs(128, 1, flip=True)  # every step of training makes this loss worse
    history = fit(model, opt, blobs(256, 0), valid, epochs=10, batch_size=32, patience=2,
                  progress=False)
    assert len(history) == 3  # epoch 1 is the best; epochs 2 and 3 do not improve on it
    assert history.best("valid_loss")["epoch"] == 1
    assert evaluate(model, *valid)[0] == pytest.approx(history["valid_loss"][0], rel=1e-6)
    assert "restored the parameters of epoch 1" in capsys.readouterr().out


def test_resume_from_a_checkpoint_repeats_the_uninterrupted_run(tmp_path, capsys):
    train, valid = blobs(256, 0), blobs(64, 1)
    model, opt = model_and_optimizer(dropout=0.3)  # dropout: the random state must resume too
    whole = fit(model, opt, train, valid, epochs=3, batch_size=32, progress=False)
    path = str(tmp_path / "run.tg")
    first, opt1 = model_and_optimizer(dropout=0.3)
    fit(first, opt1, train, valid, epochs=1, batch_size=32, checkpoint=path, progress=False)
    second, opt2 = model_and_optimizer(dropout=0.3)  # a fresh process would start like this
    resumed = fit(second, opt2, train, valid, epochs=3, batch_size=32, checkpoint=path,
                  resume=True, progress=False)
    assert resumed["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-6)
    for p, q in zip(model.parameters(), second.parameters()):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-6, atol=1e-7)
    assert "resumed from" in capsys.readouterr().out


def test_progress_bar_is_shown_on_stderr(capsys):
    pytest.importorskip("tqdm")
    model, opt = model_and_optimizer()
    fit(model, opt, blobs(64, 0), epochs=1, batch_size=16, progress=True)
    assert "epoch 1" in capsys.readouterr().err


def test_history_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    history = History([dict(epoch=e, train_loss=1 / e, train_acc=0.5, valid_loss=None,
                            valid_acc=None) for e in (1, 2)])
    path = history.plot(str(tmp_path / "curves.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_history_plot_without_matplotlib_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(ImportError, match=r"pip install 'tinygrad_edu\[plot\]'"):
        History([]).plot(str(tmp_path / "x.png"))


def test_bad_uses_of_fit_raise_clear_errors():
    model, opt = model_and_optimizer()
    with pytest.raises(ValueError, match="patience.*validation set"):
        fit(model, opt, blobs(32, 0), patience=2, progress=False)
    model, opt = model_and_optimizer(lr=1e30)  # diverges at once
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        fit(model, opt, blobs(64, 0), epochs=2, batch_size=16, progress=False, verbose=False)
