"""Every example's code path, on a small slice of MNIST for two epochs: it must run to the end
and the training loss must fall. (The full runs and their accuracies are in the README.) Then
what the examples teach: the first two write the training loop out, with fit's recipe, and no
example imports another."""
import argparse
import ast
import os
import pathlib
import sys

import pytest

import tinygrad_edu as tg
from tinygrad_edu import nn, optim
from tinygrad_edu.training import HEADER, evaluate, fit

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, os.fspath(EXAMPLES))

import _common  # noqa: E402
import batchnorm  # noqa: E402
import convnet  # noqa: E402
import demo  # noqa: E402
import early_stopping  # noqa: E402
import linear_regression  # noqa: E402
import logistic_regression  # noqa: E402
import mlp  # noqa: E402
import modern_net  # noqa: E402

QUICK = ["--limit", "1280", "--epochs", "2", "--no-progress"]
LOOP_QUICK = ["--limit", "1280", "--epochs", "2"]          # the written-out loop has no bar
CONV_QUICK = ["--limit", "320", "--batch-size", "32", "--epochs", "2", "--no-progress"]
QUICK_ARGS = {logistic_regression: LOOP_QUICK, mlp: LOOP_QUICK, modern_net: QUICK,
              convnet: CONV_QUICK, batchnorm: CONV_QUICK}


def column(history, key):
    """One column of a fit History or of the written-out loop's list of per-epoch dicts."""
    return [r[key] for r in getattr(history, "records", history)]


@pytest.mark.parametrize("example", list(QUICK_ARGS), ids=lambda m: m.__name__)
def test_example_trains_and_the_loss_falls(example, capsys):
    history, test_acc = example.main(QUICK_ARGS[example])
    losses = column(history, "train_loss")
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
    whole, _ = modern_net.main(QUICK)
    modern_net.main(QUICK[:2] + ["--epochs", "1", "--no-progress", "--checkpoint", path])
    resumed, _ = modern_net.main(QUICK + ["--checkpoint", path, "--resume"])
    assert "resumed from" in capsys.readouterr().out
    assert resumed["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-5)


def test_filters_draws_the_first_layers(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    import filters
    out = str(tmp_path / "filters.png")
    filters.main(["--epochs", "1", "--limit", "256", "--out", out])
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


# ---- what the examples teach -------------------------------------------------------------------
def imported_modules(source):
    """The top-level names of every module that ``source`` imports (``from . import x``: x)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level or not node.module:
                names |= {alias.name for alias in node.names}
            else:
                names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" \
                and node.args and isinstance(node.args[0], ast.Constant):
            names.add(str(node.args[0].value).split(".")[0])
    return names


def called_names(source):
    """The names of the functions and methods that ``source`` calls (``a.b.step()``: step)."""
    return {getattr(node.func, "attr", getattr(node.func, "id", None))
            for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)}


def test_imported_modules_sees_every_way_to_import_an_example():
    source = ("import mlp\nimport convnet as c\nfrom modern_net import optimizer\n"
              "from . import batchnorm\nimport importlib\nimportlib.import_module('filters')\n"
              "import tinygrad_edu.nn\nfrom _common import data\n")
    assert imported_modules(source) == {"mlp", "convnet", "modern_net", "batchnorm", "importlib",
                                        "filters", "tinygrad_edu", "_common"}


def test_no_example_imports_another():
    examples = {p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_")}
    assert {"mlp", "convnet", "logistic_regression", "filters"} <= examples
    for path in sorted(EXAMPLES.glob("*.py")):
        imports = imported_modules(path.read_text())
        assert not imports & examples, f"{path.name} imports {sorted(imports & examples)}"


@pytest.mark.parametrize("example", ["logistic_regression", "mlp"])
def test_the_first_tutorials_write_the_loop_out(example):
    source = (EXAMPLES / f"{example}.py").read_text()
    calls = called_names(source)
    assert {"DataLoader", "cross_entropy", "zero_grad", "backward", "step", "no_grad"} <= calls
    assert "fit" not in calls and "train_epoch" not in calls
    code = source.split('"""', 2)[2]                 # after the module docstring
    assert "training" not in code                    # no tg.training.fit / evaluate hidden away
    assert "def main" in source and source.count("\n") < 80  # as short as the Theano original


def test_the_shared_helper_holds_no_training():
    source = (EXAMPLES / "_common.py").read_text()
    assert not called_names(source) & {"fit", "evaluate", "train_epoch", "backward", "step",
                                       "zero_grad"}
    assert imported_modules(source) <= {"argparse", "tinygrad_edu"}


def logistic_regression_recipe():
    model = nn.Linear(784, 10, bias=False)
    nn.init.normal_(model.weight, std=0.01)
    return model


def mlp_recipe():
    model = nn.Sequential(nn.Linear(784, 625), nn.Sigmoid(), nn.Linear(625, 10))
    for layer in (model[0], model[2]):
        nn.init.normal_(layer.weight, std=0.01)
    return model


@pytest.mark.parametrize("example, recipe", [(logistic_regression, logistic_regression_recipe),
                                             (mlp, mlp_recipe)], ids=["logistic_regression", "mlp"])
def test_the_written_out_loop_follows_fits_recipe(example, recipe, capsys):
    # One batch of the whole slice per epoch, so the order of the images cannot matter: the
    # loop and fit must then agree on every figure of the table (same init, SGD, loss, metrics).
    argv = ["--limit", "256", "--batch-size", "256", "--epochs", "3", "--lr", "0.1"]
    history, test_acc = example.main(argv)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == HEADER and len(out) == 5 and out[-1].startswith("test loss")
    tg.manual_seed(0)
    model = recipe()
    train, valid, test = _common.data(argparse.Namespace(limit=256))
    expected = fit(model, optim.SGD(model.parameters(), lr=0.1), train, valid, epochs=3,
                   batch_size=256, verbose=False)
    for key in ("train_loss", "train_acc", "valid_loss", "valid_acc"):
        assert column(history, key) == pytest.approx(expected[key], rel=1e-5, abs=1e-6), key
    assert column(history, "train_loss")[-1] < column(history, "train_loss")[0]
    assert test_acc == pytest.approx(evaluate(model, *test)[1], abs=1e-6)


def test_the_benchmarks_find_the_models_they_time():
    # benchmarks/mnist.py and gpu.py time the examples' own models and optimizers
    for example in (logistic_regression, mlp, modern_net, convnet):
        assert isinstance(example.build(), nn.Module)
    assert isinstance(modern_net.optimizer(modern_net.build(), 1e-3), optim.RMSprop)
