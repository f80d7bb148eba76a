"""Layer-level benchmarks: conv2d, max-pool and cross-entropy forward+backward at the tutorial
convnet's shapes (batch 128), and one full training step of the 784-625-625-10 MLP.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/layers.py [--quick]
    ... benchmarks/layers.py --only conv1 conv2 conv3
    .venv/bin/python benchmarks/layers.py --profile conv2   # cProfile of one of our cases

The convnet's three convolutions (3x3, padding 1, with bias): conv1 1->32 channels at 28x28,
conv2 32->64 at 14x14, conv3 64->128 at 7x7; its three 2x2 max-pools (ceil mode) on their
outputs; cross-entropy of (128, 10) logits. Each step = forward, then backward of a gradient of
ones (of the mean, for cross-entropy), into every input. Both frameworks get the same arrays.

Method (``_sidebyside.py``): ours and PyTorch (when installed) each in a worker process of its
own with the same threads (``--threads``), warmed up, then 3 rounds in which each framework in
turn times ``repeats`` calls in a row (4; 2 with ``--quick``), with a pause between turns. The
figure is the best call; the ratio is ours / PyTorch (< 1: we are faster).
"""
import argparse

from _sidebyside import SideBySide, available, benchmark_environment, set_threads

CONVS = {"conv1": ((128, 1, 28, 28), 32), "conv2": ((128, 32, 14, 14), 64),
         "conv3": ((128, 64, 7, 7), 128)}
POOLS = {"pool1": (128, 32, 28, 28), "pool2": (128, 64, 14, 14), "pool3": (128, 128, 7, 7)}
CASES = [*CONVS, *POOLS, "cross_entropy", "mlp_step"]
MLP_SIZES = (784, 625, 625, 10)


def arrays(name):
    """The inputs of one case, the same in every process (seeded by the case's name)."""
    import numpy as np
    rng = np.random.default_rng(CASES.index(name))
    if name in CONVS:
        shape, f = CONVS[name]
        return (rng.standard_normal(shape, dtype=np.float32),
                rng.standard_normal((f, shape[1], 3, 3), dtype=np.float32) * 0.1,
                np.zeros(f, np.float32))
    if name in POOLS:
        return (rng.standard_normal(POOLS[name], dtype=np.float32),)
    if name == "cross_entropy":
        return rng.standard_normal((128, 10), dtype=np.float32), rng.integers(0, 10, 128)
    params = []  # mlp_step: x, labels, then W1, b1, W2, b2, W3, b3
    for n_in, n_out in zip(MLP_SIZES, MLP_SIZES[1:]):
        params += [rng.standard_normal((n_out, n_in), dtype=np.float32) * 0.01,
                   np.zeros(n_out, np.float32)]
    return (rng.random((128, 784), dtype=np.float32), rng.integers(0, 10, 128), *params)


def our_case(name):
    """A zero-argument forward + backward step of our engine."""
    import tinygrad_edu as tg
    import tinygrad_edu.nn.functional as F
    data = arrays(name)
    if name == "mlp_step":
        x, y = tg.Tensor(data[0]), tg.Tensor(data[1])
        params = [tg.Tensor(a, requires_grad=True) for a in data[2:]]

        def step():
            h = x
            for k in range(0, len(params), 2):
                h = F.linear(h, params[k], params[k + 1])
                if k < len(params) - 2:
                    h = h.relu()
            loss = F.cross_entropy(h, y)
            for p in params:
                p.grad = None
            loss.backward()
            with tg.no_grad():
                for p in params:
                    p.data -= 0.01 * p.grad.data
        return step
    if name == "cross_entropy":
        logits, labels = tg.Tensor(data[0], requires_grad=True), tg.Tensor(data[1])
        inputs, fn = [logits], lambda z: F.cross_entropy(z, labels)
    elif name in CONVS:
        inputs, fn = [tg.Tensor(a, requires_grad=True) for a in data], \
            lambda x, w, b: F.conv2d(x, w, b, padding=1)
    else:
        inputs, fn = [tg.Tensor(data[0], requires_grad=True)], \
            lambda x: F.max_pool2d(x, 2, ceil_mode=True)

    def run():
        for t in inputs:
            t.grad = None
        y = fn(*inputs)
        y.backward(tg.ones_like(y) if y.ndim else None)
    return run


def torch_case(name):
    """The same step in PyTorch."""
    import torch
    import torch.nn.functional as TF
    data = arrays(name)
    if name == "mlp_step":
        x, y = torch.from_numpy(data[0]), torch.from_numpy(data[1])
        model = torch.nn.Sequential(torch.nn.Linear(784, 625), torch.nn.ReLU(),
                                    torch.nn.Linear(625, 625), torch.nn.ReLU(),
                                    torch.nn.Linear(625, 10))
        with torch.no_grad():
            for p, a in zip(model.parameters(), data[2:]):
                p.copy_(torch.from_numpy(a))
        opt = torch.optim.SGD(model.parameters(), lr=0.01)

        def step():
            loss = TF.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return step
    if name == "cross_entropy":
        labels = torch.from_numpy(data[1])
        inputs, fn = [torch.tensor(data[0], requires_grad=True)], \
            lambda z: TF.cross_entropy(z, labels)
    elif name in CONVS:
        inputs, fn = [torch.tensor(a, requires_grad=True) for a in data], \
            lambda x, w, b: TF.conv2d(x, w, b, padding=1)
    else:
        inputs, fn = [torch.tensor(data[0], requires_grad=True)], \
            lambda x: TF.max_pool2d(x, 2, ceil_mode=True)

    def run():
        for t in inputs:
            t.grad = None
        y = fn(*inputs)
        y.backward(torch.ones_like(y) if y.ndim else None)
    return run


def setup(framework, names):
    """Worker setup: every case built and called once (Numba compilation, caches)."""
    if framework == "torch":
        import torch
        make, version = torch_case, f"PyTorch {torch.__version__}"
    else:
        import numpy as np
        make, version = our_case, f"tinygrad_edu on NumPy {np.__version__}"
    tasks = {name: make(name) for name in names}
    for fn in tasks.values():
        fn()
    return tasks, {"version": version}


def profile(name):
    import cProfile
    import pstats
    fn = our_case(name)
    fn()
    prof = cProfile.Profile()
    prof.runcall(lambda: [fn() for _ in range(10)])
    pstats.Stats(prof).sort_stats("tottime").print_stats(15)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--only", nargs="+", metavar="CASE", choices=CASES,
                        help="run only these cases")
    parser.add_argument("--profile", metavar="CASE", choices=CASES,
                        help="profile one of our cases instead")
    parser.add_argument("--threads", type=int, default=2,
                        help="threads of each framework (default: 2)")
    parser.add_argument("--pause", type=float, default=0.3,
                        help="seconds between two turns, for thread pools to sleep (default: 0.3)")
    args = parser.parse_args(argv)
    benchmark_environment()
    if args.profile:
        set_threads(args.threads)
        return profile(args.profile)
    names = [name for name in CASES if not args.only or name in args.only]
    repeats = 2 if args.quick else 4
    with SideBySide(setup, available(["ours", "torch"]), args=(names,), threads=args.threads,
                    pause=args.pause) as bench:
        print(", ".join(bench.info[fw]["version"] for fw in bench.frameworks)
              + f"; {args.threads} threads each, one process each")
        print(f"{'case':<15} {'ours ms':>9} {'torch ms':>9} {'ratio':>7}")
        for name in names:
            best = bench.best(name, rounds=3, reps=repeats)
            theirs = best.get("torch")
            ratio = f"{best['ours'] / theirs:7.2f}" if theirs else "      -"
            theirs_ms = f"{theirs * 1e3:9.2f}" if theirs else "        -"
            print(f"{name:<15} {best['ours'] * 1e3:9.2f} {theirs_ms} {ratio}", flush=True)


if __name__ == "__main__":
    main()
