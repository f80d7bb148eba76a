"""Per-op overhead: microseconds per call of tiny ops, forward alone and forward + backward.

On (16, 16) tensors NumPy's arithmetic takes about a microsecond, so what these figures measure
is the Python around it: building the tape node, wrapping arrays in Tensors, and the backward
engine's bookkeeping. Run it as

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/overhead.py [--quick]
    ... benchmarks/overhead.py --only add mlp
    .venv/bin/python benchmarks/overhead.py --profile mlp     # cProfile of one of our cases

Method (``_sidebyside.py``): ours and PyTorch (when installed) each in a worker process of its
own with the same threads (``--threads``, 1 here: these ops are far too small to share, yet
with 2 threads PyTorch enters an OpenMP parallel region for a (16, 16) tanh, which costs ~2 us
more per call, and milliseconds when the other core is busy). Each worker calibrates, per
function, how many calls take about ``target`` seconds (as timeit does); then in each of
``repeats`` rounds every framework in turn times that many calls with the cyclic GC off. The
figure is the best round, per call; the ratio ours / PyTorch is printed per row, with a
geometric mean (< 1: we are faster).
"""
import argparse
import math
import time

from _sidebyside import SideBySide, available, benchmark_environment, set_threads

SHAPE = (16, 16)


def _workloads():
    """(name -> (description, input arrays, fn(lib, *inputs)), labels for the MLP), the same in
    every process.

    ``lib`` (``_Ours`` or ``_Torch``) holds the functional API (linear, cross_entropy) and the
    labels; the rest is methods and operators both engines share, so one body serves both.
    """
    import numpy as np
    rng = np.random.default_rng(0)

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
        import tinygrad_edu as tg
        import tinygrad_edu.nn.functional as F
        self.linear, self.cross_entropy, self.ones_like = F.linear, F.cross_entropy, tg.ones_like
        self.tensor = lambda a: tg.Tensor(a, requires_grad=True)
        self.labels = tg.Tensor(labels)
        self.compile = tg.compile
        self.version = f"tinygrad_edu on NumPy {__import__('numpy').__version__}"


class _Torch:
    def __init__(self, labels):
        import torch
        import torch.nn.functional as TF
        torch.manual_seed(0)
        self.linear, self.cross_entropy = TF.linear, TF.cross_entropy
        self.ones_like = torch.ones_like
        self.tensor = lambda a: torch.tensor(a, requires_grad=True)
        self.labels = torch.from_numpy(labels)
        self.version = f"PyTorch {torch.__version__}"


def _steps(lib, fn, arrays):
    """(forward, forward + backward) as zero-argument functions for one engine; for ours also
    the forward + backward compiled with tg.compile (recorded on the first call)."""
    xs = [lib.tensor(a) for a in arrays]
    gy = lib.ones_like(fn(lib, *xs))  # dL/dy for outputs that are not scalars

    def forward():
        fn(lib, *xs)

    def forward_backward():
        for x in xs:
            x.grad = None
        fn(lib, *xs).backward(gy)
    if not hasattr(lib, "compile"):
        return forward, forward_backward
    return forward, forward_backward, lib.compile(forward_backward)


def _calibrate(fn, target):
    """How many calls of ``fn`` take about ``target`` seconds."""
    fn()  # warm-up: caches, lazy imports, a compiled function's recording
    fn()  # and its first replay
    n, elapsed = 1, 0.0
    while elapsed < target / 10:
        n *= 2
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - t0
    return max(1, int(n * target / elapsed))


def setup(framework, names, target):
    """Worker setup: tasks "NAME/fwd" and "NAME/fwd+bwd", each (function, calls per turn)."""
    table, labels = _workloads()
    lib = _Torch(labels) if framework == "torch" else _Ours(labels)
    tasks = {}
    for name in names:
        _, arrays, fn = table[name]
        for kind, step in zip(("fwd", "fwd+bwd", "compiled"), _steps(lib, fn, arrays)):
            tasks[f"{name}/{kind}"] = (step, _calibrate(step, target))
    return tasks, {"version": lib.version}


def _geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else math.nan


def profile(name):
    import cProfile
    import pstats
    table, labels = _workloads()
    _, arrays, fn = table[name]
    step = _steps(_Ours(labels), fn, arrays)[1]
    profiler = cProfile.Profile()
    profiler.runcall(lambda: [step() for _ in range(2000)])
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (a few seconds)")
    parser.add_argument("--only", nargs="+", metavar="CASE", help="run only these cases")
    parser.add_argument("--profile", metavar="CASE", help="cProfile our forward+backward of CASE")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads of each framework (default: 1, see the docstring)")
    parser.add_argument("--pause", type=float, default=0.05,
                        help="seconds between two turns (default: 0.05: on one thread no pool "
                             "needs time to fall asleep)")
    args = parser.parse_args(argv)
    benchmark_environment()
    if args.profile:
        set_threads(args.threads)
        return profile(args.profile)
    names = ["add", "mul", "add_bcast", "mul_scalar", "tanh", "sigmoid", "relu", "sum",
             "mean_axis", "matmul", "mlp"]
    unknown = sorted(set(args.only or ()) - set(names))
    if unknown:
        parser.error(f"unknown cases {unknown}; the cases are {names}")
    names = [name for name in names if not args.only or name in args.only]
    repeats, target = (3, 0.005) if args.quick else (9, 0.04)
    with SideBySide(setup, available(["ours", "torch"]), args=(names, target),
                    threads=args.threads, pause=args.pause, gc_off=True) as bench:
        torch = "torch" in bench.frameworks
        print(", ".join(bench.info[fw]["version"] for fw in bench.frameworks)
              + f"; {args.threads} thread{'s' * (args.threads != 1)} each, one process each"
              + ("" if torch else "; PyTorch is not installed, so there are no ratios"))
        print("microseconds per call; ratio = ours / PyTorch; compiled: our fwd+bwd under "
              "tg.compile, and how many times faster than our eager fwd+bwd")
        print(f"{'case':<11} {'work':<15} {'fwd':>7} {'torch':>7} {'ratio':>6}   "
              f"{'fwd+bwd':>7} {'torch':>7} {'ratio':>6}   {'compiled':>8} {'speedup':>7}")
        work = {name: w for name, (w, _, _) in _workloads()[0].items()}
        ratios, speedups = ([], []), []
        for name in names:
            cells, eager = [], None
            for k, kind in enumerate(("fwd", "fwd+bwd")):
                best = {fw: t * 1e6 for fw, t in bench.best(f"{name}/{kind}", repeats).items()}
                eager = best["ours"]
                if not torch:
                    cells.append(f"{best['ours']:7.1f} {'-':>7} {'-':>6}")
                    continue
                ratios[k].append(best["ours"] / best["torch"])
                cells.append(f"{best['ours']:7.1f} {best['torch']:7.1f} {ratios[k][-1]:6.2f}")
            compiled = bench.best(f"{name}/compiled", repeats)["ours"] * 1e6
            speedups.append(eager / compiled)
            print(f"{name:<11} {work[name]:<15} {cells[0]}   {cells[1]}   {compiled:8.1f} "
                  f"{speedups[-1]:7.2f}", flush=True)
        print(f"{'geomean':<27} {'':>15} {_geomean(ratios[0]) if torch else math.nan:6.2f}   "
              f"{'':>15} {_geomean(ratios[1]) if torch else math.nan:6.2f}   {'':>8} "
              f"{_geomean(speedups):7.2f}")


if __name__ == "__main__":
    main()
