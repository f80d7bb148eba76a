"""tg.training.fit under ``mpiexec -n 2``: sharded training, figures combined over the ranks,
only rank 0 prints and writes the checkpoint, which resumes with another number of ranks."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import distributed as dist
from tinygrad_edu.training import HEADER, fit

from test_mpi import ENV, MPIEXEC, launch, needs_mpi


def run_fit(ranks, ckpt, epochs, resume=False):
    res = launch(ranks, "fit", str(ckpt), str(epochs), *(["resume"] if resume else []))
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count(HEADER) == 1                  # rank 0 alone prints
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["ranks"] == ranks and out["same_on_every_rank"]
    # the validation figures combined over shards of 11 and 10 = those of the whole set
    assert out["rows"][-1][2] == pytest.approx(out["evaluate"][0], rel=1e-12)
    assert out["rows"][-1][3] == out["evaluate"][1]
    return out["rows"], res.stdout


@needs_mpi
@pytest.mark.parametrize("first, second", [(2, 1), (1, 2)])
def test_fit_checkpoints_resume_with_another_number_of_ranks(tmp_path, first, second):
    rows, _ = run_fit(first, tmp_path / "c.pt", 2)
    assert len(tg.load(tmp_path / "c.pt")["history"]) == 2
    resumed, stdout = run_fit(second, tmp_path / "c.pt", 3, resume=True)
    assert "resumed from" in stdout and resumed[:2] == rows and len(resumed) == 3


def test_the_global_batch_must_split_evenly_over_the_ranks(monkeypatch):
    monkeypatch.setattr(dist, "world_size", lambda: 3)
    net = tg.nn.Linear(2, 2)
    before = [q.numpy().copy() for q in net.parameters()]
    opt = tg.optim.SGD(net.parameters(), lr=0.1)
    X, y = np.zeros((6, 2), np.float32), np.zeros(6, np.int64)
    with pytest.raises(ValueError, match="batch_size 8 .* must be a multiple of the number of "
                       "ranks, 3"):
        fit(net, opt, (X, y), epochs=1, batch_size=8, verbose=False)
    assert all(np.array_equal(q.numpy(), b) for q, b in zip(net.parameters(), before))


@needs_mpi
def test_modern_net_distributed_on_two_ranks_reports_once():
    example = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "modern_net.py")
    res = subprocess.run([MPIEXEC, "-n", "2", sys.executable, example, "--distributed",
                          "--limit", "640", "--epochs", "1", "--no-progress"],
                         capture_output=True, text=True, timeout=60, env=ENV)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("test accuracy") == 1 and res.stdout.count(HEADER) == 1
