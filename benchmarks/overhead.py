"""Per-op overhead: microseconds per call of tiny ops, forward alone and forward + backward.

On (16, 16) tensors NumPy's arithmetic takes about a microsecond, so what these figures measure
is the Python around it: building the tape node, wrapping arrays in Tensors, and the backward
engine's bookkeeping. When PyTorch is installed, the same work runs in the same process,
interleaved with ours (best of N repeats each, one thread), and the ratio ours / PyTorch is
printed per row with a geometric mean (< 1 means we are faster). Run it as

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/overhead.py [--quick]
    .venv/bin/python benchmarks/overhead.py --profile mlp     # cProfile of one of our cases
"""
import argparse
import gc
import math
import time

import numpy as np

import tinygrad_edu as tg
import tinygrad_edu.nn.functional as F

try:
    import torch
    import torch.nn.functional as TF
except ImportError:
    torch = None

SHAPE = (16, 16)


def _workloads(rng):
    """(name -> (description, input arrays, fn(lib, *inputs)), labels for the MLP).

    ``lib`` (``_Ours`` or ``_Torch``) holds the functional API (linear, cross_entropy) and the
    labels; the rest is methods and operators both engines share, so one body serves both.
    """
    def a(*shape):
        return rng.standard_normal(shape, dtype=np.float32)
    labels = rng.integers(0, 10, 4)
    return {
        "add": ("a + b", (a(*SHAPE), a(*SHAPE)), lambda L, x, y: x + y),
        "mul": ("a * b", (a(*SHAPE), a(*SHAPE)), lambda L, x, y: x * y),
        "add_bcast": ("a + b[16]", (a(*SHAPE), a(16)), lambda L, x, y: x + y),
        "mul_scalar": ("a * 2.0", (a(*SHAPE),), lambda L, x: x * 2.0),
        "tanh": ("tanh(a)", (a(*SHAPE),), lambda L, x: x.tanh()),
        "sigmoid": ("sigmoid(a)", (a(*SHAPE),), lambda L, x: x.sigmoid()),
        "relu": ("relu(a)", (a(*SHAPE),), lambda L, x: x.relu()),
        "sum": ("a.sum()", (a(*SHAPE),), lambda L, x: x.sum()),
        "mean_axis": ("a.mean(1)", (a(*SHAPE),), lambda L, x: x.mean(1)),
        "matmul": ("(8,16)@(16,8)", (a(8, 16), a(16, 8)), lambda L, x, y: x @ y),
        "mlp": ("4x16-32-10 +CE", (a(4, 16), a(32, 16) * 0.25, a(32), a(10, 32) * 0.2, a(10)),
                lambda L, x, w1, b1, w2, b2: L.cross_entropy(
                    L.linear(L.linear(x, w1, b1).relu(), w2, b2), L.labels)),
    }, labels


class _Ours:
    def __init__(self, labels):
        self.linear, self.cross_entropy, self.ones_like = F.linear, F.cross_entropy, tg.ones_like
        self.tensor = lambda a: tg.Tensor(a, requires_grad=True)
        self.labels = tg.Tensor(labels)


class _Torch:
    def __init__(self, labels):
        self.linear, self.cross_entropy = TF.linear, TF.cross_entropy
        self.ones_like = torch.ones_like
        self.tensor = lambda a: torch.tensor(a, requires_grad=True)
        self.labels = torch.from_numpy(labels)


def _steps(lib, fn, arrays):
    """(forward, forward + backward) as zero-argument functions for one engine."""
    xs = [lib.tensor(a) for a in arrays]
    gy = lib.ones_like(fn(lib, *xs))  # dL/dy for outputs that are not scalars

    def forward():
        fn(lib, *xs)

    def forward_backward():
        for x in xs:
            x.grad = None
        fn(lib, *xs).backward(gy)
    return forward, forward_backward


def _calibrate(fn, target):
    """How many calls of ``fn`` take about ``target`` seconds."""
    fn()  # warm-up: caches, lazy imports
    n, elapsed = 1, 0.0
    while elapsed < target / 10:
        n *= 2
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - t0
    return max(1, int(n * target / elapsed))


def best_of(fns, repeats, target):
    """Best seconds per call for each function, timed in turns (ours, theirs, ours, ...) so that
    a slow moment of the machine hits both; the cyclic GC is off while timing, as in timeit."""
    numbers = [_calibrate(fn, target) for fn in fns]
    best = [math.inf] * len(fns)
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            for i, (fn, n) in enumerate(zip(fns, numbers)):
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                best[i] = min(best[i], (time.perf_counter() - t0) / n)
    finally:
        if gc_was_on:
            gc.enable()
    return best


def _geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else math.nan


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (a few seconds)")
    parser.add_argument("--only", nargs="+", metavar="CASE", help="run only these cases")
    parser.add_argument("--profile", metavar="CASE", help="cProfile our forward+backward of CASE")
    args = parser.parse_args()
    table, labels = _workloads(np.random.default_rng(0))
    ours = _Ours(labels)
    if args.profile:
        import cProfile
        import pstats
        _, arrays, fn = table[args.profile]
        step = _steps(ours, fn, arrays)[1]
        profiler = cProfile.Profile()
        profiler.runcall(lambda: [step() for _ in range(2000)])
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return
    repeats, target = (3, 0.005) if args.quick else (9, 0.04)
    theirs = None
    if torch is not None:
        torch.manual_seed(0)
        torch.set_num_threads(1)
        theirs = _Torch(labels)
        print(f"PyTorch {torch.__version__} (1 thread), NumPy {np.__version__}")
    else:
        print(f"NumPy {np.__version__}; PyTorch is not installed, so there are no ratios")
    print("microseconds per call; ratio = ours / PyTorch")
    print(f"{'case':<11} {'work':<15} {'fwd':>7} {'torch':>7} {'ratio':>6}   "
          f"{'fwd+bwd':>7} {'torch':>7} {'ratio':>6}")
    ratios = ([], [])
    for name, (work, arrays, fn) in table.items():
        if args.only and name not in args.only:
            continue
        fns = list(_steps(ours, fn, arrays))
        if theirs is not None:
            fns += _steps(theirs, fn, arrays)
        times = [t * 1e6 for t in best_of(fns, repeats, target)]
        cells = []
        for k in (0, 1):
            if theirs is None:
                cells.append(f"{times[k]:7.1f} {'-':>7} {'-':>6}")
                continue
            ratios[k].append(times[k] / times[k + 2])
            cells.append(f"{times[k]:7.1f} {times[k + 2]:7.1f} {ratios[k][-1]:6.2f}")
        print(f"{name:<11} {work:<15} {cells[0]}   {cells[1]}", flush=True)
    if theirs is not None:
        print(f"{'geomean':<27} {'':>15} {_geomean(ratios[0]):6.2f}   {'':>15} "
              f"{_geomean(ratios[1]):6.2f}")


if __name__ == "__main__":
    main()
