"""Seconds per MNIST training epoch (60,000 images, batch 128) of the tutorials' four models:
ours, PyTorch CPU (when installed) and the hand-written NumPy floor (dense models), each
framework in a process of its own, taking turns.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/mnist.py
    ... benchmarks/mnist.py --models convnet --conv-batches 60 --memory
    ... benchmarks/mnist.py --compiled --models modern_net convnet   # tg.compile's figures
    ... benchmarks/mnist.py --sweep --batch-sizes 32 64 128 256 512 --plot sweep.png

Models: ours are built by the examples' build functions with their optimizers; PyTorch's twins
by ``theirs`` (also used by gpu.py); the floor by ``handwritten.py`` (the same maths, written
out in NumPy with in-place updates: what an eager NumPy engine cannot beat). Every framework
trains on the same sequential batches of 128 (the last one 96 images).

Method (``_sidebyside.py``): per model, one worker process per framework, the same threads
(``--threads``), a warm-up of 2 batches, then ``--reps`` epochs each, in turns with a pause; the
figure is the best epoch. The convnet times ``--conv-batches`` batches per turn and
extrapolates to the 469 of an epoch (the line says so). Ratios: ours / PyTorch and ours /
hand-written (< 1: we are faster).

``--memory``: peak resident memory of training steps (``--memory-batches`` of them) of the
convnet and the modern net, ours and PyTorch, each in a fresh process: the rise of the peak
(VmHWM, reset through /proc/self/clear_refs) above the RSS after imports, data and a warm-up
step on 4 images (which compiles the Numba kernels). Linux only. (The floor allocates all its
buffers before that baseline, so it has no comparable figure.)

``--sweep`` (instead of the epochs): the convnet's training time per image at each of
``--batch-sizes``, ours and PyTorch, over ``--sweep-images`` images per turn; ``--plot PATH``
also draws it (needs matplotlib).
"""
import argparse
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

from _sidebyside import SideBySide, available, benchmark_environment  # noqa: E402

BATCH = 128
MODELS = ["logistic_regression", "mlp", "modern_net", "convnet"]
DENSE = MODELS[:3]
EPOCH_BATCHES = math.ceil(60_000 / BATCH)   # 469


def ours(name):
    """(model, optimizer) exactly as the example script builds them."""
    import tinygrad_edu as tg
    from tinygrad_edu import optim
    import convnet
    import logistic_regression
    import mlp
    import modern_net
    tg.manual_seed(0)
    if name == "logistic_regression":
        model = logistic_regression.build()
        return model, optim.SGD(model.parameters(), lr=0.05)
    if name == "mlp":
        model = mlp.build()
        return model, optim.SGD(model.parameters(), lr=0.05)
    model = modern_net.build() if name == "modern_net" else convnet.build()
    return model, modern_net.optimizer(model, 1e-3)


def theirs(name, device="cpu"):
    """The same architecture and optimizer in PyTorch (also used by gpu.py, on "cuda").
    PyTorch's RMSprop has eps outside the square root (ours: inside): the same work."""
    import torch
    import torch.nn as tnn
    torch.manual_seed(0)
    if name == "logistic_regression":
        model = tnn.Linear(784, 10, bias=False)
    elif name == "mlp":
        model = tnn.Sequential(tnn.Linear(784, 625), tnn.Sigmoid(), tnn.Linear(625, 10))
    elif name == "modern_net":
        model = tnn.Sequential(tnn.Dropout(0.2), tnn.Linear(784, 625), tnn.ReLU(),
                               tnn.Dropout(0.5), tnn.Linear(625, 625), tnn.ReLU(),
                               tnn.Dropout(0.5), tnn.Linear(625, 10))
    else:
        def block(c_in, c_out):
            return [tnn.Conv2d(c_in, c_out, 3, padding=1), tnn.ReLU(),
                    tnn.MaxPool2d(2, ceil_mode=True), tnn.Dropout(0.2)]
        model = tnn.Sequential(*block(1, 32), *block(32, 64), *block(64, 128), tnn.Flatten(),
                               tnn.Linear(128 * 4 * 4, 625), tnn.ReLU(), tnn.Dropout(0.5),
                               tnn.Linear(625, 10))
    model = model.to(device)
    if name in ("logistic_regression", "mlp"):
        return model, torch.optim.SGD(model.parameters(), lr=0.05)
    return model, torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-6)


def our_epoch(model, opt, X, y, batches, batch=BATCH):
    import tinygrad_edu as tg
    F = tg.nn.functional
    model.train()
    for i in range(batches):
        xb = tg.from_numpy(X[i * batch:(i + 1) * batch])      # no copy, as torch.from_numpy
        yb = tg.from_numpy(y[i * batch:(i + 1) * batch])
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def compiled_step(model, opt):
    """Our training step under tg.compile: recorded on the first batch, replayed after."""
    import tinygrad_edu as tg
    F = tg.nn.functional

    @tg.compile
    def step(xb, yb):
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    return step


def compiled_epoch(step, X, y, batches, batch=BATCH):
    import tinygrad_edu as tg
    for i in range(batches):
        loss = step(tg.from_numpy(X[i * batch:(i + 1) * batch]),
                    tg.from_numpy(y[i * batch:(i + 1) * batch]))
    return loss.item()


def torch_epoch(model, opt, X, y, batches, batch=BATCH):
    import torch
    model.train()
    for i in range(batches):
        xb = torch.from_numpy(X[i * batch:(i + 1) * batch])
        yb = torch.from_numpy(y[i * batch:(i + 1) * batch])
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def data(name):
    """The 60,000 training images, (N, 784) for the dense models, (N, 1, 28, 28) for the
    convnet, float32 in [0, 1], and their int64 labels."""
    from tinygrad_edu.data import load_mnist
    mnist = load_mnist(flatten=name != "convnet", validation_size=0)
    return mnist.train.X, mnist.train.y


def trainer(framework, name):
    """(run(X, y, batches, batch), version) of one framework's model ``name``, in a worker."""
    if framework == "numpy":
        import numpy as np
        import handwritten
        model = handwritten.build(name)
        return (lambda X, y, b, batch=BATCH: handwritten.epoch(model, X, y, b, batch),
                f"hand-written NumPy {np.__version__}")
    if framework == "torch":
        import torch
        model, opt = theirs(name)
        return (lambda X, y, b, batch=BATCH: torch_epoch(model, opt, X, y, b, batch),
                f"PyTorch {torch.__version__}")
    import numpy as np
    model, opt = ours(name)
    if framework == "compiled":
        model.train()
        step = compiled_step(model, opt)
        return (lambda X, y, b, batch=BATCH: compiled_epoch(step, X, y, b, batch),
                "tinygrad_edu compiled (tg.compile)")
    return (lambda X, y, b, batch=BATCH: our_epoch(model, opt, X, y, b, batch),
            f"tinygrad_edu on NumPy {np.__version__}")


def epoch_setup(framework, name, batches):
    """Worker setup: the task "epoch" trains ``batches`` batches, after 2 warm-up batches
    (Numba compilation, allocator, caches)."""
    X, y = data(name)
    run, version = trainer(framework, name)
    run(X, y, 2)
    run(X, y, 2)  # (compiled: the recording, then a replay)
    return {"epoch": lambda: run(X, y, batches)}, {"version": version}


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_setup(framework, name, batches):
    """Worker setup: the task "peak" trains ``batches`` batches and returns the MiB by which
    the peak RSS rose above the RSS before them."""
    X, y = data(name)
    X, y = X[:batches * BATCH].copy(), y[:batches * BATCH].copy()  # drop the rest of the data
    run, _ = trainer(framework, name)
    run(X[:4], y[:4], 1)  # a 4-image warm-up outside the measure: compiles Numba's kernels
    # (whose compiler's memory would count otherwise) without filling allocator pools

    def peak():
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # Linux: reset the peak-RSS mark (VmHWM), so loading data is not counted
        base = _status_kib("VmRSS")
        run(X, y, batches)
        return (_status_kib("VmHWM") - base) / 1024
    return {"peak": peak}, {}


def sweep_setup(framework, batch_sizes, images):
    """Worker setup: a task per batch size, training the convnet on ``images`` images (rounded
    up to whole batches), after one warm-up batch of that size."""
    X, y = data("convnet")
    run, version = trainer(framework, "convnet")
    tasks, processed = {}, {}
    for bs in batch_sizes:
        batches = math.ceil(images / bs)
        run(X, y, 1, bs)
        tasks[bs] = lambda batches=batches, bs=bs: run(X, y, batches, bs)
        processed[bs] = batches * bs
    return tasks, {"version": version, "images": processed}


def fmt(value, width, spec):
    return f"{value:{width}{spec}}" if value is not None else f"{'-':>{width}}"


def ratio(row, other):
    """ours / other, or None when ``other`` did not run."""
    return row["ours"] / row[other] if other in row else None


def epochs(args, frameworks):
    for name in args.models:
        batches = min(args.conv_batches, EPOCH_BATCHES) if name == "convnet" else EPOCH_BATCHES
        scale = EPOCH_BATCHES / batches
        fws = [fw for fw in frameworks if fw != "numpy" or name in DENSE]
        fws += ["compiled"] if args.compiled else []
        with SideBySide(epoch_setup, fws, args=(name, batches), threads=args.threads,
                        pause=args.pause) as bench:
            if name == args.models[0]:
                print(", ".join(bench.info[fw]["version"] for fw in fws)
                      + f"; {args.threads} threads each, one process each, best of "
                      f"{args.reps} epochs")
                print(f"{'model':<20} {'ours s/epoch':>12} {'torch s/epoch':>13} "
                      f"{'numpy s/epoch':>13} {'ours/torch':>10} {'ours/numpy':>10}"
                      + (f" {'compiled s/epoch':>16} {'compiled/ours':>13}"
                         if args.compiled else ""))
            best = bench.best("epoch", rounds=args.reps)
        t = {fw: best[fw] * scale for fw in best}
        line = (f"{name:<20} {t['ours']:12.2f} {fmt(t.get('torch'), 13, '.2f')} "
                f"{fmt(t.get('numpy'), 13, '.2f')} "
                f"{fmt(ratio(t, 'torch'), 10, '.2f')} {fmt(ratio(t, 'numpy'), 10, '.2f')}")
        if args.compiled:
            line += f" {t['compiled']:16.2f} {t['compiled'] / t['ours']:13.2f}"
        if scale > 1:
            line += f"   ({batches} batches timed, x{scale:.1f} for the epoch)"
        print(line, flush=True)


def memory(args, frameworks):
    fws = [fw for fw in frameworks if fw != "numpy"]
    names = [name for name in ("convnet", "modern_net") if name in args.models]
    if not names:
        print("--memory measures the convnet and the modern net: neither is in --models")
    for name in names:
        mib = {}
        for fw in fws:  # one at a time, each in a fresh process
            with SideBySide(memory_setup, [fw], args=(name, args.memory_batches),
                            threads=args.threads) as worker:
                mib[fw] = worker.call(fw, "peak")
        line = (f"{name} peak memory above baseline ({args.memory_batches} batches): "
                f"ours {mib['ours']:.0f} MiB")
        if "torch" in mib:
            line += (f", torch {mib['torch']:.0f} MiB, "
                     f"ratio {mib['ours'] / max(mib['torch'], 1e-9):.2f}")
        print(line, flush=True)


def sweep(args, frameworks):
    fws = [fw for fw in frameworks if fw != "numpy"]
    with SideBySide(sweep_setup, fws, args=(args.batch_sizes, args.sweep_images),
                    threads=args.threads, pause=args.pause) as bench:
        print("convnet training time per image, " + ", ".join(bench.info[fw]["version"]
                                                               for fw in fws)
              + f"; {args.threads} threads each, ~{args.sweep_images} images per turn, best of "
              f"{args.reps}")
        print(f"{'batch':>5} {'ours us/image':>13} {'torch us/image':>14} {'ratio':>6}")
        table = {}
        for bs in args.batch_sizes:
            best = bench.best(bs, rounds=args.reps)
            table[bs] = {fw: best[fw] / bench.info[fw]["images"][bs] * 1e6 for fw in best}
            row = table[bs]
            print(f"{bs:5d} {row['ours']:13.1f} {fmt(row.get('torch'), 14, '.1f')} "
                  f"{fmt(ratio(row, 'torch'), 6, '.2f')}",
                  flush=True)
    if args.plot:
        plot(table, args.plot)


def plot(table, path):
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed, so no plot (pip install matplotlib)")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sizes = sorted(table)
    fig, ax = plt.subplots(figsize=(6, 4))
    for fw, label in (("ours", "tinygrad_edu"), ("torch", "PyTorch")):
        if all(fw in table[bs] for bs in sizes):
            ax.plot(sizes, [table[bs][fw] for bs in sizes], "o-", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(bs) for bs in sizes])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("batch size")
    ax.set_ylabel("training time per image (µs)")
    ax.set_title("MNIST convnet, forward + backward + RMSprop, CPU")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot saved to {path}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    p.add_argument("--reps", type=int, default=3,
                   help="timed epochs (turns) per framework, the best counts (default: 3)")
    p.add_argument("--conv-batches", type=int, default=40,
                   help="convnet batches per turn, extrapolated to the epoch (default: 40)")
    p.add_argument("--threads", type=int, default=2, help="threads of each framework (default: 2)")
    p.add_argument("--pause", type=float, default=0.3,
                   help="seconds between two turns, for thread pools to sleep (default: 0.3)")
    p.add_argument("--memory", action="store_true",
                   help="also compare the peak memory of the convnet and the modern net")
    p.add_argument("--memory-batches", type=int, default=20,
                   help="training steps over which --memory takes the peak (default: 20)")
    p.add_argument("--sweep", action="store_true",
                   help="instead of the epochs: the convnet's time per image per batch size")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64, 128, 256, 512],
                   help="batch sizes of --sweep (default: 32 64 128 256 512)")
    p.add_argument("--sweep-images", type=int, default=2560,
                   help="images per turn of --sweep (default: 2560)")
    p.add_argument("--plot", metavar="PNG", help="with --sweep: save a plot to this file")
    p.add_argument("--compiled", action="store_true",
                   help="also time our training step under tg.compile (a column and its "
                        "ratio to our eager epoch)")
    args = p.parse_args(argv)
    benchmark_environment()
    frameworks = available(["ours", "torch", "numpy"])
    if "torch" not in frameworks:
        print("PyTorch is not installed: timing tinygrad_edu and the hand-written floor only")
    if args.sweep:
        sweep(args, frameworks)
    else:
        epochs(args, frameworks)
    if args.memory:
        memory(args, frameworks)


if __name__ == "__main__":
    main()
