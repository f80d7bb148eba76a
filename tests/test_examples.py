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


# ---- the recurrent examples (issue 12) ---------------------------------------------------------
import char_rnn  # noqa: E402
import sequential_mnist  # noqa: E402

import numpy as np  # noqa: E402

CHAR_QUICK = ["--limit", "20000", "--epochs", "2", "--seq-len", "32", "--hidden-size", "32",
              "--embedding-dim", "16", "--sample-length", "40"]


def test_sequential_mnist_trains_and_the_loss_falls(capsys):
    history, test_acc = sequential_mnist.main(["--limit", "384", "--batch-size", "64",
                                               "--epochs", "2", "--hidden-size", "16",
                                               "--lr", "0.02"])
    losses = column(history, "train_loss")
    assert len(losses) == 2 and losses[1] < losses[0]
    assert 0.0 <= test_acc <= 1.0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == HEADER and "test accuracy" in out


def test_sequential_mnist_reads_the_image_row_by_row():
    tg.manual_seed(0)
    model = sequential_mnist.build(hidden_size=8)
    x = tg.randn(3, 784)
    assert model(x).shape == (3, 10)
    # the score depends on the rows in order: reading them bottom-up changes it
    flipped = tg.from_numpy(x.numpy().reshape(3, 28, 28)[:, ::-1].reshape(3, 784).copy())
    assert not np.allclose(model(x).numpy(), model(flipped).numpy())
    # and equals the LSTM run by hand on (N, 28 steps, 28 pixels), the last state classified
    out, _ = model.lstm(x.reshape(3, 28, 28))
    assert np.allclose(model(x).numpy(), model.head(out[:, -1]).numpy(), atol=1e-6)


def test_char_rnn_trains_with_truncated_bptt_and_samples(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "loss.png"
    result = char_rnn.main(CHAR_QUICK + ["--plot", str(png)])
    train = [r["train_bpc"] for r in result["history"]]
    assert len(train) == 2 and train[1] < train[0]
    valid = result["history"][-1]["valid_bpc"]
    assert 0 < valid < 8 and result["baseline"] > 3         # bits, not nats; 86 characters
    # the state is carried across windows with detach(): without it the second window's
    # backward runs into the first one's freed graph and fails, so the run would not get here
    assert len(result["train_curve"]) == 2 * 9    # (18,000 - 1) // 64 = 281 columns: 9 windows
    vocab = set(char_rnn.CORPUS.read_text(encoding="utf-8")[:20000])
    for temperature in (0.5, 0.8, 1.0):
        text = result["samples"][temperature]
        assert text.startswith("The ") and len(text) == 4 + 40 and set(text) <= vocab
    out = capsys.readouterr().out
    assert "bits per character" in out and "---- temperature 0.8 ----" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_char_rnn_gru_option_trains(capsys):
    result = char_rnn.main(CHAR_QUICK + ["--cell", "gru", "--temperatures", "1.0"])
    train = [r["train_bpc"] for r in result["history"]]
    assert train[1] < train[0]
    assert isinstance(char_rnn.CharRNN(10, cell="gru").rnn, nn.GRU)


def test_char_rnn_streams_continue_row_by_row():
    ids = np.arange(23)
    inputs, targets = char_rnn.streams(ids, 4)                 # T = 22 // 4 = 5 columns
    assert inputs.tolist() == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13, 14],
                               [15, 16, 17, 18, 19]]
    assert (targets == inputs + 1).all()                      # the next character
    wins = list(char_rnn.windows(inputs, targets, 2))
    assert [x.shape for x, _ in wins] == [(4, 2), (4, 2), (4, 1)]
    assert wins[1][0].numpy()[:, 0].tolist() == [2, 7, 12, 17]   # row r goes on where it was


def test_char_rnn_unigram_baseline_is_the_entropy_in_bits():
    assert char_rnn.unigram_bits(np.array([0, 1, 2, 3]), 4) == pytest.approx(2.0)
    assert char_rnn.unigram_bits(np.array([0, 0, 0, 1]), 5) == pytest.approx(
        -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25)))
    assert char_rnn.unigram_bits(np.zeros(7, np.int64), 3) == 0.0


def test_char_rnn_detach_cuts_the_state_from_the_graph():
    tg.manual_seed(0)
    model = char_rnn.CharRNN(5, embedding_dim=3, hidden_size=4)
    _, state = model(tg.from_numpy(np.array([[0, 1, 2]])))
    assert all(s.requires_grad for s in state)
    cut = char_rnn.detach(state)
    assert all(not s.requires_grad and s._ctx is None for s in cut)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(state, cut))


def test_char_rnn_sampling_follows_the_temperature():
    tg.manual_seed(0)
    model = char_rnn.CharRNN(3, embedding_dim=2, hidden_size=4)
    with tg.no_grad():
        model.head.bias.data[:] = [4.0, 0.0, 0.0]    # the first character is the likeliest
        model.head.weight.data[:] = 0.0
    draw = lambda t: char_rnn.sample(model, ["a", "b", "c"], "a", 400, t,  # noqa: E731
                                     np.random.default_rng(0), "cpu")[1:]
    cold, hot = draw(0.1).count("a"), draw(10.0).count("a")
    assert cold == 400 and 100 < hot < 200                # nearly greedy vs nearly uniform


def test_the_recurrent_examples_clip_and_detach():
    for name in ("sequential_mnist", "char_rnn"):
        assert "clip_grad_norm_" in called_names((EXAMPLES / f"{name}.py").read_text()), name
    assert "detach" in called_names((EXAMPLES / "char_rnn.py").read_text())


def test_the_corpus_is_the_documented_snapshot_with_its_licence():
    import hashlib
    import importlib.util
    import re
    import sys
    folder = char_rnn.CORPUS.parent
    data = char_rnn.CORPUS.read_bytes()
    readme = (folder / "README.md").read_text()
    assert hashlib.sha256(data).hexdigest() in readme and len(data) < 2_000_000
    assert f"{len(data.decode('utf-8')):,} characters" in readme
    assert "PYTHON SOFTWARE FOUNDATION LICENSE" in (folder / "LICENSE-PSF.txt").read_text()
    spec = importlib.util.spec_from_file_location(
        "extract", EXAMPLES.parent / "scripts" / "extract_python_topics.py")
    extract = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(extract)
    version = re.search(r"Python (\d+\.\d+\.\d+)", readme).group(1)
    if sys.version.split()[0] != version:
        pytest.skip(f"the snapshot is of Python {version}'s documentation")
    assert extract.corpus() == data.decode("utf-8")    # the script made exactly this file


# ---- the unsupervised examples (issue 13) ------------------------------------------------------
import autoencoder  # noqa: E402
import pretraining  # noqa: E402
import rbm  # noqa: E402


def png_shape(path):
    """The (height, width) of a PNG file that matplotlib's imsave wrote."""
    from matplotlib import image
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return image.imread(path).shape[:2]


def test_rbm_trains_by_pcd_and_samples_its_chains(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    history, samples = rbm.main(["--limit", "1000", "--epochs", "2", "--k", "1", "--hidden", "100",
                                 "--chains", "3", "--rows", "2", "--steps", "3",
                                 "--out-dir", str(tmp_path)])
    recon = column(history, "valid_recon")
    assert len(recon) == 2 and recon[1] < recon[0]       # the model learns the digits
    assert all(c < 0 for c in column(history, "cost"))   # a log pseudo-likelihood, in nats
    assert samples.shape == (2, 3, 784) and 0 <= samples.min() and samples.max() <= 1
    assert png_shape(tmp_path / "rbm_filters.png") == (10 * 29 - 1, 10 * 29 - 1)
    assert png_shape(tmp_path / "rbm_samples.png") == (2 * 29 - 1, 3 * 29 - 1)
    assert "pseudo-likelihood cost" in capsys.readouterr().out


def test_denoising_autoencoders_train_with_and_without_noise(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    histories = autoencoder.main(["--limit", "500", "--epochs", "2", "--out-dir", str(tmp_path)])
    assert sorted(histories) == [0.0, 0.3]
    for corruption, history in histories.items():
        costs = column(history, "train_loss")
        assert len(costs) == 2 and costs[1] < costs[0], corruption
    # the noise makes reconstruction harder: a higher cost on the same images
    assert column(histories[0.3], "train_loss")[1] > column(histories[0.0], "train_loss")[1]
    for name in ("dae_filters_corruption_0.png", "dae_filters_corruption_30.png"):
        assert png_shape(tmp_path / name) == (10 * 29 - 1, 10 * 29 - 1)
    assert "corruption 30%" in capsys.readouterr().out


def test_deep_autoencoder_trains_and_is_compared_with_pca(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    history, ae_error, pca_error = autoencoder.main(["--model", "deep", "--limit", "1000",
                                                     "--epochs", "2", "--out-dir",
                                                     str(tmp_path)])
    assert column(history, "train_loss")[1] < column(history, "train_loss")[0]
    assert column(history, "valid_error")[1] < column(history, "valid_error")[0]
    assert 0 < pca_error < 784 and 0 < ae_error < 784
    # original, PCA and autoencoder rows of 10 test images, 2 black pixels apart
    assert png_shape(tmp_path / "deep_autoencoder_reconstructions.png") == (3 * 30 - 2,
                                                                            10 * 30 - 2)
    assert "PCA (30 components)" in capsys.readouterr().out


def test_pca_keeps_the_best_rank_k_approximation():
    X = np.random.default_rng(0).random((60, 8)).astype(np.float32)
    mean, U = autoencoder.pca(X, 8)
    assert np.allclose(mean + (X - mean) @ U @ U.T, X, atol=1e-5)   # all components: exact
    mean, U = autoencoder.pca(X, 3)
    assert np.allclose(U.T @ U, np.eye(3), atol=1e-10)
    s = np.linalg.svd(X - mean, compute_uv=False)       # Eckart-Young: the error is the rest
    error = autoencoder.squared_error(X, mean + (X - mean) @ U @ U.T)
    assert error == pytest.approx((s[3:] ** 2).sum() / len(X), rel=1e-6)


def test_pretraining_fine_tunes_sda_dbn_and_the_random_mlp(capsys):
    results = pretraining.main(["--limit", "500", "--epochs", "2", "--pretrain-epochs", "1",
                                "--hidden", "100,100,100"])
    assert list(results) == ["sda", "dbn", "random"]
    for kind, result in results.items():
        losses = column(result["history"], "train_loss")
        assert len(losses) == 2 and losses[1] < losses[0], kind
        assert 0.0 <= result["test_acc"] <= 1.0
    out = capsys.readouterr().out
    assert "layer 2, epoch 1: cross_entropy" in out and "layer 2, epoch 1: reconstruction" in out
    assert "test error after 2 fine-tuning epochs: sda" in out


@pytest.mark.parametrize("argv, message", [
    (["--models", "sda,svm"], "--models: unknown svm; choose from sda, dbn, random"),
    (["--hidden", "1000,x"], "--hidden: expected positive layer sizes such as 1000,1000,1000, "
                             "got '1000,x'"),
])
def test_pretraining_rejects_bad_options_before_loading_data(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(pretraining, "data", lambda args: pytest.fail("MNIST was loaded"))
    with pytest.raises(SystemExit) as e:
        pretraining.main(argv)
    assert e.value.code == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""      # nothing trained or printed
