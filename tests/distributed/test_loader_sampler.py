"""DataLoader(sampler=...): PyTorch's argument, e.g. a DistributedSampler's shard (no MPI)."""
import numpy as np
import pytest

from tinygrad_edu.data import DataLoader
from tinygrad_edu.distributed import DistributedSampler

X = np.arange(20, dtype=np.float32).reshape(10, 2)
Y = np.arange(10)


def labels(loader):
    return [int(v) for _, yb in loader for v in yb.numpy()]


def test_the_loader_follows_the_sampler_and_counts_its_indices():
    shards = [DistributedSampler(10, num_replicas=3, rank=r, seed=1) for r in range(3)]
    loaders = [DataLoader(X, Y, batch_size=2, sampler=s) for s in shards]
    assert [len(d) for d in loaders] == [2, 2, 2]            # ceil(10 / 3) = 4 samples each
    got = [labels(d) for d in loaders]
    assert got == [list(s) for s in shards]
    assert set(sum(got, [])) == set(range(10))
    shards[0].set_epoch(1)                                    # a new epoch: a new order
    assert labels(loaders[0]) == list(shards[0]) != got[0]


def test_a_loader_with_a_sampler_resumes_mid_epoch():
    sampler = DistributedSampler(10, num_replicas=2, rank=1, seed=4)
    a = DataLoader(X, Y, batch_size=2, sampler=sampler)
    it = iter(a)
    first = [int(v) for v in next(it)[1].numpy()]
    b = DataLoader(X, Y, batch_size=2, sampler=sampler)
    b.load_state_dict(a.state_dict())
    assert first + labels(b) == list(sampler)


def test_sampler_and_shuffle_are_exclusive_and_a_sampler_is_checked():
    with pytest.raises(ValueError, match="sampler option is mutually exclusive with shuffle"):
        DataLoader(X, Y, shuffle=True, sampler=range(10))
    with pytest.raises(TypeError, match="sampler must be an iterable of indices with a len, "
                       "got int"):
        DataLoader(X, Y, sampler=3)
    with pytest.raises(IndexError, match="the sampler gave index 12 for a dataset of 10"):
        list(DataLoader(X, Y, sampler=[0, 12]))
