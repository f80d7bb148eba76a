"""The CPU kernels of ``tinygrad_edu.ops.cpu_kernels``: whole-array NumPy against Numba.

Times im2col and col2im at the tutorial convnet's three convolutions and max-pool forward and
backward at its three pools (batch 128, float32), prints milliseconds for the NumPy twins of
the kernels (the test references, ``tests/refs.py``) and for the Numba kernels, and the ratio
numba / numpy (< 1: Numba is faster); then the cold-start cost of each Numba kernel: its first
call in a fresh process, once compiling from scratch (empty disk cache) and once loading the
machine code that run left in the cache. Run it as

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/cpu_kernels.py
    (--quick: fewer repeats)
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import refs  # noqa: E402  (tests/refs.py: the NumPy twins)

CONVS = {"conv1": (128, 1, 28, 28), "conv2": (128, 32, 14, 14), "conv3": (128, 64, 7, 7)}
CONV_GEOMETRY = (3, 3, 1, 1, 1, 1)                     # kh, kw, sh, sw, ph, pw
POOLS = {"pool1": (128, 32, 28, 28), "pool2": (128, 64, 14, 14), "pool3": (128, 128, 7, 7)}
POOL_GEOMETRY = (2, 2, 2, 2, 0, 0)                     # with ceil_mode: 28 -> 14, 7 -> 4


def best_ms(fn, repeats):
    fn()                                   # warm-up: compilation, page faults of new buffers
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def cases(rng):
    """(name, numpy call, numba call) for every kernel and shape."""
    from tinygrad_edu.ops import cpu_kernels as ck
    out = []
    for name, shape in CONVS.items():
        x = rng.standard_normal(shape, dtype=np.float32)
        cols = refs.im2col(x, *CONV_GEOMETRY)
        out.append((f"im2col {name} {shape}",
                    lambda x=x: np.ascontiguousarray(refs.im2col(x, *CONV_GEOMETRY)),
                    lambda x=x: ck.im2col(x, *CONV_GEOMETRY)))
        out.append((f"col2im {name} {cols.shape}",
                    lambda c=cols, s=shape: np.ascontiguousarray(
                        refs.col2im(c, s, *CONV_GEOMETRY)),
                    lambda c=cols, s=shape: ck.col2im(c, s, *CONV_GEOMETRY)))
    for name, shape in POOLS.items():
        x = rng.standard_normal(shape, dtype=np.float32)
        size = (refs.out_size(shape[2], 2, 2, 0, True), refs.out_size(shape[3], 2, 2, 0, True))
        y, idx = refs.maxpool2d_forward(x, *POOL_GEOMETRY, *size)
        out.append((f"maxpool fwd {name} {shape}",
                    lambda x=x, s=size: refs.maxpool2d_forward(x, *POOL_GEOMETRY, *s),
                    lambda x=x, s=size: ck.maxpool2d_forward(x, *POOL_GEOMETRY, *s)))
        out.append((f"maxpool bwd {name} {shape}",
                    lambda g=y, i=idx, s=shape: refs.maxpool2d_backward(g, i, s),
                    lambda g=y, i=idx, s=shape: ck.maxpool2d_backward(g, i, s)))
    return out


def first_calls():
    """Seconds for importing the kernels (which imports Numba), then for the first call of
    each kernel (float32): run in a fresh process, where that call compiles the kernel or loads
    it from the disk cache."""
    x = np.ones((2, 3, 6, 6), np.float32)
    t0 = time.perf_counter()
    from tinygrad_edu.ops import cpu_kernels as ck   # every first call pays this once
    times = {"import kernels": time.perf_counter() - t0}
    calls = {"im2col": lambda: ck.im2col(x, 3, 3, 1, 1, 1, 1),
             "col2im": lambda: ck.col2im(np.ones((72, 27), np.float32), x.shape,
                                         3, 3, 1, 1, 1, 1),
             "maxpool fwd": lambda: ck.maxpool2d_forward(x, 2, 2, 2, 2, 0, 0, 3, 3),
             "maxpool bwd": lambda: ck.maxpool2d_backward(
                 np.ones((2, 3, 3, 3), np.float32), np.zeros((2, 3, 3, 3), np.int64), x.shape)}
    for name, call in calls.items():
        t0 = time.perf_counter()
        call()
        times[name] = time.perf_counter() - t0
    return times


def cold_start():
    """first_calls() in two fresh processes sharing a new, empty NUMBA_CACHE_DIR: the first
    compiles every kernel and saves it, the second loads it from there."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        runs = []
        for _ in range(2):
            done = subprocess.run([sys.executable, __file__, "--first-calls"], env=env,
                                  check=True, capture_output=True, text=True)
            runs.append(json.loads(done.stdout))
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--first-calls", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.first_calls:   # the child process of cold_start()
        print(json.dumps(first_calls()))
        return

    from tinygrad_edu.ops import cpu_kernels  # noqa: F401  (before numba: sets OMP_WAIT_POLICY)
    import numba
    print(f"numpy {np.__version__}, numba {numba.__version__}, "
          f"{numba.config.NUMBA_NUM_THREADS} threads, float32\n")
    print(f"{'kernel':42s} {'numpy ms':>9s} {'numba ms':>9s} {'numba/numpy':>12s}")
    repeats = 3 if args.quick else 10
    for name, numpy_call, numba_call in cases(np.random.default_rng(0)):
        t_np, t_nb = best_ms(numpy_call, repeats), best_ms(numba_call, repeats)
        print(f"{name:42s} {t_np:9.2f} {t_nb:9.2f} {t_nb / t_np:12.2f}")

    print("\nfirst call in a fresh process, seconds (importing the kernels and Numba counted "
          "separately)")
    cold, warm = cold_start()
    print(f"{'':14s} {'empty cache (compile)':>22s} {'warm disk cache (load)':>23s}")
    for name in cold:
        print(f"{name:14s} {cold[name]:22.2f} {warm[name]:23.2f}")


if __name__ == "__main__":
    main()
