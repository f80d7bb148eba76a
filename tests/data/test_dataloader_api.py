"""The PyTorch-style data API: Dataset, TensorDataset, a DataLoader that yields fresh Tensors
from arrays, splits and datasets, and its state_dict for resuming in the middle of an epoch."""
import copy

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_edu as tg
from tinygrad_edu.creation import get_rng_state, manual_seed, set_rng_state
from tinygrad_edu.data import DataLoader, Dataset, TensorDataset
from tinygrad_edu.data import Split


def data(n=10):
    return np.arange(n * 3, dtype=np.float32).reshape(n, 3), np.arange(n)


# ---- what the loader yields --------------------------------------------------------------------
def test_batches_are_tensors_with_the_arrays_dtypes():
    X, y = data()
    xb, yb = next(iter(DataLoader(X, y, batch_size=4)))
    assert isinstance(xb, tg.Tensor) and isinstance(yb, tg.Tensor)
    assert xb.dtype == np.float32 and yb.dtype == np.int64 and xb.shape == (4, 3)
    np.testing.assert_array_equal(xb.numpy(), X[:4])
    xb = next(iter(DataLoader(tg.Tensor(X), batch_size=4)))  # Tensors in, X alone: xb only
    assert isinstance(xb, tg.Tensor) and xb.shape == (4, 3)


@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_are_fresh_not_views_of_the_callers_arrays(shuffle):
    X, y = data()
    X0 = X.copy()
    for xb, yb in DataLoader(X, y, batch_size=4, shuffle=shuffle, seed=0):
        assert not np.shares_memory(xb.numpy(), X) and not np.shares_memory(yb.numpy(), y)
        xb.data[...] = -1  # a batch may be changed in place ...
    np.testing.assert_array_equal(X, X0)  # ... without touching the data


def test_batches_are_wrapped_without_a_second_copy():
    made = []

    def keep(xb, rng):
        made.append(xb)
        return xb
    X, y = data()
    for xb, _ in DataLoader(X, y, batch_size=4, transform=keep):
        assert xb.data is made[-1]  # the array the loader made (and the transform saw)


def test_an_mnist_split_a_tuple_and_a_tensor_dataset_give_the_same_batches():
    X, y = data()
    batches = [list(DataLoader(d, batch_size=3, shuffle=True, seed=1))
               for d in (Split(X, y), (X, y), TensorDataset(X, y))]
    batches.append(list(DataLoader(X, y, batch_size=3, shuffle=True, seed=1)))
    for other in batches[1:]:
        for (xa, ya), (xb, yb) in zip(batches[0], other):
            np.testing.assert_array_equal(xa.numpy(), xb.numpy())
            np.testing.assert_array_equal(ya.numpy(), yb.numpy())


def test_tensor_dataset_items_and_one_array():
    X, y = data(5)
    ds = TensorDataset(X, tg.Tensor(y))
    assert len(ds) == 5
    x2, y2 = ds[2]
    assert isinstance(x2, tg.Tensor) and x2.tolist() == X[2].tolist() and y2.item() == 2
    x2.data[0] = 99.0
    assert X[2, 0] == 6.0  # items are copies
    (xb,), = list(DataLoader(TensorDataset(X), batch_size=5))  # a 1-tuple, as in PyTorch
    assert xb.shape == (5, 3)


def test_tensor_dataset_checks_its_arrays():
    with pytest.raises(ValueError, match="same first dimension, got 5, 4"):
        TensorDataset(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="argument 1 is 0-d"):
        TensorDataset(np.zeros(5), np.float32(1))
    with pytest.raises(TypeError, match="argument 0 has dtype <U1"):
        TensorDataset(np.array(list("abc")))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()


class Squares(Dataset):
    """A dataset written by hand: (x, x**2) samples, as arrays and Python numbers."""

    def __len__(self):
        return 7

    def __getitem__(self, i):
        return np.array([i, -i], np.float32), i * i


class Plain:
    """No base class: __len__ and __getitem__ are enough."""

    def __len__(self):
        return 3

    def __getitem__(self, i):
        return tg.Tensor([float(i)])


def test_a_dataset_of_samples_is_stacked_field_by_field():
    xb, yb = next(iter(DataLoader(Squares(), batch_size=4)))
    assert xb.dtype == np.float32 and xb.shape == (4, 2) and xb.tolist()[3] == [3.0, -3.0]
    assert yb.dtype == np.int64 and yb.tolist() == [0, 1, 4, 9]
    assert [b.tolist() for b in DataLoader(Plain(), batch_size=2)] == [[[0.0], [1.0]], [[2.0]]]
    shifted = next(iter(DataLoader(Squares(), batch_size=2, transform=lambda x, rng: x + 1)))[0]
    assert shifted.tolist() == [[1.0, 1.0], [2.0, 0.0]]  # the transform sees the first field


@pytest.mark.parametrize("thing, name", [
    ({"X": np.zeros(3)}, "dict"), ("images", "str"), (iter(range(3)), "range_iterator"),
    (42, "int"), (None, "NoneType"),
])
def test_anything_else_is_a_type_error_naming_it(thing, name):
    with pytest.raises(TypeError, match=f"cannot load batches from a {name}; expected a Dataset"):
        DataLoader(thing, batch_size=2)


def test_labels_next_to_a_dataset_are_refused():
    with pytest.raises(TypeError, match=r"Squares holds its own labels \(did you mean "
                                        r"batch_size=64\?\)"):
        DataLoader(Squares(), 64)


def test_a_transform_must_return_an_array():
    X, y = data()
    with pytest.raises(TypeError, match="transform returned a list"):
        next(iter(DataLoader(X, y, batch_size=2, transform=lambda x, rng: x.tolist())))


# ---- randomness and resuming ---------------------------------------------------------------------
def labels(batches):
    return [b[1].tolist() for b in batches]


def test_a_loader_without_a_seed_follows_the_engine_generator():
    X, y = data(20)
    manual_seed(5)
    first = labels(DataLoader(X, y, batch_size=6, shuffle=True))
    manual_seed(5)
    assert labels(DataLoader(X, y, batch_size=6, shuffle=True)) == first
    state = get_rng_state()
    loader = DataLoader(X, y, batch_size=6, shuffle=True)
    again = labels(loader)
    set_rng_state(state)
    assert labels(loader) == again != labels(loader)  # restored, then a new epoch
    manual_seed(5)
    before = get_rng_state()
    list(DataLoader(X, y, batch_size=6))  # nothing random: the engine's generator is untouched
    assert get_rng_state() == before


def noisy(xb, rng):
    return xb + rng.standard_normal(xb.shape).astype(xb.dtype)


@given(n=st.integers(1, 23), batch_size=st.integers(1, 8), drop_last=st.booleans(),
       seed=st.sampled_from([None, 3]), stop=st.integers(0, 30))
def test_resuming_mid_epoch_gives_the_same_batches(n, batch_size, drop_last, seed, stop):
    X, y = data(n)

    def loader():
        return DataLoader(X, y, batch_size=batch_size, shuffle=True, seed=seed,
                          drop_last=drop_last, transform=noisy)
    manual_seed(0)
    whole = loader()
    expected = [(xb.numpy(), yb.numpy()) for _ in range(2) for xb, yb in whole]
    manual_seed(0)
    first = loader()
    batches = iter(first)
    taken = [(xb.numpy(), yb.numpy()) for xb, yb in
             (next(batches) for _ in range(min(stop, len(first))))]
    saved = copy.deepcopy((first.state_dict(), get_rng_state()))
    manual_seed(99)  # a fresh start elsewhere: everything must come from the saved state
    second = loader()
    second.load_state_dict(saved[0])
    set_rng_state(saved[1])
    taken += [(xb.numpy(), yb.numpy()) for xb, yb in second]  # the rest of the epoch
    taken += [(xb.numpy(), yb.numpy()) for xb, yb in second]  # and a whole new one
    assert len(taken) == len(expected)
    for (xa, ya), (xb, yb) in zip(taken, expected):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_a_loader_state_survives_save_and_load(tmp_path):
    X, y = data(30)
    rng = np.random.Generator(np.random.MT19937(4))  # a state with an array in it
    loader = DataLoader(X, y, batch_size=4, shuffle=True, seed=rng, transform=noisy)
    it = iter(loader)
    next(it), next(it)
    tg.save(loader.state_dict(), tmp_path / "loader.tg")
    rest = [yb.tolist() for _, yb in it]
    other = DataLoader(X, y, batch_size=4, shuffle=True, seed=np.random.Generator(
        np.random.MT19937(0)), transform=noisy)
    other.load_state_dict(tg.load(tmp_path / "loader.tg"))
    assert [yb.tolist() for _, yb in other] == rest


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update(batch_size=5), "batch_size=5, this loader batch_size=4"),
    (lambda s: s.update(num_samples=11), "num_samples=11"),
    (lambda s: s.update(shuffle=False), "shuffle=False"),
    (lambda s: s.update(rng=None), "loader without a seed; this loader has its own generator"),
    (lambda s: s["epoch"].update(batches=9), r"'batches' must be an int in \[0, 3\], got 9"),
    (lambda s: s["epoch"].update(now={"bit_generator": "PCG64"}), "not a valid PCG64 state"),
    (lambda s: s.pop("epoch"), "expected a dict with keys"),
])
def test_a_bad_loader_state_changes_nothing(change, message):
    X, y = data()
    source = DataLoader(X, y, batch_size=4, shuffle=True, seed=1)
    next(iter(source))
    state = source.state_dict()
    change(state)
    loader, twin = (DataLoader(X, y, batch_size=4, shuffle=True, seed=2) for _ in range(2))
    before = loader.state_dict()
    with pytest.raises(ValueError, match=message):
        loader.load_state_dict(state)
    assert loader.state_dict() == before
    assert labels(loader) == labels(twin)
