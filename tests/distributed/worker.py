"""Run by tests/distributed/test_mpi.py, alone or under ``mpiexec -n 2``.

    worker.py train OUT [--steps S] [--start K] [--resume CKPT]
        trains a float64 MLP (no dropout) on a fixed data set, global batch 16 split over the
        ranks; after every step checks on every rank that all ranks' parameters are
        bit-identical; rank 0 saves {"model", "optimizer"} to OUT and prints a JSON summary.
    worker.py raise        rank 1 (or the only rank) raises ValueError("rank 1 gave up")
    worker.py mismatch     rank 1 builds a layer of another shape, then broadcast_parameters
    worker.py none_grad    rank 1's layer has no gradients, rank 0's has; both get half of rank 0's
                           (and a tensor without a gradient anywhere keeps None)
    worker.py gpu          (tests/gpu) one step on CuPy parameters, gradients reduced by NCCL
    worker.py fit CKPT EPOCHS [resume]
        tg.training.fit of a small MLP with a checkpoint (resuming from it with "resume"); rank 0
        prints a JSON line: the history, whether every rank's parameters and history agree, and
        evaluate() of the final model on the whole validation set.
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


def fit(ckpt, epochs, resume):
    from tinygrad_edu.training import evaluate, fit
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((60, 6)), rng.integers(0, 3, 60)
    Xv, yv = rng.standard_normal((21, 6)), rng.integers(0, 3, 21)   # 21: shards of 11 and 10
    net = model()
    opt = optim.SGD(net.parameters(), lr=0.1)
    history = fit(net, opt, (X, y), (Xv, yv), epochs=epochs, batch_size=8, checkpoint=ckpt,
                  resume=resume, progress=False)
    rows = [[r["epoch"], r["train_loss"], r["valid_loss"], r["valid_acc"]]
            for r in history.records]
    flat = np.concatenate([q.data.ravel() for q in net.parameters()])
    comm = dist._comm()
    mine = (flat, rows)
    everyone = [mine] if comm is None else comm.allgather(mine)
    same = all(np.array_equal(f, flat) and r == rows for f, r in everyone)
    if dist.rank() == 0:
        print(json.dumps({"rows": rows, "same_on_every_rank": same, "ranks": dist.world_size(),
                          "evaluate": list(evaluate(net, Xv, yv))}))


def gpu():
    import cupy
    cupy.cuda.Device(dist.rank() % cupy.cuda.runtime.getDeviceCount()).use()
    ddp = dist.DistributedDataParallel(model().to("cuda"))
    opt = optim.SGD(ddp.parameters(), lr=0.1)
    rng = np.random.default_rng(dist.rank())
    x, y = rng.standard_normal((8, 6)), rng.integers(0, 3, 8)
    F.cross_entropy(ddp(tg.Tensor(x).to("cuda")), tg.Tensor(y).to("cuda")).backward()
    comm = dist._comm()
    before = comm.allgather([q.grad.data.get() for q in ddp.parameters()])
    ddp.sync_gradients()
    on_device = all(isinstance(q.grad.data, cupy.ndarray) for q in ddp.parameters())
    mean_ok = all(np.allclose(q.grad.data.get(), np.mean([b[i] for b in before], axis=0),
                              rtol=1e-12, atol=1e-14) for i, q in enumerate(ddp.parameters()))
    opt.step()
    flat = np.concatenate([q.data.get().ravel() for q in ddp.parameters()])
    same = all(np.array_equal(flat, other) for other in comm.allgather(flat))
    if dist.rank() == 0:
        print(json.dumps({"on_device": on_device, "mean_ok": mean_ok, "same": same,
                          "bytes": dist.stats.bytes}))


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
    elif what == "none_grad":
        net = model()
        dist.broadcast_parameters(net)
        if dist.rank() == 0:
            net(tg.Tensor(np.ones((2, 6)))).sum().backward()
        mine = [None if q.grad is None else q.grad.data.copy() for q in net.parameters()]
        theirs = dist.broadcast_object(mine)
        dist.stats.reset()
        frozen = tg.Tensor(np.zeros(3), requires_grad=True)  # no gradient on any rank
        dist.allreduce_gradients(net.parameters() + [frozen], bucket_bytes=100)  # 3 buckets
        ok = all(np.array_equal(q.grad.data, g / 2) for q, g in zip(net.parameters(), theirs))
        ok = ok and frozen.grad is None
        everyone = dist._comm().allgather(ok)
        if dist.rank() == 0:
            print(json.dumps({"ok": everyone, "calls": dist.stats.calls,
                              "bytes": dist.stats.bytes}))
    elif what == "gpu":
        gpu()
    elif what == "fit":
        fit(sys.argv[2], int(sys.argv[3]), len(sys.argv) > 4)
    elif what == "mismatch":
        dist.broadcast_parameters(model(hidden=8 if dist.rank() == 0 else 9))
