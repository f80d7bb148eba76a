"""Seconds per MNIST training epoch (60,000 images, batch 128) for the tutorials' four models,
ours and, when PyTorch is installed, PyTorch CPU on the same data in the same run.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/mnist.py
    ... benchmarks/mnist.py --models convnet --conv-batches 60 --memory

The dense models run a whole epoch each. The convnet times ``--conv-batches`` batches and
extrapolates to the 469 of an epoch (the line says so). ``--memory`` runs the convnet once more
in a fresh child process per framework and compares peak resident memory above what the process
held after imports, data and a warm-up on 4 images (which compiles the Numba kernels): the same measure for both.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import tinygrad_edu as tg  # noqa: E402
from tinygrad_edu import optim  # noqa: E402
from tinygrad_edu.data import load_mnist  # noqa: E402
import convnet  # noqa: E402
import logistic_regression  # noqa: E402
import mlp  # noqa: E402
import modern_net  # noqa: E402

try:
    import torch
    import torch.nn as tnn
except ImportError:
    torch = None

BATCH = 128
MODELS = ["logistic_regression", "mlp", "modern_net", "convnet"]


def ours(name):
    """(model, optimizer) exactly as the example script builds them."""
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
    """The same architecture and optimizer in PyTorch (also used by gpu.py, on "cuda")."""
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


def our_epoch(model, opt, X, y, batches):
    F = tg.nn.functional
    model.train()
    for i in range(batches):
        xb, yb = tg.Tensor(X[i * BATCH:(i + 1) * BATCH]), tg.Tensor(y[i * BATCH:(i + 1) * BATCH])
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def torch_epoch(model, opt, X, y, batches):
    model.train()
    for i in range(batches):
        xb = torch.from_numpy(X[i * BATCH:(i + 1) * BATCH])
        yb = torch.from_numpy(y[i * BATCH:(i + 1) * BATCH])
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def data(name):
    mnist = load_mnist(flatten=name != "convnet", validation_size=0)
    return mnist.train.X, mnist.train.y.astype(np.int64)


def timed(epoch_fn, model, opt, X, y, batches):
    epoch_fn(model, opt, X, y, 2)  # warm-up: Numba compilation, allocator, caches
    t0 = time.perf_counter()
    epoch_fn(model, opt, X, y, batches)
    return time.perf_counter() - t0


def peak_memory_child(framework, batches):
    """Run the convnet for ``batches`` batches in a fresh process; MiB above the baseline."""
    out = subprocess.run([sys.executable, __file__, "--child", framework, "--conv-batches",
                          str(batches)], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(framework, batches):
    X, y = data("convnet")
    X, y = X[:batches * BATCH].copy(), y[:batches * BATCH].copy()  # drop the rest of the data
    model, opt = ours("convnet") if framework == "ours" else theirs("convnet")
    epoch = our_epoch if framework == "ours" else torch_epoch
    epoch(model, opt, X[:4], y[:4], 1)  # a 4-image warm-up outside the measure: compiles Numba's
    # kernels (whose compiler's memory would count otherwise) without filling allocator pools
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # Linux: reset the peak-RSS mark (VmHWM), so loading the data is not counted
    base = _status_kib("VmRSS")
    epoch(model, opt, X, y, batches)
    print((_status_kib("VmHWM") - base) / 1024)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    p.add_argument("--conv-batches", type=int, default=40,
                   help="convnet batches to time (then extrapolated to a full epoch)")
    p.add_argument("--memory", action="store_true", help="also compare the convnet's peak memory")
    p.add_argument("--child", choices=["ours", "torch"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args.child, args.conv_batches)
    if torch is not None:
        print(f"PyTorch {torch.__version__} CPU, {torch.get_num_threads()} threads; "
              f"NumPy {np.__version__}")
    else:
        print("PyTorch is not installed: timing tinygrad_edu only")
    print(f"{'model':<20} {'ours s/epoch':>12} {'torch s/epoch':>13} {'ratio':>6}")
    for name in args.models:
        X, y = data(name)
        full = len(X) // BATCH + (len(X) % BATCH > 0)
        batches = min(args.conv_batches, full) if name == "convnet" else full
        scale = full / batches
        t_ours = timed(our_epoch, *ours(name), X, y, batches) * scale
        line = f"{name:<20} {t_ours:12.2f}"
        if torch is not None:
            t_torch = timed(torch_epoch, *theirs(name), X, y, batches) * scale
            line += f" {t_torch:13.2f} {t_ours / t_torch:6.2f}"
        if scale > 1:
            line += f"   ({batches} batches timed, x{scale:.1f} for the epoch)"
        print(line, flush=True)
    if args.memory and torch is not None:
        m_ours = peak_memory_child("ours", 20)
        m_torch = peak_memory_child("torch", 20)
        print(f"convnet peak memory above baseline (20 batches): ours {m_ours:.0f} MiB, "
              f"torch {m_torch:.0f} MiB, ratio {m_ours / max(m_torch, 1e-9):.2f}")


if __name__ == "__main__":
    main()
