"""Data parallelism under ``mpiexec -n 2``, launched as subprocesses with a timeout (a hang
fails the test instead of blocking CI), and the parts that need no MPI, in process."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_edu as tg
from tinygrad_edu import distributed as dist

WORKER = os.path.join(os.path.dirname(__file__), "worker.py")
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep
                       + os.environ.get("PATH", ""))
try:
    import mpi4py  # noqa: F401
    HAVE_MPI4PY = True
except ImportError:
    HAVE_MPI4PY = False
needs_mpi = pytest.mark.skipif(MPIEXEC is None or not HAVE_MPI4PY,
                               reason="needs mpi4py and mpiexec (pip install -e '.[mpi]')")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
       "NUMBA_NUM_THREADS": "1"}


def launch(ranks, *args, timeout=60):
    cmd = ([MPIEXEC, "-n", str(ranks)] if ranks > 1 else []) + [sys.executable, WORKER, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV)


def train(ranks, out, *args):
    res = launch(ranks, "train", str(out), *args)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def params(path):
    return tg.load(path)["model"]


def assert_close(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-13, err_msg=k)


@needs_mpi
def test_two_ranks_stay_identical_and_match_one_rank_on_the_global_batch(tmp_path):
    out2 = train(2, tmp_path / "two.pt")
    assert '"identical_every_step": true' in out2 and '"stats_calls": 6' in out2
    train(1, tmp_path / "one.pt")
    assert_close(params(tmp_path / "two.pt"), params(tmp_path / "one.pt"))


@needs_mpi
@pytest.mark.parametrize("first, second", [(2, 1), (1, 2)])
def test_a_checkpoint_resumes_with_another_number_of_ranks(tmp_path, first, second):
    train(first, tmp_path / "half.pt", "--steps", "3")
    train(second, tmp_path / "resumed.pt", "--steps", "3", "--start", "3",
          "--resume", str(tmp_path / "half.pt"))
    train(1, tmp_path / "straight.pt", "--steps", "6")
    assert_close(params(tmp_path / "resumed.pt"), params(tmp_path / "straight.pt"))


@needs_mpi
def test_a_rank_that_raises_stops_every_rank_with_its_error():
    res = launch(2, "raise", timeout=60)      # rank 0 waits in a barrier: Abort ends it
    assert res.returncode != 0
    assert "rank 1 gave up" in res.stderr and "[rank 1 of 2]" in res.stderr


@needs_mpi
def test_parameters_of_different_shapes_are_an_error_before_any_value_moves():
    res = launch(2, "mismatch", timeout=60)
    assert res.returncode != 0
    assert ("broadcast_parameters: rank 1's parameters differ from rank 0's: "
            "0.weight (9, 6) float64 against 0.weight (8, 6) float64") in res.stderr


# ---- without MPI ----------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 50), p=st.integers(1, 5), drop_last=st.booleans(),
       shuffle=st.booleans(), epoch=st.integers(0, 3))
def test_the_shards_cover_the_data_once_per_epoch(n, p, drop_last, shuffle, epoch):
    shards = []
    for r in range(p):
        s = dist.DistributedSampler(n, num_replicas=p, rank=r, shuffle=shuffle, seed=7,
                                    drop_last=drop_last)
        s.set_epoch(epoch)
        shards.append(list(s))
        assert len(shards[-1]) == len(s)
    assert len({len(sh) for sh in shards}) == 1            # the same number on every rank
    seen = [i for sh in shards for i in sh]
    if drop_last:
        assert len(seen) == len(set(seen)) == n // p * p    # each at most once
    else:
        assert set(seen) == set(range(n)) and len(seen) == -(-n // p) * p  # padded by repeats


def test_the_sampler_reshuffles_per_epoch_from_one_seed():
    a = dist.DistributedSampler(100, num_replicas=2, rank=0, seed=3)
    b = dist.DistributedSampler(100, num_replicas=2, rank=0, seed=3)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and list(b) == first


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_replicas=0), "num_replicas must be >= 1"),
    (dict(num_replicas=2, rank=2), r"rank must be in \[0, 2\)"),
])
def test_sampler_arguments_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dist.DistributedSampler(10, **kwargs)


def test_a_world_of_one_needs_no_mpi_and_changes_nothing():
    layer = tg.nn.Linear(3, 2)
    layer(tg.Tensor(np.ones((4, 3), np.float32))).sum().backward()
    before = [q.grad.numpy().copy() for q in layer.parameters()]
    weights = [q.numpy().copy() for q in layer.parameters()]
    dist.broadcast_parameters(layer)
    dist.allreduce_gradients(layer)
    assert dist.world_size() == 1 and dist.rank() == 0 and dist.broadcast_object(5) == 5
    assert all(np.array_equal(q.grad.numpy(), g) for q, g in zip(layer.parameters(), before))
    assert all(np.array_equal(q.numpy(), w) for q, w in zip(layer.parameters(), weights))
    with pytest.raises(ValueError, match="op must be 'mean' or 'sum', got 'max'"):
        dist.allreduce_gradients(layer, op="max")


def test_started_by_mpiexec_without_mpi4py_says_what_to_install(monkeypatch):
    monkeypatch.setattr(dist, "_state", {"comm": None, "initialized": False})
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)     # import mpi4py now fails
    with pytest.raises(RuntimeError, match=r"started by mpiexec with 2 ranks, but mpi4py "
                       r"cannot be imported.*pip install 'tinygrad_edu\[mpi\]'"):
        dist.init()
    assert dist._state["initialized"] is False


@needs_mpi
def test_a_gradient_missing_on_one_rank_counts_as_zeros_without_deadlock():
    res = launch(2, "none_grad", timeout=60)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out == {"ok": [True, True], "calls": 1, "bytes": (6 * 8 + 8 + 8 * 3 + 3) * 8}
