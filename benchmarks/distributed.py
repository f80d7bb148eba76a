"""Data-parallel training steps on 1 and 2 processes of this machine, over MPI.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/distributed.py
    ... benchmarks/distributed.py --models modern_net --steps 50 --scaling weak

For each model it runs ``mpiexec -n 1`` (2 threads) and ``mpiexec -n 2`` (1 thread each: the
same two cores), trains ``--steps`` steps after a warm-up and prints, per run: milliseconds
per step, the part of it spent in ``allreduce_gradients`` (its share), the gradient bytes
each rank contributes, the bytes a ring allreduce would send per rank, 2(p-1)/p of those
(docs/distributed.md's cost model), and the speedup of 2 processes over 1.

``--scaling strong`` (the default, what ``examples/modern_net.py --distributed`` does): the
global batch stays 128, each rank takes 128 / p. ``weak``: each rank takes 128.
Needs mpi4py and an MPI runtime (``pip install -e '.[mpi]'``).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BATCH = 128


def worker(name, steps, scaling):
    """One rank: time `steps` training steps of model `name`; rank 0 prints a JSON line."""
    sys.path[:0] = [HERE, os.path.join(ROOT, "examples")]
    import numpy as np
    import mnist
    import tinygrad_edu as tg
    from tinygrad_edu import distributed as dist
    F = tg.nn.functional

    dist.init()
    p, r = dist.world_size(), dist.rank()
    model, opt = mnist.ours(name)
    dist.broadcast_parameters(model)
    X, y = mnist.data(name)
    batch = BATCH // p if scaling == "strong" else BATCH
    grad_bytes = sum(q.data.nbytes for q in model.parameters())
    model.train()

    def step(i):
        lo = (i * p + r) * batch % (len(X) - batch)
        xb, yb = tg.from_numpy(X[lo:lo + batch]), tg.from_numpy(y[lo:lo + batch])
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        t0 = time.perf_counter()
        dist.allreduce_gradients(model)
        t1 = time.perf_counter()
        opt.step()
        return t1 - t0

    for i in range(5):                      # warm-up: Numba, allocator, MPI's buffers
        step(i)
    dist.barrier()
    t0, comm = time.perf_counter(), 0.0
    for i in range(steps):
        comm += step(i)
    total = time.perf_counter() - t0
    same = np.concatenate([q.data.ravel() for q in model.parameters()])  # bit-identical?
    ok = dist.broadcast_object(same if r == 0 else None)
    if r == 0:
        print(json.dumps({"ms_step": total / steps * 1e3, "ms_allreduce": comm / steps * 1e3,
                          "grad_bytes": grad_bytes, "ranks": p, "batch_per_rank": batch,
                          "identical": bool(np.array_equal(ok, same))}), flush=True)
    elif not np.array_equal(ok, same):
        raise RuntimeError(f"rank {r}: parameters differ from rank 0's")


def mpiexec():
    path = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep
                        + os.environ.get("PATH", ""))
    if path is None:
        sys.exit("benchmarks/distributed.py: no mpiexec found; pip install -e '.[mpi]'")
    return path


def run(name, ranks, threads, steps, scaling, timeout):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        env[var] = str(threads)
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, os.path.abspath(__file__), "--worker",
           name, "--steps", str(steps), "--scaling", scaling]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["modern_net", "convnet"],
                    choices=["logistic_regression", "mlp", "modern_net", "convnet"])
    ap.add_argument("--steps", type=int, default=None,
                    help="timed steps (default: 200 for dense models, 20 for the convnet)")
    ap.add_argument("--scaling", choices=["strong", "weak"], default="strong")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per mpiexec run")
    ap.add_argument("--worker", metavar="MODEL", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.steps, args.scaling)
    print(f"{args.scaling} scaling, global batch {BATCH}" if args.scaling == "strong"
          else f"weak scaling, batch {BATCH} per rank")
    print(f"{'model':12} {'ranks':>5} {'ms/step':>8} {'allreduce ms':>12} {'share':>6} "
          f"{'grad MB':>8} {'ring MB sent':>12} {'speedup':>8}")
    for name in args.models:
        steps = args.steps or (20 if name == "convnet" else 200)
        one = run(name, 1, 2, steps, args.scaling, args.timeout)
        two = run(name, 2, 1, steps, args.scaling, args.timeout)
        assert two["identical"], f"{name}: the two ranks' parameters differ"
        for res in (one, two):
            p = res["ranks"]
            speed = one["ms_step"] / res["ms_step"] * (1 if args.scaling == "strong" else p)
            print(f"{name:12} {p:5d} {res['ms_step']:8.2f} {res['ms_allreduce']:12.2f} "
                  f"{res['ms_allreduce'] / res['ms_step']:6.1%} {res['grad_bytes'] / 1e6:8.2f} "
                  f"{2 * (p - 1) / p * res['grad_bytes'] / 1e6:12.2f} {speed:8.2f}")


if __name__ == "__main__":
    main()
