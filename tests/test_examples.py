"""Every example's code path, on a small slice of MNIST for two epochs: it must run to the end
and the training loss must fall. (The full runs and their accuracies are in the README.)"""
import os
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")
sys.path.insert(0, EXAMPLES)

import batchnorm  # noqa: E402
import convnet  # noqa: E402
import demo  # noqa: E402
import early_stopping  # noqa: E402
import linear_regression  # noqa: E402
import logistic_regression  # noqa: E402
import mlp  # noqa: E402
import modern_net  # noqa: E402

QUICK = ["--limit", "1280", "--epochs", "2", "--no-progress"]
CONV_QUICK = ["--limit", "320", "--batch-size", "32", "--epochs", "2", "--no-progress"]


@pytest.mark.parametrize("example", [logistic_regression, mlp, modern_net, convnet, batchnorm],
                         ids=lambda m: m.__name__)
def test_example_trains_and_the_loss_falls(example, capsys):
    history, test_acc = example.main(CONV_QUICK if example in (convnet, batchnorm) else QUICK)
    losses = history["train_loss"]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert 0.0 <= test_acc <= 1.0
    out = capsys.readouterr().out
    assert "valid acc" in out and "test accuracy" in out  # the classic table and the result


def test_demo_fits_the_sine(capsys):
    final = demo.main(["--steps", "200"])
    first = float(capsys.readouterr().out.splitlines()[0].split()[-1])   # "step    0  loss ..."
    assert final < 0.05 < first


def test_linear_regression_finds_w_close_to_2(capsys):
    assert abs(linear_regression.main(["--epochs", "30"]) - 2) < 0.1


def test_early_stopping_runs_with_patience(capsys):
    history, _ = early_stopping.main(["--limit", "1280", "--epochs", "2", "--patience", "1",
                                      "--no-progress"])
    assert 1 <= len(history) <= 2  # (stopping itself is tested in tests/test_training.py)
    assert "best epoch" in capsys.readouterr().out


def test_checkpoint_and_resume_continue_the_same_run(tmp_path, capsys):
    path = str(tmp_path / "ckpt.tg")
    whole, _ = mlp.main(QUICK[:2] + ["--epochs", "2", "--no-progress"])
    mlp.main(QUICK[:2] + ["--epochs", "1", "--no-progress", "--checkpoint", path])
    resumed, _ = mlp.main(QUICK[:2] + ["--epochs", "2", "--no-progress", "--checkpoint", path,
                                       "--resume"])
    assert resumed["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-5)


def test_filters_draws_the_first_layers(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    import filters
    out = str(tmp_path / "filters.png")
    filters.main(["--epochs", "1", "--limit", "256", "--out", out])
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
