"""The training loop's safety: a non-finite loss stops before the step, a checkpoint is checked
whole before resuming, a checkpoint path is checked before training, bad numbers are refused
before anything changes, progress output stays small in a log file, and the random state is
saved in checkpoints."""
import contextlib
import io

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import nn, optim
from tinygrad_edu.creation import get_rng_state
from tinygrad_edu.data import DataLoader, TensorDataset
from tinygrad_edu.data import Split
from tinygrad_edu.training import evaluate, fit, train_epoch


def blobs(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = (rng.standard_normal((n, 4)) + 2.0 * (2 * y[:, None] - 1)).astype(np.float32)
    return X, y


class RecordingSGD(optim.SGD):
    """SGD that keeps a copy of the parameters and of its state after every step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.after = []

    def step(self, closure=None):
        out = super().step(closure)
        self.after.append(([p.numpy().copy() for p in self.params()], snapshot_opt(self)))
        return out

    def params(self):
        return [p for g in self.param_groups for p in g["params"]]


def snapshot_opt(opt):
    sd = opt.state_dict()
    return {int(j): {k: np.array(v) for k, v in s.items()} for j, s in sd["state"].items()}


def model_and_optimizer(lr=0.1, batchnorm=False, dropout=0.0):
    tg.manual_seed(0)
    layers = [nn.Linear(4, 8)] + ([nn.BatchNorm1d(8)] if batchnorm else []) + \
        [nn.ReLU(), nn.Dropout(dropout), nn.Linear(8, 2)]
    model = nn.Sequential(*layers)
    return model, RecordingSGD(model.parameters(), lr=lr, momentum=0.9)


def params(model):
    return [np.array(a) for a in model.state_dict().values()]


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def assert_opt_state(opt, expected):
    got = snapshot_opt(opt)
    assert got.keys() == expected.keys()
    for j in got:
        assert got[j].keys() == expected[j].keys()
        for k in got[j]:
            np.testing.assert_array_equal(got[j][k], expected[j][k])


# ---- 1. a non-finite loss stops before the step ------------------------------------------------
def test_nan_in_the_input_batch_is_named_and_nothing_is_stepped():
    X, y = blobs(64, 0)
    X[20, 1] = np.nan  # in the second batch of 16
    model, opt = model_and_optimizer(batchnorm=True)
    with pytest.raises(FloatingPointError, match=r"batch 2: the input batch holds NaN.*not the "
                                                 r"learning rate"):
        train_epoch(model, opt, DataLoader(X, y, batch_size=16))
    twin, twin_opt = model_and_optimizer(batchnorm=True)  # the first batch only
    train_epoch(twin, twin_opt, DataLoader(X[:16], y[:16], batch_size=16))
    # parameters, optimizer state and batch norm's running statistics (which the forward pass of
    # the bad batch had changed) are as the first, good step left them
    assert_same(params(model), params(twin))
    assert_opt_state(opt, snapshot_opt(twin_opt))
    assert len(opt.after) == 1


def test_a_diverging_loss_keeps_the_parameters_of_the_last_good_step():
    model, opt = model_and_optimizer(lr=1e30)
    with pytest.raises(FloatingPointError, match="lower the learning rate") as info:
        fit(model, opt, blobs(64, 0), epochs=2, batch_size=16, progress=False, verbose=False)
    assert "input batch" not in str(info.value)  # the data are fine; the step size is not
    weights, state = opt.after[-1]
    assert all(np.isfinite(w).all() for w in weights)
    assert_same([p.numpy() for p in opt.params()], weights)
    assert_opt_state(opt, state)


# ---- 2. resuming: the whole checkpoint is checked before anything changes -----------------------
@pytest.fixture
def trained(tmp_path):
    """A model and optimizer after 2 epochs, and a good checkpoint of epoch 1 of another run."""
    path = str(tmp_path / "run.tg")
    model, opt = model_and_optimizer()
    fit(model, opt, blobs(64, 0), epochs=1, batch_size=16, checkpoint=path, progress=False,
        verbose=False)
    model, opt = model_and_optimizer(lr=0.05)
    fit(model, opt, blobs(64, 1), epochs=2, batch_size=16, progress=False, verbose=False)
    return model, opt, path


def broken(path, change):
    state = tg.load(path)
    change(state)
    tg.save(state, path)
    with open(path, "rb") as f:
        return f.read()


def wrong_shape(state):
    state["model"]["0.weight"] = np.zeros((3, 4), np.float32)


def bad_rng(state):
    state["rng"]["generators"]["cpu"] = {"bit_generator": "NoSuchGenerator"}


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("optimizer"), r"no 'optimizer' part"),
    (wrong_shape, r"(?s)'model' part is wrong.*0\.weight.*\(3, 4\)"),
    (lambda s: s["optimizer"]["param_groups"].append(s["optimizer"]["param_groups"][0]),
     r"'optimizer' part is wrong.*2 parameter groups"),
    (lambda s: s["history"].append({"epoch": 5}), r"'history' is not the list"),
    (bad_rng, r"'rng' part is wrong.*NoSuchGenerator"),
    (lambda s: s.update(epoch=3), r"'epoch' is 3 but the history has 1"),
])
def test_a_bad_checkpoint_changes_nothing(trained, change, message):
    model, opt, path = trained
    data = broken(path, change)
    before, opt_before, rng_before = params(model), snapshot_opt(opt), get_rng_state()
    lr = opt.param_groups[0]["lr"]
    with pytest.raises(ValueError, match=message):
        fit(model, opt, blobs(64, 0), epochs=3, batch_size=16, checkpoint=path, resume=True,
            progress=False, verbose=False)
    assert_same(params(model), before)
    assert_opt_state(opt, opt_before)
    assert opt.param_groups[0]["lr"] == lr
    assert get_rng_state() == rng_before
    with open(path, "rb") as f:
        assert f.read() == data


def test_resume_restores_the_random_state(tmp_path):
    path = str(tmp_path / "run.tg")
    model, opt = model_and_optimizer(dropout=0.5)
    fit(model, opt, blobs(64, 0), epochs=2, batch_size=16, checkpoint=path, progress=False,
        verbose=False)
    after = get_rng_state()
    model, opt = model_and_optimizer(dropout=0.5)
    tg.manual_seed(123)
    tg.randn(3)
    fit(model, opt, blobs(64, 0), epochs=2, batch_size=16, checkpoint=path, resume=True,
        progress=False, verbose=False)  # nothing left to train: only the state comes back
    assert get_rng_state() == after
    assert tg.load(path)["epoch"] == 2


# ---- 3. the checkpoint's folder ------------------------------------------------------------------
def test_missing_checkpoint_folders_are_created_before_training(tmp_path):
    path = tmp_path / "runs" / "mlp" / "ckpt.tg"
    model, opt = model_and_optimizer()
    fit(model, opt, blobs(32, 0), epochs=1, batch_size=16, checkpoint=path, progress=False,
        verbose=False)
    assert tg.load(path)["epoch"] == 1


def test_an_unwritable_checkpoint_path_fails_before_training(tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    model, opt = model_and_optimizer()
    before = params(model)
    with pytest.raises(OSError, match="cannot write the checkpoint"):
        fit(model, opt, blobs(32, 0), epochs=1, batch_size=16,
            checkpoint=tmp_path / "file" / "ckpt.tg", progress=False)
    assert_same(params(model), before) and not opt.after
    assert "epoch" not in capsys.readouterr().out  # not even the table's header
    with pytest.raises(ValueError, match="is a directory"):
        fit(model, opt, blobs(32, 0), checkpoint=tmp_path, progress=False)


# ---- 4. nonsensical numbers ----------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    (dict(epochs=-1), "epochs must be an integer >= 0, got -1"),
    (dict(epochs=2.5), "epochs must be"),
    (dict(batch_size=0), "batch_size must be a positive integer, got 0"),
    (dict(batch_size=True), "batch_size must be"),
    (dict(patience=0, valid=blobs(16, 1)), "patience must be a positive integer, got 0"),
    (dict(seed=-3), "seed must be an integer >= 0"),
    (dict(resume=True), "resume=True needs checkpoint"),
])
def test_fit_refuses_bad_arguments_before_changing_anything(kwargs, message):
    model, opt = model_and_optimizer()
    before, rng = params(model), get_rng_state()
    with pytest.raises(ValueError, match=message):
        fit(model, opt, blobs(32, 0), progress=False, verbose=False, **kwargs)
    assert_same(params(model), before)
    assert not opt.after and get_rng_state() == rng


@pytest.mark.parametrize("batch_size", [0, -5, 1.5])
def test_evaluate_refuses_a_bad_batch_size(batch_size):
    model, _ = model_and_optimizer(dropout=0.5)
    model.train()
    with pytest.raises(ValueError, match="evaluate: batch_size must be a positive integer"):
        evaluate(model, *blobs(8, 0), batch_size=batch_size)
    assert model.training


def test_fit_and_evaluate_take_splits_and_datasets():
    X, y = blobs(64, 0)
    model, opt = model_and_optimizer()
    history = fit(model, opt, Split(X, y), TensorDataset(X, y), epochs=1, batch_size=16,
                  progress=False, verbose=False)
    assert evaluate(model, Split(X, y)) == evaluate(model, X, y) == \
        (history["valid_loss"][0], history["valid_acc"][0])
    with pytest.raises(TypeError, match=r"train must give \(input, target\) pairs"):
        fit(model, opt, X, progress=False)


# ---- 5. progress output in a log file -------------------------------------------------------
class Terminal(io.StringIO):
    def isatty(self):
        return True


def run_with_stderr(stream, epochs=3):
    model, opt = model_and_optimizer()
    with contextlib.redirect_stderr(stream), contextlib.redirect_stdout(io.StringIO()):
        fit(model, opt, blobs(640, 0), epochs=epochs, batch_size=16, progress=True)
    return stream.getvalue()


def test_progress_in_a_log_file_is_a_few_plain_lines_per_epoch():
    out = run_with_stderr(io.StringIO())  # not a terminal, like `make train > log`
    assert "\r" not in out and "\x1b" not in out
    lines = out.splitlines()
    assert len(lines) == 3 * 3  # 25%, 50% and 75% of each of the 3 epochs of 40 batches
    assert lines[0].startswith("epoch 1: 10/40 batches, loss ") and "epoch 3: 30/40" in lines[-1]


def test_progress_on_a_terminal_is_a_tqdm_bar():
    pytest.importorskip("tqdm")
    out = run_with_stderr(Terminal(), epochs=1)
    assert "\r" in out and "epoch 1" in out
