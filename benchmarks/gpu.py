"""GPU benchmark: ours (CuPy + kernels/*.cu) against PyTorch CUDA, per MNIST epoch and per op.

Seconds per MNIST epoch and per layer op, in the same run on the same GPU.

    .venv/bin/python benchmarks/gpu.py                       # both models, then the layer ops
    .venv/bin/python benchmarks/gpu.py --models convnet --batches 100 --repeats 1
    .venv/bin/python benchmarks/gpu.py --ops-only            # only the layer ops and kernels
    .venv/bin/python benchmarks/gpu.py --ours-only           # without PyTorch

1. Epochs: the tutorials' modern net (784-625-625-10, ReLU, dropout 0.2/0.5) and convnet (three
   blocks of 3x3 conv 32/64/128 with padding 1, ReLU, 2x2 max-pool in ceil mode and dropout, then
   128*4*4 -> 625 -> 10), both trained with RMSprop (lr 1e-3, alpha 0.9, eps 1e-6) on the 60,000
   MNIST training images in batches of 128 (469 batches), in file order. Ours are built by
   examples/modern_net.py and examples/convnet.py; PyTorch's are the same layers. Each batch is
   copied from the host to the GPU, as ``tg.training.fit`` and a plain PyTorch loop do.
2. Layer ops at the convnet's shapes (batch 128), forward + backward: conv2d (our im2col kernel,
   one cuBLAS GEMM, our col2im kernel; PyTorch: cuDNN), max_pool2d (our forward and backward
   kernels), cross_entropy (our fused softmax-CE kernels); then the GPU time of each of our raw
   kernels alone (CUDA events), to show how much of an op is kernel and how much is the rest.

Timing: every measurement synchronizes the device before starting the clock and before stopping
it (both libraries queue work asynchronously), warms up first (NVRTC compiles our kernels,
cuBLAS/cuDNN pick algorithms), and interleaves ours and PyTorch's so that a busy GPU slows both.
TF32 is switched off in PyTorch (CuPy does not use it unless CUPY_TF32=1), so both compute in
float32. Without CuPy, a GPU, or a CUDA build of PyTorch the script says what is missing and
exits.
"""
import argparse
import math
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import tinygrad_edu as tg  # noqa: E402
import tinygrad_edu.nn.functional as F  # noqa: E402
from tinygrad_edu.backend import get_xp  # noqa: E402

BATCH = 128
MODELS = ["modern_net", "convnet"]
CONVS = {"conv1": ((BATCH, 1, 28, 28), 32), "conv2": ((BATCH, 32, 14, 14), 64),
         "conv3": ((BATCH, 64, 7, 7), 128)}
POOLS = {"pool1": (BATCH, 32, 28, 28), "pool2": (BATCH, 64, 14, 14), "pool3": (BATCH, 128, 7, 7)}

cp = torch = None  # imported by require()


def require(ours_only):
    """Import CuPy (and PyTorch with CUDA), or exit with a message naming what is missing."""
    global cp, torch
    problems = []
    try:
        cp = get_xp("cuda")  # CuPy, or a RuntimeError telling a missing package from a missing GPU
    except RuntimeError as e:
        problems.append(f"tinygrad_edu: {e}")
    if not ours_only:
        try:
            import torch as _torch
        except ImportError:
            problems.append("PyTorch is not installed (pip install 'tinygrad_edu[bench]', the "
                            "CUDA build); or pass --ours-only")
        else:
            if not _torch.cuda.is_available():
                problems.append(f"PyTorch {_torch.__version__} has no usable CUDA device "
                                f"(torch.version.cuda = {_torch.version.cuda}: a CPU build or no "
                                "GPU); or pass --ours-only")
            else:
                torch = _torch
                torch.backends.cuda.matmul.allow_tf32 = False
                torch.backends.cudnn.allow_tf32 = False
    if problems:
        sys.exit("benchmarks/gpu.py needs a CUDA GPU with CuPy and a CUDA build of PyTorch:\n  "
                 + "\n  ".join(problems))


def sync():
    """Wait until every queued kernel, ours and PyTorch's, has finished."""
    cp.cuda.runtime.deviceSynchronize()
    if torch is not None:
        torch.cuda.synchronize()


def best_seconds(fns, repeats, number=1, warm_up=True):
    """Best seconds per call of each function (None: skipped), in interleaved rounds, each timed
    between two device synchronizations."""
    fns = [fn for fn in fns if fn is not None]
    for fn in fns if warm_up else ():
        fn()
    sync()
    best = [math.inf] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            sync()
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            sync()
            best[i] = min(best[i], (time.perf_counter() - t0) / number)
    return best


def ratio_line(name, ours, theirs, scale=1e3, note=""):
    line = f"{name:<16} {ours * scale:12.3f}"
    if theirs is not None:
        line += f" {theirs * scale:12.3f} {ours / theirs:7.2f}"
    else:
        line += f" {'-':>12} {'-':>7}"
    print(line + note, flush=True)


# ---- 1. epochs -------------------------------------------------------------------------------
def mnist(flatten):
    """The 60,000 training images, or random data of the same shape (and says so)."""
    try:
        from tinygrad_edu.data import load_mnist
        split = load_mnist(flatten=flatten, validation_size=0, download=False).train
        return split.X, split.y.astype(np.int64), "MNIST"
    except (OSError, ValueError) as e:
        rng = np.random.default_rng(0)
        shape = (60_000, 784) if flatten else (60_000, 1, 28, 28)
        print(f"(MNIST not found ({e}); timing random data of the same shape)")
        return (rng.random(shape, dtype=np.float32), rng.integers(0, 10, 60_000),
                "random data")


def our_model(name):
    import convnet
    import modern_net
    tg.manual_seed(0)
    model = (modern_net.build() if name == "modern_net" else convnet.build()).to("cuda")
    return model, modern_net.optimizer(model, 1e-3)


def torch_model(name):
    from mnist import theirs  # benchmarks/mnist.py: the same models, built once for both
    return theirs(name, device="cuda")


def our_epoch(model, opt, X, y, batches):
    model.train()
    for i in range(batches):
        xb = tg.Tensor(X[i * BATCH:(i + 1) * BATCH], device="cuda")
        yb = tg.Tensor(y[i * BATCH:(i + 1) * BATCH], device="cuda")
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss


def torch_epoch(model, opt, X, y, batches):
    model.train()
    for i in range(batches):
        xb = torch.from_numpy(X[i * BATCH:(i + 1) * BATCH]).cuda()
        yb = torch.from_numpy(y[i * BATCH:(i + 1) * BATCH]).cuda()
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss


def epochs(args):
    print(f"\nseconds per epoch (60,000 images, batch {BATCH}, RMSprop), best of {args.repeats}")
    print(f"{'model':<16} {'ours s':>12} {'torch s':>12} {'ratio':>7}")
    for name in args.models:
        X, y, source = mnist(flatten=name == "modern_net")
        full = math.ceil(len(X) / BATCH)
        batches = min(args.batches or full, full)
        ours = our_model(name)
        theirs = torch_model(name) if torch is not None else None
        our_epoch(*ours, X, y, 3)  # warm-up: compile kernels, fill memory pools, pick algorithms
        if theirs is not None:
            torch_epoch(*theirs, X, y, 3)
        fns = [lambda: our_epoch(*ours, X, y, batches),
               theirs and (lambda: torch_epoch(*theirs, X, y, batches))]
        times = best_seconds(fns, args.repeats, warm_up=False) + [None]
        scale = full / batches
        note = f"   {source}" + (f", {batches} batches timed, x{scale:.1f}" if scale > 1 else "")
        ratio_line(name, times[0] * scale, times[1] and times[1] * scale, 1.0, note)


# ---- 2. layer ops and raw kernels ------------------------------------------------------------
def op_cases(rng):
    """name -> (ours, torch's or None): zero-argument forward + backward steps on the GPU."""
    cases = {}

    def pair(*arrays):
        """The same inputs as our tensors and (when PyTorch runs) as PyTorch's, on the GPU."""
        ours = [tg.Tensor(a, requires_grad=True, device="cuda") for a in arrays]
        if torch is None:
            return ours, None
        return ours, [torch.tensor(a, requires_grad=True, device="cuda") for a in arrays]

    def step(fn, tensors, scalar=False):
        def run():
            for t in tensors:
                t.grad = None
            out = fn(*tensors)
            out.backward() if scalar else out.backward(grad_like(out))
        return run

    def grad_like(out):
        return tg.ones_like(out) if isinstance(out, tg.Tensor) else torch.ones_like(out)

    for name, (shape, f) in CONVS.items():
        x = rng.standard_normal(shape, dtype=np.float32)
        w = rng.standard_normal((f, shape[1], 3, 3), dtype=np.float32) * 0.1
        ours, theirs = pair(x, w, np.zeros(f, np.float32))
        cases[name] = (step(lambda a, w, b: F.conv2d(a, w, b, padding=1), ours),
                       theirs and step(lambda a, w, b: torch.nn.functional.conv2d(
                           a, w, b, padding=1), theirs))
    for name, shape in POOLS.items():
        ours, theirs = pair(rng.standard_normal(shape, dtype=np.float32))
        cases[name] = (step(lambda a: F.max_pool2d(a, 2, ceil_mode=True), ours),
                       theirs and step(lambda a: torch.nn.functional.max_pool2d(
                           a, 2, ceil_mode=True), theirs))
    labels = rng.integers(0, 10, BATCH)
    ours, theirs = pair(rng.standard_normal((BATCH, 10), dtype=np.float32))
    our_labels = tg.Tensor(labels, device="cuda")
    cases["cross_entropy"] = (step(lambda z: F.cross_entropy(z, our_labels), ours, True), None)
    if theirs is not None:
        torch_labels = torch.tensor(labels, device="cuda")
        cases["cross_entropy"] = (cases["cross_entropy"][0], step(
            lambda z: torch.nn.functional.cross_entropy(z, torch_labels), theirs, True))
    return cases


def kernel_cases(rng):
    """name -> a zero-argument call of one raw launcher from ops/cuda_kernels.py."""
    from tinygrad_edu.ops import cuda_kernels as ck
    cases = {}
    for name, (shape, f) in CONVS.items():
        x = cp.asarray(rng.standard_normal(shape, dtype=np.float32))
        cols = ck.im2col(x, 3, 3, 1, 1, 1, 1)
        cases[f"{name} im2col"] = lambda x=x: ck.im2col(x, 3, 3, 1, 1, 1, 1)
        cases[f"{name} col2im"] = lambda c=cols, s=shape: ck.col2im(c, s, 3, 3, 1, 1, 1, 1)
    for name, shape in POOLS.items():
        x = cp.asarray(rng.standard_normal(shape, dtype=np.float32))
        oh, ow = -(-shape[2] // 2), -(-shape[3] // 2)  # ceil mode
        y, idx = ck.maxpool2d_forward(x, 2, 2, 2, 2, 0, 0, oh, ow)
        cases[f"{name} forward"] = lambda x=x, o=(oh, ow): ck.maxpool2d_forward(
            x, 2, 2, 2, 2, 0, 0, *o)
        cases[f"{name} backward"] = lambda g=y, i=idx, s=shape: ck.maxpool2d_backward(
            g, i, s, 2, 2, 2, 2, 0, 0)
    z = cp.asarray(rng.standard_normal((BATCH, 10), dtype=np.float32))
    labels = cp.asarray(rng.integers(0, 10, BATCH))
    loss, lse = ck.softmax_ce_forward(z, labels)
    gy = cp.ones(BATCH, cp.float32)
    cases["softmax_ce forward"] = lambda: ck.softmax_ce_forward(z, labels)
    cases["softmax_ce backward"] = lambda: ck.softmax_ce_backward(z, labels, lse, gy)
    return cases


def kernel_ms(fn, repeats, number):
    """GPU time of one call in milliseconds, from CUDA events around ``number`` calls."""
    fn()
    start, end = cp.cuda.Event(), cp.cuda.Event()
    best = math.inf
    for _ in range(repeats):
        start.record()
        for _ in range(number):
            fn()
        end.record()
        end.synchronize()
        best = min(best, cp.cuda.get_elapsed_time(start, end) / number)
    return best


def ops(args):
    rng = np.random.default_rng(0)
    print(f"\nlayer ops at the convnet's shapes (batch {BATCH}), forward + backward, "
          f"ms per call, best of {args.repeats} x {args.number}")
    print(f"{'op':<16} {'ours ms':>12} {'torch ms':>12} {'ratio':>7}")
    for name, (ours, theirs) in op_cases(rng).items():
        t = best_seconds([ours, theirs], args.repeats, args.number) + [None]
        ratio_line(name, t[0], t[1])
    print("\nour raw CUDA kernels alone (GPU time from CUDA events, ms per call); the conv "
          "GEMMs run in cuBLAS")
    for name, fn in kernel_cases(rng).items():
        print(f"{name:<22} {kernel_ms(fn, args.repeats, args.number):9.4f}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    p.add_argument("--batches", type=int, default=None,
                   help="time this many batches per epoch and extrapolate (default: all 469)")
    p.add_argument("--repeats", type=int, default=2, help="rounds per measurement (best is kept)")
    p.add_argument("--number", type=int, default=20, help="calls per round for the layer ops")
    p.add_argument("--ops-only", action="store_true", help="skip the epochs")
    p.add_argument("--ours-only", action="store_true", help="time tinygrad_edu without PyTorch")
    args = p.parse_args()
    require(args.ours_only)
    device = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)["name"].decode()
    print(f"GPU: {device}; CuPy {cp.__version__}"
          + (f"; PyTorch {torch.__version__} (CUDA {torch.version.cuda}, TF32 off)"
             if torch is not None else "; PyTorch not used (--ours-only)"))
    print("ratio = ours / PyTorch (< 1: we are faster)")
    if not args.ops_only:
        epochs(args)
    ops(args)


if __name__ == "__main__":
    main()
