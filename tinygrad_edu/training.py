"""The tutorials' training loop, made reusable: a few plain functions, not a framework.

    history = fit(model, optimizer, mnist_split("train"), mnist_split("valid"), epochs=20)

``train`` and ``valid`` are anything a :class:`~tinygrad_edu.data.DataLoader` accepts: a pair of
arrays ``(X, y)``, an MNIST split, or a Dataset of ``(input, target)`` samples. The loader yields
Tensors, which are moved to ``device`` here. One epoch = shuffle, then for each mini-batch:
forward, loss, zero_grad, backward, step. After each epoch the model is evaluated on the
validation set, a line of the classic table is printed (epoch, seconds, train loss/accuracy,
validation loss/accuracy), a checkpoint is written, and early stopping decides whether to go on.
Read :func:`train_epoch` first: it is the whole idea.

Safety: every argument and the whole checkpoint to resume from are checked before anything
changes; a loss that is not finite stops training *before* the step, so the model keeps the
parameters of the last good step.
"""
import math
import numbers
import os
import sys
import tempfile
import time

import numpy as np

from . import distributed as dist
from . import nn
from .backend import check_device, get_xp
from .compiler import compile as compile_function
from .creation import _parse_rng_state, get_rng_state, manual_seed, set_rng_state
from .data import DataLoader
from .serialization import load, save
from .tensor import Tensor, no_grad

F = nn.functional


class _PlainProgress:
    """What a progress bar becomes when stderr is not a terminal (a log file, a pipe): one line
    at each quarter of the epoch, instead of a redraw every 0.1 s."""

    def __init__(self, iterable, total, desc, file):
        self.iterable, self.total, self.desc, self.file = iterable, total, desc, file
        self.postfix = ""

    def set_postfix(self, **values):
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def __iter__(self):
        marks = {math.ceil(self.total * q) for q in (0.25, 0.5, 0.75)} - {0, self.total}
        t0 = time.perf_counter()
        for i, item in enumerate(self.iterable, 1):
            yield item
            if i in marks:
                print(f"{self.desc}: {i}/{self.total} batches, {self.postfix}, "
                      f"{time.perf_counter() - t0:.1f} s", file=self.file, flush=True)


def _progress(iterable, total, desc, enabled):
    if not enabled:
        return iterable
    if not getattr(sys.stderr, "isatty", lambda: False)():
        return _PlainProgress(iterable, total, desc, sys.stderr)
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a dependency, but the loop must not need it
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)


def _to(batch, device):
    """A batch on ``device``: a Tensor is moved (not copied when it is there); arrays wrapped."""
    return batch.to(device) if isinstance(batch, Tensor) else Tensor(batch, device=device)


def _non_finite(t):
    """'NaN' or 'inf' when the floating-point tensor ``t`` holds one, else None."""
    a = t.data
    if a.dtype.kind != "f":
        return None
    xp = get_xp(a)
    if bool(xp.isfinite(a).all()):
        return None
    return "NaN" if bool(xp.isnan(a).any()) else "inf"


def _check_step(x, y, value, desc, batch):
    """Raise FloatingPointError when the loss ``value`` is NaN/inf, naming the cause."""
    if math.isfinite(value):
        return
    where = f"{desc}, batch {batch}"
    for name, t in (("input", x), ("target", y)):
        bad = _non_finite(t)
        if bad:
            raise FloatingPointError(
                f"{where}: the {name} batch holds {bad}, so the loss is {value}; the data are at "
                f"fault, not the learning rate (check np.isfinite on them). The parameters are "
                f"those of the last good step")
    raise FloatingPointError(
        f"{where}: the training loss became {value}; the parameters are those of the last good "
        f"step (this batch was not stepped): lower the learning rate, or find the op that "
        f"overflows with tg.detect_anomaly()")


def _check_gradients(model, value, desc, batch):
    for name, p in model.named_parameters():
        bad = None if p.grad is None else _non_finite(p.grad)
        if bad:
            raise FloatingPointError(
                f"{desc}, batch {batch}: the gradient of {name} holds {bad} although the loss "
                f"({value:.4g}) is finite; the parameters are those of the last good step: "
                f"lower the learning rate, or clip the gradients")


def train_epoch(model, optimizer, loader, loss_fn=F.cross_entropy, device="cpu", progress=False,
                desc="train", compile=False):
    """One pass over ``loader`` (batches ``(xb, yb)`` of Tensors or arrays); returns (mean loss,
    accuracy) over the batches seen.

    The loss is checked before backward and the gradients before the step: a NaN or inf raises
    FloatingPointError and leaves the parameters, the optimizer and the buffers (batch norm's
    running statistics, which the forward pass updates) as the last good step left them.

    A model with a ``sync_gradients`` method (a
    :class:`~tinygrad_edu.distributed.DistributedDataParallel`) has it called right after
    ``backward()``, before the gradients are checked and the step taken: every rank then
    checks and applies the same averaged gradients.

    ``compile=True`` runs forward, zero_grad and backward as a :func:`tinygrad_edu.compile`d
    function (recorded on the first batch, replayed on the others; ``fit`` passes the same
    compiled function to every epoch). The checks and the step then follow the replay, so a
    NaN still stops before the step and leaves the parameters as they were.
    """
    model.train()
    if compile is True:
        compile = compile_step(model, optimizer, loss_fn)
    total_loss, correct, count = 0.0, 0, 0
    bar = _progress(loader, len(loader), desc, progress)
    buffers = list(model.buffers())
    sync = getattr(model, "sync_gradients", None)
    for batch, (xb, yb) in enumerate(bar, 1):
        x, y = _to(xb, device), _to(yb, device)
        saved = [b.data.copy() for b in buffers]  # small: batch norm's running statistics
        if compile:
            loss, logits = compile(x, y)  # the whole forward and backward, replayed
        else:
            logits = model(x)
            loss = loss_fn(logits, y)
        value = loss.item()
        try:
            _check_step(x, y, value, desc, batch)
            if not compile:
                optimizer.zero_grad()
                loss.backward()
            if sync is not None:
                sync()
            _check_gradients(model, value, desc, batch)
        except FloatingPointError:
            with no_grad():
                for b, array in zip(buffers, saved):
                    b.copy_(array)
            raise
        optimizer.step()
        total_loss += value * len(y)
        correct += int((logits.data.argmax(axis=1) == y.data).sum())
        count += len(y)
        if bar is not loader:
            bar.set_postfix(loss=f"{total_loss / count:.4f}")
    return total_loss / max(count, 1), correct / max(count, 1)


def compile_step(model, optimizer, loss_fn=F.cross_entropy):
    """The forward, zero_grad and backward of one batch as a compiled function
    ``step(x, y) -> (loss, logits)`` (see :func:`tinygrad_edu.compile`)."""
    def forward_backward(x, y):
        logits = model(x)
        loss = loss_fn(logits, y)
        optimizer.zero_grad()
        loss.backward()
        return loss, logits
    return compile_function(forward_backward)


def _check_int(name, value, fn, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        need = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{fn}: {name} must be {need}, got {value!r}")
    return int(value)


def evaluate(model, X, y=None, loss_fn=F.cross_entropy, batch_size=1000, device="cpu"):
    """(mean loss, accuracy) of ``model`` on arrays ``X, y`` (or, with ``y`` None, on anything a
    DataLoader accepts, such as ``mnist_split("test")``), in evaluation mode, without a tape."""
    batch_size = _check_int("batch_size", batch_size, "evaluate")
    device = check_device(device)
    loader = DataLoader(X, y, batch_size=batch_size)
    if loader._single:
        raise TypeError("evaluate: needs targets: pass X, y, or (X, y), or a Dataset of pairs")
    total_loss, correct, count = _evaluate_sums(model, loader, loss_fn, device)
    return total_loss / max(count, 1), correct / max(count, 1)


def _evaluate_sums(model, loader, loss_fn, device):
    """(summed loss, number correct, count) over ``loader``, in evaluation mode."""
    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    try:
        with no_grad():
            for xb, yb in loader:
                xb, yb = xb.to(device), yb.to(device)
                logits = model(xb)
                total_loss += loss_fn(logits, yb, reduction="sum").item()
                correct += int((logits.data.argmax(axis=1) == yb.data).sum())
                count += len(yb)
    finally:
        model.train(was_training)
    return total_loss, correct, count


class History:
    """What happened in each epoch: a list of dicts with keys epoch, seconds, lr, train_loss,
    train_acc, valid_loss, valid_acc. ``history["valid_acc"]`` gives one column."""

    def __init__(self, records=None):
        self.records = list(records or [])

    def append(self, record):
        self.records.append(dict(record))

    def __getitem__(self, key):
        return [r.get(key) for r in self.records]

    def __len__(self):
        return len(self.records)

    def best(self, key="valid_loss", mode="min"):
        """The record with the best value of ``key``."""
        pick = min if mode == "min" else max
        return pick((r for r in self.records if r.get(key) is not None), key=lambda r: r[key])

    def plot(self, path):
        """Save learning curves (loss and accuracy per epoch) as a PNG; needs matplotlib."""
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as e:
            raise ImportError("History.plot needs matplotlib: pip install 'tinygrad_edu[plot]'") from e
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        for split in ("train", "valid"):
            if any(v is not None for v in self[f"{split}_loss"]):
                ax1.plot(self["epoch"], self[f"{split}_loss"], marker="o", label=split)
                ax2.plot(self["epoch"], self[f"{split}_acc"], marker="o", label=split)
        ax1.set(xlabel="epoch", ylabel="loss", title="loss")
        ax2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
        for ax in (ax1, ax2):
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path


HEADER = f"{'epoch':>5} {'seconds':>8} {'train loss':>11} {'train acc':>10} {'valid loss':>11} {'valid acc':>10}"


def _row(r):
    def fmt(v, spec):
        return format(v, spec) if v is not None else "-"
    return (f"{r['epoch']:>5} {r['seconds']:>8.1f} {fmt(r['train_loss'], '>11.4f')} "
            f"{fmt(r['train_acc'], '>10.2%')} {fmt(r['valid_loss'], '>11.4f')} "
            f"{fmt(r['valid_acc'], '>10.2%')}")


def _pairs(data, what):
    """A DataLoader over ``data`` (checked now, not after an epoch), which must give pairs."""
    loader = DataLoader(data, batch_size=1)
    if loader._single:
        raise TypeError(f"fit: {what} must give (input, target) pairs: (X, y), an MNIST split or "
                        f"a Dataset of pairs; got one array, of shape "
                        f"{tuple(loader.dataset.tensors[0].shape)}")
    return loader.dataset


def _prepare_directory(path):
    """Make the checkpoint's folder (missing folders are created, as ``mkdir -p`` would) and
    check that a file can be written there, so a bad path fails now, not after an epoch."""
    if os.path.isdir(path):
        raise ValueError(f"fit: checkpoint {path!r} is a directory; give a file name in it")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as e:
        raise OSError(f"fit: cannot write the checkpoint {path!r}: {e.strerror or e} "
                      f"({directory!r})") from e


def _check_scheduler_state(scheduler, optimizer, sd):
    validate = getattr(scheduler, "_validate_state_dict", None)
    if validate is not None:
        return validate(sd)
    # the checks of LRScheduler.load_state_dict, made before anything is loaded
    if not isinstance(sd, dict) or not set(sd) <= set(scheduler.state_dict()) \
            or len(sd.get("base_lrs", ())) != len(optimizer.param_groups):
        raise ValueError(f"the scheduler part does not fit this {type(scheduler).__name__}")


# what fit writes; "epoch" and "rng" came later, so a checkpoint without them still resumes
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "history", "best_loss", "best_state",
                   "best_epoch")


def _check_checkpoint(state, path, model, optimizer, scheduler):
    """Check every part of a checkpoint written by :func:`fit` against this model, optimizer and
    scheduler, changing nothing; raise ValueError naming the part that is missing or wrong."""
    def bad(message):
        return ValueError(f"fit: cannot resume from {path!r}: {message}")
    if not isinstance(state, dict):
        raise bad(f"it holds a {type(state).__name__}, not a fit checkpoint")
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise bad("it has no " + ", ".join(map(repr, missing)) + " part (it holds "
                  + ", ".join(map(repr, state)) + "); was it written by fit?")
    history = state["history"]
    if not isinstance(history, list) or not all(isinstance(r, dict) for r in history) \
            or [r.get("epoch") for r in history] != list(range(1, len(history) + 1)):
        raise bad("'history' is not the list of records of epochs 1, 2, ...")
    if state.get("epoch", len(history)) != len(history):
        raise bad(f"'epoch' is {state['epoch']!r} but the history has {len(history)} epochs")
    if not isinstance(state["best_epoch"], int) or not 0 <= state["best_epoch"] <= len(history) \
            or not isinstance(state["best_loss"], (int, float)):
        raise bad("'best_epoch' or 'best_loss' is not a number of this run")
    if (scheduler is None) != (state["scheduler"] is None):
        raise bad("the checkpoint has " + ("no" if state["scheduler"] is None else "a")
                  + " scheduler part, but fit was given " + ("one" if scheduler else "none"))
    parts = [("model", model._validate_state_dict, state["model"]),
             ("best_state", model._validate_state_dict, state["best_state"]),
             ("optimizer", optimizer._validate_state_dict, state["optimizer"]),
             ("scheduler", lambda sd: _check_scheduler_state(scheduler, optimizer, sd),
              state["scheduler"]),
             ("rng", _parse_rng_state, state.get("rng"))]
    for part, check, value in parts:
        if value is not None:
            try:
                check(value)
            except (TypeError, ValueError) as e:
                raise bad(f"its {part!r} part is wrong: {e}") from e


def fit(model, optimizer, train, valid=None, *, epochs=10, batch_size=128, loss_fn=F.cross_entropy,
        scheduler=None, patience=None, checkpoint=None, resume=False, transform=None, seed=0,
        device="cpu", progress=True, verbose=True, compile=False):
    """Train ``model`` on ``train`` for ``epochs`` epochs; returns a :class:`History`.

    * ``train``, ``valid``: ``(X, y)`` arrays, an MNIST split, or a Dataset of pairs. ``valid``
      is evaluated after each epoch; with ``patience=k`` training stops after k epochs without
      a lower validation loss, and the best parameters are put back.
    * ``checkpoint=path``: model, optimizer, scheduler, history, early-stopping state, epoch
      and random state are saved there after every epoch (atomically, via ``tg.save``); missing
      folders are created, and a path that cannot be written is an error before training.
      ``resume=True`` continues from it (or starts afresh when the file does not exist yet);
      the whole checkpoint is checked before the model or optimizer is touched.
      Each epoch reseeds the shuffling and ``tg.manual_seed(seed + epoch)``, so a resumed run
      repeats exactly what the uninterrupted one would have done; the random state is
      restored too, so after fit it is what the uninterrupted run would leave.
    * ``transform``: applied to each training batch of images (e.g. random shifts).
    * ``progress``: a tqdm bar on a terminal; in a log file, a few plain lines per epoch.
    * ``compile=True``: each batch's forward and backward is replayed from a program recorded
      on the first batch (:func:`tinygrad_edu.compile`); the parameters follow the same path,
      bit for bit, as without it.

    A loss that becomes NaN or inf raises FloatingPointError before the step (see
    :func:`train_epoch`); the checkpoint then holds the last epoch that finished.

    Under ``mpiexec -n p`` (:mod:`tinygrad_edu.distributed`, p > 1): ``model`` may be a plain
    Module (fit wraps it in a DistributedDataParallel, so rank 0's weights start on every rank)
    or a DistributedDataParallel already. ``batch_size`` stays the global batch: each rank
    takes ``batch_size / p`` samples of it (p must divide it) from its DistributedSampler shard
    (seed ``seed``, epoch ``epoch``), and the gradients are averaged after every backward, so
    the step is that of one process on the whole batch. Training and validation figures are
    combined over the ranks (validation weighted by each rank's count) in the same order on
    every rank, so the early-stopping decision is the same everywhere. Only rank 0 prints,
    draws the bars and writes the checkpoint; the others wait for it (an error writing it is
    raised on every rank). The checkpoint is the plain module's and optimizer's state, the same
    on all ranks, so a run resumes with any number of ranks.
    """
    epochs = _check_int("epochs", epochs, "fit", minimum=0)
    batch_size = _check_int("batch_size", batch_size, "fit")
    seed = _check_int("seed", seed, "fit", minimum=0)
    if patience is not None:
        patience = _check_int("patience", patience, "fit")
        if valid is None:
            raise ValueError("fit: early stopping (patience) needs a validation set")
    if resume and not checkpoint:
        raise ValueError("fit: resume=True needs checkpoint=path, the file to resume from")
    if not callable(loss_fn):
        raise TypeError(f"fit: loss_fn must be callable, got {loss_fn!r}")
    if transform is not None and not callable(transform):
        raise TypeError(f"fit: transform must be callable, got {transform!r}")
    device = check_device(device)
    ranks, rank = dist.world_size(), dist.rank()
    if batch_size % ranks:
        raise ValueError(f"fit: batch_size {batch_size} (the global batch) must be a multiple "
                         f"of the number of ranks, {ranks}")
    train_set = _pairs(train, "train")
    valid_set = None if valid is None else _pairs(valid, "valid")
    checkpoint = None if checkpoint is None else os.fspath(checkpoint)

    history, start_epoch = History(), 1
    best = {"loss": float("inf"), "state": None, "epoch": 0}
    state = None
    if resume and os.path.exists(checkpoint):
        state = load(checkpoint)
        _check_checkpoint(state, checkpoint, model, optimizer, scheduler)
    if checkpoint:
        _on_rank0(_prepare_directory, checkpoint)
    net = model
    if ranks > 1:
        if isinstance(model, dist.DistributedDataParallel):
            model = model.module
        else:
            net = dist.DistributedDataParallel(model)
        verbose = verbose and rank == 0
    # ---- from here on, things change
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        model.load_state_dict(state["model"])
        if state.get("rng") is not None:
            set_rng_state(state["rng"])
        history = History(state["history"])
        best = {"loss": state["best_loss"], "state": state["best_state"],
                "epoch": state["best_epoch"]}
        start_epoch = len(history) + 1
        if verbose:
            print(f"resumed from {checkpoint} after epoch {start_epoch - 1}")
    if verbose:
        print(HEADER)
        for r in history.records:
            print(_row(r))
    step = compile_step(net, optimizer, loss_fn) if compile else False  # one for all epochs
    for epoch in range(start_epoch, epochs + 1):
        if patience is not None and (epoch - 1) - best["epoch"] >= patience:
            break  # `patience` epochs in a row without a better validation loss
        manual_seed(seed + epoch)
        if ranks == 1:
            loader = DataLoader(train_set, batch_size=batch_size, shuffle=True,
                                seed=seed + epoch, transform=transform)
        else:
            sampler = dist.DistributedSampler(len(train_set), ranks, rank, seed=seed)
            sampler.set_epoch(epoch)
            loader = DataLoader(train_set, batch_size=batch_size // ranks, sampler=sampler,
                                seed=np.random.default_rng([seed + epoch, rank]),
                                transform=transform)
        t0 = time.perf_counter()
        train_loss, train_acc = train_epoch(net, optimizer, loader, loss_fn, device,
                                            progress and verbose, desc=f"epoch {epoch}",
                                            compile=step)
        seconds = time.perf_counter() - t0
        if ranks > 1:  # equal shards (the sampler pads): the mean over ranks is the epoch's
            figures = dist._comm().allgather((train_loss, train_acc))
            train_loss = sum(f[0] for f in figures) / ranks
            train_acc = sum(f[1] for f in figures) / ranks
        valid_loss = valid_acc = None
        if valid is not None and ranks == 1:
            valid_loss, valid_acc = evaluate(model, valid_set, loss_fn=loss_fn, device=device)
        elif valid is not None:
            shard = DataLoader(valid_set, batch_size=1000,
                               sampler=range(rank, len(valid_set), ranks))
            sums = dist._comm().allgather(_evaluate_sums(model, shard, loss_fn, device))
            count = max(sum(c for _, _, c in sums), 1)
            valid_loss = sum(v for v, _, _ in sums) / count
            valid_acc = sum(c for _, c, _ in sums) / count
        record = dict(epoch=epoch, seconds=seconds, lr=optimizer.param_groups[0]["lr"],
                      train_loss=train_loss, train_acc=train_acc,
                      valid_loss=valid_loss, valid_acc=valid_acc)
        history.append(record)
        if verbose:
            print(_row(record), flush=True)
        if scheduler is not None:
            scheduler.step()
        if valid_loss is not None and valid_loss < best["loss"]:
            best = {"loss": valid_loss, "state": model.state_dict(), "epoch": epoch}
        if checkpoint:
            try:
                rng = get_rng_state()
            except NotImplementedError:  # a GPU generator whose state CuPy does not expose:
                rng = None               # the per-epoch reseeding still makes resuming exact
            _on_rank0(save, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scheduler": None if scheduler is None else scheduler.state_dict(),
                             "history": history.records, "best_loss": best["loss"],
                             "best_state": best["state"], "best_epoch": best["epoch"],
                             "epoch": epoch, "rng": rng}, checkpoint)
    if patience is not None and best["state"] is not None:
        model.load_state_dict(best["state"])
        if verbose and best["epoch"] != len(history):
            print(f"early stopping: restored the parameters of epoch {best['epoch']}")
    return history


def _on_rank0(fn, *args):
    """``fn(*args)`` on rank 0 only (writing the checkpoint); the other ranks wait for it, and
    if it raised, every rank raises the same error (no rank is left waiting in a collective)."""
    error = None
    if dist.rank() == 0:
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 -- passed on to every rank below
            error = e
    if dist.world_size() > 1:
        error = dist.broadcast_object(error)
    if error is not None:
        raise error


def accuracy(model, X, y=None, device="cpu"):
    """Fraction of correctly classified examples."""
    return evaluate(model, X, y, device=device)[1]


__all__ = ["fit", "train_epoch", "evaluate", "accuracy", "History"]
