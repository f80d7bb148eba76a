"""Datasets and the DataLoader: mini-batches of Tensors.

A ``DataLoader`` cuts a dataset into mini-batches of **Tensors**, as PyTorch's does:

    loader = DataLoader(mnist_split("train"), batch_size=128, shuffle=True, transform=random_shift)
    for xb, yb in loader:                  # Tensors; a new order every epoch
        loss = F.cross_entropy(model(xb), yb)

It accepts arrays ``X, y`` (NumPy, CuPy or Tensors; ``X`` alone gives batches ``xb``), a tuple of
arrays such as an MNIST split ``(X, y)``, or any :class:`Dataset` (an object with ``__len__`` and
``__getitem__``, e.g. :class:`TensorDataset`). Each batch is a fresh array (never a view of the
caller's data) wrapped without a second copy, on the device the data are on.
"""
import copy
import math
from collections.abc import Mapping

import numpy as np

from ..backend import get_xp
from ..creation import generator as _engine_generator
from ..tensor import Tensor


def _generator(seed) -> np.random.Generator:
    """A Generator from an int seed or None (fresh entropy); a Generator is used as it is."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _wrap(array):
    """A Tensor around an array made here (a fresh batch): no copy."""
    if isinstance(array, Tensor):
        return array
    if not hasattr(array, "dtype"):
        raise TypeError(f"DataLoader: the transform returned a {type(array).__name__}; it must "
                        "return an array")
    if isinstance(array, np.ndarray) and type(array) is not np.ndarray:
        array = array.view(np.ndarray)  # np.memmap and other subclasses: a plain array, no copy
    if array.dtype.kind not in "fiub":
        raise TypeError(f"DataLoader: a batch of dtype {array.dtype} cannot become a Tensor")
    return Tensor._wrap(array)


# ---- datasets ------------------------------------------------------------------------------------
class Dataset:
    """A map-style dataset, as in PyTorch: ``len(ds)`` samples, ``ds[i]`` the i-th one (an array,
    a number, or a tuple of those such as ``(image, label)``). Subclass it and write the two
    methods; a ``DataLoader`` stacks the samples of a batch field by field."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index):
        raise NotImplementedError


class TensorDataset(Dataset):
    """Samples ``(a[i], b[i], ...)`` of arrays (or Tensors) with the same first dimension.

    The arrays are kept, not copied. ``ds[i]`` gives a tuple of Tensors (copies of the rows);
    a ``DataLoader`` takes whole batches at once, ``a[indices]`` for each array.
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: give at least one array")
        arrays = []
        for i, t in enumerate(tensors):
            a = t.data if isinstance(t, Tensor) else t
            if isinstance(a, (list, tuple)) or isinstance(a, np.generic):
                a = np.asarray(a)
            if not hasattr(a, "shape") or not hasattr(a, "dtype"):
                raise TypeError(f"TensorDataset: argument {i} is a {type(t).__name__}; expected "
                                "an array (NumPy or CuPy), a Tensor or a list of numbers")
            if a.ndim == 0:
                raise ValueError(f"TensorDataset: argument {i} is 0-d; each array needs a first "
                                 "(sample) axis")
            if a.dtype.kind not in "fiub":
                raise TypeError(f"TensorDataset: argument {i} has dtype {a.dtype}; a Tensor holds "
                                "numbers or bools")
            arrays.append(a)
        lengths = [len(a) for a in arrays]
        if len(set(lengths)) > 1:
            raise ValueError("TensorDataset: the arrays must have the same first dimension, got "
                             + ", ".join(map(str, lengths)))
        self.tensors = tuple(arrays)

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index):
        return tuple(Tensor(a[index]) for a in self.tensors)

    def _batch(self, indices):
        """The rows ``indices`` of every array: copies, by fancy indexing."""
        return tuple(a[indices] for a in self.tensors)


def _collate(samples):
    """Stack a list of samples into one array per field (samples that are tuples: a tuple)."""
    first = samples[0]
    if isinstance(first, tuple):
        return tuple(_collate([s[i] for s in samples]) for i in range(len(first)))
    values = [s.data if isinstance(s, Tensor) else s for s in samples]
    xp = get_xp(values[0]) if hasattr(values[0], "__cuda_array_interface__") else np
    return xp.stack([xp.asarray(v) for v in values])


_ACCEPTS = ("a Dataset (an object with __len__ and __getitem__, such as TensorDataset), arrays "
            "X[, y] (NumPy, CuPy or Tensors), or a tuple of arrays such as mnist_split('train')")


def _as_dataset(data, y):
    """(dataset, single) for what DataLoader was given; ``single``: batches are ``xb``, not
    1-tuples (``DataLoader(X)`` as before, where ``TensorDataset(X)`` gives ``(xb,)``)."""
    if isinstance(data, tuple) and y is None and data and all(
            isinstance(a, Tensor) or hasattr(a, "shape") for a in data):
        return TensorDataset(*data), False  # (X, y), an MNIST Split: the fields, zipped
    if isinstance(data, (list, tuple, np.generic)):  # Python data, as np.asarray reads it
        try:
            data = np.asarray(data)
        except ValueError as e:
            raise ValueError(f"DataLoader: cannot make an array of the data given ({e})") from None
    if isinstance(data, (Tensor, np.ndarray)) or hasattr(data, "__cuda_array_interface__"):
        if data.ndim == 0:
            raise ValueError("DataLoader: X must have a first (sample) axis, got a 0-d array")
        if y is None:
            return TensorDataset(data), True
        if isinstance(y, (Tensor, np.ndarray, list, tuple)) or hasattr(y, "shape"):
            if len(y) != len(data):
                raise ValueError(f"DataLoader: X has {len(data)} samples but y has {len(y)}")
            return TensorDataset(data, y), False
        raise TypeError(f"DataLoader: y must be an array like X, got a {type(y).__name__}")
    if isinstance(data, (str, bytes, Mapping, set)) or not (
            hasattr(data, "__len__") and hasattr(data, "__getitem__")):
        raise TypeError(f"DataLoader: cannot load batches from a {type(data).__name__}; "
                        f"expected {_ACCEPTS}")
    if y is not None:
        hint = f" (did you mean batch_size={y}?)" if isinstance(y, int) else ""
        raise TypeError(f"DataLoader: y is for arrays X, y only; a {type(data).__name__} holds its "
                        f"own labels{hint}")
    return data, False


# ---- batches -------------------------------------------------------------------------------------
class DataLoader:
    """Mini-batches of Tensors from a dataset: ``(xb, yb)`` for ``X, y`` or ``(X, y)``, ``xb``
    for ``X`` alone, one Tensor per field for a :class:`Dataset` whose samples are tuples.

    * ``dataset``: see the module docstring for what is accepted; anything else is a TypeError.
    * ``shuffle``: each epoch (each ``iter``) draws a new permutation of the N samples, so every
      sample appears exactly once per epoch. It comes from the loader's own
      ``numpy.random.Generator`` when ``seed`` is given (an int or a Generator, used as it is),
      so a seed gives the same sequence of epochs; without a seed, each epoch draws its seed
      from the engine's CPU generator (as PyTorch's loader does from ``torch``'s), so
      ``tg.manual_seed`` and ``tg.get_rng_state`` cover the shuffling too.
    * ``drop_last``: skip the last batch when it holds fewer than ``batch_size`` samples, so
      ``len(loader) = N // batch_size``; otherwise ``ceil(N / batch_size)``.
    * ``transform``: called as ``transform(xb, rng=generator)`` on the array of each batch's first
      field (the images), before it becomes a Tensor, with the epoch's generator so random
      augmentation is reproducible too; e.g. :func:`random_shift`, or
      ``functools.partial(random_shift, max_shift=3)``.
    * ``sampler``: PyTorch's argument, an iterable of sample indices with a ``len`` (e.g.
      :class:`tinygrad_edu.distributed.DistributedSampler`, one rank's shard); each epoch
      takes its order from ``iter(sampler)``. Mutually exclusive with ``shuffle`` (as in
      PyTorch: the sampler decides the order); ``len(loader)`` counts the sampler's indices.

    Batches are fresh arrays (``X[indices]``), so a transform may modify them in place.

    ``state_dict()`` records where the loader is: its generator, and, in the middle of an epoch,
    the generator's state when the epoch began (to draw the same permutation again), its state
    now, and how many batches were taken. After ``load_state_dict(state)`` the next ``iter``
    yields the rest of that epoch, exactly as the interrupted one would have; later ones are
    new epochs. (Load before iterating; a loader being iterated is not rewound.)
    """

    def __init__(self, dataset, y=None, batch_size: int = 128, shuffle: bool = False, seed=None,
                 drop_last: bool = False, transform=None, sampler=None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, "
                             f"got {batch_size!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable, got {transform!r}")
        if sampler is not None:
            if shuffle:
                raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle "
                                 "(the sampler gives the order)")
            if not (hasattr(sampler, "__iter__") and hasattr(sampler, "__len__")):
                raise TypeError(f"DataLoader: sampler must be an iterable of indices with a len, "
                                f"got {type(sampler).__name__}")
        self.dataset, self._single = _as_dataset(dataset, y)
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.shuffle, self.drop_last, self.transform = bool(shuffle), bool(drop_last), transform
        self.rng = None if seed is None else _generator(seed)  # None: draw from the engine
        self._epoch = None   # the epoch being iterated: {"rng", "start", "batches"}
        self._resume = None  # an epoch to finish, set by load_state_dict

    def _num_samples(self) -> int:
        return len(self.dataset) if self.sampler is None else len(self.sampler)

    def _order(self, rng):
        if self.sampler is None:
            return rng.permutation(len(self.dataset)) if self.shuffle \
                else np.arange(len(self.dataset))
        order = np.asarray(list(self.sampler), dtype=np.int64).reshape(-1)
        n = len(self.dataset)
        bad = order[(order < 0) | (order >= n)]
        if bad.size:
            raise IndexError(f"DataLoader: the sampler gave index {int(bad[0])} for a dataset "
                             f"of {n} samples")
        return order

    def __len__(self) -> int:
        n = self._num_samples()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _epoch_generator(self):
        if self.rng is not None:
            return self.rng
        if not self.shuffle and self.transform is None:
            return None  # nothing random: leave the engine's generator alone
        return np.random.default_rng(int(_engine_generator("cpu").integers(2 ** 63)))

    def __iter__(self):
        resume, self._resume = self._resume, None
        if resume is None:
            rng, first = self._epoch_generator(), 0
            start = None if rng is None else copy.deepcopy(rng.bit_generator.state)
        else:
            start, first = resume["start"], resume["batches"]
            rng = None if start is None else (self.rng if self.rng is not None
                                              else np.random.default_rng())
            if rng is not None:
                rng.bit_generator.state = start
        order = self._order(rng)
        if resume is not None and rng is not None:
            rng.bit_generator.state = resume["now"]
        epoch = self._epoch = {"rng": rng, "start": start, "batches": first}
        for b in range(first, len(self)):
            batch = self._fetch(order[b * self.batch_size:(b + 1) * self.batch_size], rng)
            epoch["batches"] = b + 1  # counted before the yield: state_dict() may come next
            yield batch
        if self._epoch is epoch:
            self._epoch = None

    def _fetch(self, idx, rng):
        if hasattr(self.dataset, "_batch"):
            fields = self.dataset._batch(idx)
        else:
            fields = _collate([self.dataset[int(i)] for i in idx])
        single = not isinstance(fields, tuple)
        fields = [fields] if single else list(fields)
        if self.transform is not None:
            fields[0] = self.transform(fields[0], rng=rng)
        tensors = tuple(_wrap(f) for f in fields)
        return tensors[0] if single or self._single else tensors

    # ---- saving and resuming ------------------------------------------------------------------
    def state_dict(self):
        """Where the loader is (plain dicts, ints and arrays, so ``tg.save`` can store it)."""
        epoch = self._resume
        if epoch is None and self._epoch is not None:
            e = self._epoch
            now = None if e["rng"] is None else e["rng"].bit_generator.state
            epoch = {"start": e["start"], "now": now, "batches": e["batches"]}
        return {"num_samples": self._num_samples(), "batch_size": self.batch_size,
                "shuffle": self.shuffle, "drop_last": self.drop_last,
                "rng": None if self.rng is None else copy.deepcopy(self.rng.bit_generator.state),
                "epoch": copy.deepcopy(epoch)}

    def load_state_dict(self, state):
        """Continue from ``state_dict()``: checked whole first; a mismatch (another dataset size,
        batch size, shuffle or drop_last, seeded or not) raises ValueError and changes nothing."""
        name = "DataLoader.load_state_dict"
        keys = {"num_samples", "batch_size", "shuffle", "drop_last", "rng", "epoch"}
        if not isinstance(state, dict) or set(state) != keys:
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"{name}: expected a dict with keys {sorted(keys)}, got {got}")
        ours = self.state_dict()
        for k in ("num_samples", "batch_size", "shuffle", "drop_last"):
            if state[k] != ours[k]:
                raise ValueError(f"{name}: the state has {k}={state[k]!r}, this loader "
                                 f"{k}={ours[k]!r}")
        if (state["rng"] is None) != (self.rng is None):
            have = "its own generator (a seed)" if self.rng is not None else "no seed of its own"
            was = "without" if state["rng"] is None else "with"
            raise ValueError(f"{name}: the state is of a loader {was} a seed; this loader has "
                             f"{have}")
        states = [state["rng"]] if state["rng"] is not None else []
        epoch = state["epoch"]
        if epoch is not None:
            if not isinstance(epoch, dict) or set(epoch) != {"start", "now", "batches"}:
                raise ValueError(f"{name}: 'epoch' must be None or a dict with keys 'batches', "
                                 "'now' and 'start'")
            batches = epoch["batches"]
            if isinstance(batches, bool) or not isinstance(batches, (int, np.integer)) \
                    or not 0 <= batches <= len(self):
                raise ValueError(f"{name}: 'batches' must be an int in [0, {len(self)}], got "
                                 f"{batches!r}")
            if (epoch["start"] is None) != (epoch["now"] is None):
                raise ValueError(f"{name}: 'start' and 'now' must both be states or both None")
            states += [s for s in (epoch["start"], epoch["now"]) if s is not None]
        kind = type(self.rng.bit_generator) if self.rng is not None else np.random.PCG64
        for s in states:  # try each state on a spare generator of our kind, before the real one
            try:
                kind().state = s
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{name}: not a valid {kind.__name__} state "
                                 f"({type(e).__name__}: {e})") from None
        if self.rng is not None:
            self.rng.bit_generator.state = state["rng"]
        self._resume = None if epoch is None else {**copy.deepcopy(epoch),
                                                   "batches": int(epoch["batches"])}
        self._epoch = None
