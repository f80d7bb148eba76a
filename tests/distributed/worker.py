"""Run by tests/distributed/test_mpi.py, alone or under ``mpiexec -n 2``.

    worker.py train OUT [--steps S] [--start K] [--resume CKPT]
        trains a float64 MLP (no dropout) on a fixed data set, global batch 16 split over the
        ranks; after every step checks on every rank that all ranks' parameters are
        bit-identical; rank 0 saves {"model", "optimizer"} to OUT and prints a JSON summary.
    worker.py raise        rank 1 (or the only rank) raises ValueError("rank 1 gave up")
    worker.py mismatch     rank 1 builds a layer of another shape, then broadcast_parameters
"""
import json
import sys

import numpy as np

import tinygrad_edu as tg
from tinygrad_edu import distributed as dist
from tinygrad_edu import nn, optim

F = tg.nn.functional
GLOBAL_BATCH = 16


def model(hidden=8):
    tg.manual_seed(dist.rank())        # different on each rank: the broadcast must fix it
    net = nn.Sequential(nn.Linear(6, hidden), nn.Tanh(), nn.Linear(hidden, 3))
    for q in net.parameters():         # float64, so that 1 and 2 ranks agree to ~1e-15
        q.data = q.data.astype(np.float64)
    return net


def train(out, steps, start, resume):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 6)), rng.integers(0, 3, 64)
    ddp = dist.DistributedDataParallel(model())
    opt = optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    if resume:
        state = tg.load(resume)
        ddp.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
    p, r = dist.world_size(), dist.rank()
    comm = dist._comm()
    identical = True
    for step in range(start, start + steps):
        lo = step * GLOBAL_BATCH % len(X)
        shard = slice(lo + r * GLOBAL_BATCH // p, lo + (r + 1) * GLOBAL_BATCH // p)
        loss = F.cross_entropy(ddp(tg.Tensor(X[shard])), tg.Tensor(y[shard]))
        opt.zero_grad()
        loss.backward()
        ddp.sync_gradients()
        opt.step()
        flat = np.concatenate([q.data.ravel() for q in ddp.parameters()])
        if comm is not None:
            identical &= all(np.array_equal(flat, other) for other in comm.allgather(flat))
    if r == 0:
        tg.save({"model": ddp.state_dict(), "optimizer": opt.state_dict()}, out)
        print(json.dumps({"ranks": p, "identical_every_step": bool(identical),
                          "stats_calls": dist.stats.calls}))


if __name__ == "__main__":
    dist.init()
    what = sys.argv[1]
    if what == "train":
        args = dict(zip(sys.argv[3::2], sys.argv[4::2]))
        train(sys.argv[2], int(args.get("--steps", 6)), int(args.get("--start", 0)),
              args.get("--resume"))
    elif what == "raise":
        if dist.rank() == dist.world_size() - 1:
            raise ValueError("rank 1 gave up")
        dist.barrier()                 # the other rank waits here: it must not hang
    elif what == "mismatch":
        dist.broadcast_parameters(model(hidden=8 if dist.rank() == 0 else 9))
