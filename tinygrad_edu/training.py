"""The tutorials' training loop, made reusable: a few plain functions, not a framework.

    history = fit(model, optimizer, (X_train, y_train), (X_valid, y_valid), epochs=20)

One epoch = shuffle, then for each mini-batch: forward, loss, zero_grad, backward, step. After
each epoch the model is evaluated on the validation set, a line of the classic table is printed
(epoch, seconds, train loss/accuracy, validation loss/accuracy), a checkpoint is written, and
early stopping decides whether to go on. Read :func:`train_epoch` first: it is the whole idea.
"""
import math
import os
import time

from . import nn
from .creation import manual_seed
from .data import DataLoader
from .serialization import load, save
from .tensor import Tensor, no_grad

F = nn.functional


def _progress(iterable, total, desc, enabled):
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a dependency, but the loop must not need it
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)


def train_epoch(model, optimizer, loader, loss_fn=F.cross_entropy, device="cpu", progress=False,
                desc="train"):
    """One pass over ``loader``; returns (mean loss, accuracy) over the batches seen."""
    model.train()
    total_loss, correct, count = 0.0, 0, 0
    bar = _progress(loader, len(loader), desc, progress)
    for xb, yb in bar:
        x, y = Tensor(xb, device=device), Tensor(yb, device=device)
        logits = model(x)
        loss = loss_fn(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"training loss became {value}; lower the learning rate")
        total_loss += value * len(yb)
        correct += int((logits.data.argmax(axis=1) == y.data).sum())
        count += len(yb)
        if bar is not loader:
            bar.set_postfix(loss=f"{total_loss / count:.4f}")
    return total_loss / max(count, 1), correct / max(count, 1)


def evaluate(model, X, y, loss_fn=F.cross_entropy, batch_size=1000, device="cpu"):
    """(mean loss, accuracy) of ``model`` on arrays X, y, in evaluation mode, without a tape."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    with no_grad():
        for start in range(0, len(X), batch_size):
            xb = Tensor(X[start:start + batch_size], device=device)
            yb = Tensor(y[start:start + batch_size], device=device)
            logits = model(xb)
            total_loss += loss_fn(logits, yb, reduction="sum").item()
            correct += int((logits.data.argmax(axis=1) == yb.data).sum())
    model.train(was_training)
    return total_loss / max(len(X), 1), correct / max(len(X), 1)


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


def fit(model, optimizer, train, valid=None, *, epochs=10, batch_size=128, loss_fn=F.cross_entropy,
        scheduler=None, patience=None, checkpoint=None, resume=False, transform=None, seed=0,
        device="cpu", progress=True, verbose=True):
    """Train ``model`` on ``train = (X, y)`` for ``epochs`` epochs; returns a :class:`History`.

    * ``valid=(X, y)``: evaluated after each epoch; with ``patience=k`` training stops after k
      epochs without a lower validation loss, and the best parameters are put back.
    * ``checkpoint=path``: model, optimizer, scheduler, history and early-stopping state are saved
      there after every epoch (atomically, via ``tg.save``); ``resume=True`` continues from it.
      Each epoch reseeds the shuffling and ``tg.manual_seed(seed + epoch)``, so a resumed run
      repeats exactly what the uninterrupted one would have done.
    * ``transform``: applied to each training batch of images (e.g. random shifts).
    """
    if patience is not None and valid is None:
        raise ValueError("fit: early stopping (patience) needs a validation set")
    X, y = train
    history, start_epoch = History(), 1
    best = {"loss": float("inf"), "state": None, "epoch": 0}
    if resume and checkpoint and os.path.exists(checkpoint):
        state = load(checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        history = History(state["history"])
        best = {"loss": state["best_loss"], "state": state["best_state"], "epoch": state["best_epoch"]}
        start_epoch = len(history) + 1
        if verbose:
            print(f"resumed from {checkpoint} after epoch {start_epoch - 1}")
    if verbose:
        print(HEADER)
        for r in history.records:
            print(_row(r))
    for epoch in range(start_epoch, epochs + 1):
        if patience is not None and (epoch - 1) - best["epoch"] >= patience:
            break  # `patience` epochs in a row without a better validation loss
        manual_seed(seed + epoch)
        loader = DataLoader(X, y, batch_size=batch_size, shuffle=True, seed=seed + epoch,
                            transform=transform)
        t0 = time.perf_counter()
        train_loss, train_acc = train_epoch(model, optimizer, loader, loss_fn, device,
                                            progress and verbose, desc=f"epoch {epoch}")
        seconds = time.perf_counter() - t0
        valid_loss = valid_acc = None
        if valid is not None:
            valid_loss, valid_acc = evaluate(model, *valid, loss_fn=loss_fn, device=device)
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
            save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                  "scheduler": None if scheduler is None else scheduler.state_dict(),
                  "history": history.records, "best_loss": best["loss"],
                  "best_state": best["state"], "best_epoch": best["epoch"]}, checkpoint)
    if patience is not None and best["state"] is not None:
        model.load_state_dict(best["state"])
        if verbose and best["epoch"] != len(history):
            print(f"early stopping: restored the parameters of epoch {best['epoch']}")
    return history


def accuracy(model, X, y, device="cpu"):
    """Fraction of correctly classified examples."""
    return evaluate(model, X, y, device=device)[1]


__all__ = ["fit", "train_epoch", "evaluate", "accuracy", "History"]
