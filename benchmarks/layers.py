"""Layer-level benchmarks: conv2d, max-pool and cross-entropy forward+backward at the tutorial
convnet's shapes (batch 128), and one full training step of the 784-625-625-10 MLP.

When PyTorch is installed it runs the same work in the same process, in rounds alternating
with ours (see best_times), and the ratio ours/PyTorch is printed (< 1: we are faster). Run as

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/layers.py [--quick]
    .venv/bin/python benchmarks/layers.py --profile conv2   # cProfile of one of our cases
"""
import argparse
import time

import numpy as np

import tinygrad_edu as tg
import tinygrad_edu.nn.functional as F

try:
    import torch
    import torch.nn.functional as TF
except ImportError:
    torch = None

CONVS = {"conv1": ((128, 1, 28, 28), 32), "conv2": ((128, 32, 14, 14), 64),
         "conv3": ((128, 64, 7, 7), 128)}
POOLS = {"pool1": (128, 32, 28, 28), "pool2": (128, 64, 14, 14), "pool3": (128, 128, 7, 7)}


def best_times(fns, repeats, rounds=3):
    """Best seconds per call of each function. Rounds alternate between the functions (ours,
    theirs, ours, ...) so that a noisy neighbour slows both alike; within a round each runs
    ``repeats`` times in a row, so that one library's thread pool, still spinning after its
    turn, cannot slow every single call of the other."""
    for fn in fns:
        fn()  # warm-up (compilation, caches)
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                best[i] = min(best[i], time.perf_counter() - t0)
    return best


def cases(rng):
    """name -> (ours, torch's or None): each a zero-argument forward+backward step."""
    out = {}
    for name, (shape, f) in CONVS.items():
        x = rng.standard_normal(shape, dtype=np.float32)
        w = rng.standard_normal((f, shape[1], 3, 3), dtype=np.float32) * 0.1
        b = np.zeros(f, np.float32)
        tx, tw, tb = (tg.Tensor(a, requires_grad=True) for a in (x, w, b))

        def ours(tx=tx, tw=tw, tb=tb):
            tw.grad = tb.grad = tx.grad = None
            y = F.conv2d(tx, tw, tb, padding=1)
            y.backward(tg.ones_like(y))
        out[name] = (ours, _torch_case(lambda a, w, b: TF.conv2d(a, w, b, padding=1), x, w, b))
    for name, shape in POOLS.items():
        x = rng.standard_normal(shape, dtype=np.float32)
        tx = tg.Tensor(x, requires_grad=True)

        def ours(tx=tx):
            tx.grad = None
            y = F.max_pool2d(tx, 2, ceil_mode=True)
            y.backward(tg.ones_like(y))
        out[name] = (ours, _torch_case(lambda a: TF.max_pool2d(a, 2, ceil_mode=True), x))
    logits = rng.standard_normal((128, 10), dtype=np.float32)
    labels = rng.integers(0, 10, 128)
    tl, ty = tg.Tensor(logits, requires_grad=True), tg.Tensor(labels)

    def ce(tl=tl):
        tl.grad = None
        F.cross_entropy(tl, ty).backward()
    out["cross_entropy"] = (ce, _torch_case(
        lambda a: TF.cross_entropy(a, torch.from_numpy(labels)), logits, scalar=True))
    out["mlp_step"] = (_our_mlp(rng), _torch_mlp(rng) if torch else None)
    return out


def _torch_case(fn, *arrays, scalar=False):
    if torch is None:
        return None
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]

    def run():
        for t in ts:
            t.grad = None
        y = fn(*ts)
        if scalar:
            y.backward()
        else:
            y.backward(torch.ones_like(y))
    return run


def _mlp_data(rng):
    return (rng.random((128, 784), dtype=np.float32), rng.integers(0, 10, 128))


def _our_mlp(rng):
    sizes = [784, 625, 625, 10]
    params = []
    for i, o in zip(sizes, sizes[1:]):
        params += [tg.Tensor(rng.standard_normal((o, i), dtype=np.float32) * 0.01, requires_grad=True),
                   tg.Tensor(np.zeros(o, np.float32), requires_grad=True)]
    x, y = (tg.Tensor(a) for a in _mlp_data(rng))

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


def _torch_mlp(rng):
    model = torch.nn.Sequential(torch.nn.Linear(784, 625), torch.nn.ReLU(), torch.nn.Linear(625, 625),
                                torch.nn.ReLU(), torch.nn.Linear(625, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = (torch.from_numpy(a) for a in _mlp_data(rng))

    def step():
        loss = TF.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--profile", metavar="CASE", help="profile one of our cases instead")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    table = cases(rng)
    if args.profile:
        import cProfile
        import pstats
        fn = table[args.profile][0]
        fn()
        cProfile.runctx("for _ in range(10): fn()", globals(), {"fn": fn}, "/tmp/layers.prof")
        pstats.Stats("/tmp/layers.prof").sort_stats("tottime").print_stats(15)
        return
    repeats = 2 if args.quick else 4
    if torch is not None:
        torch.manual_seed(0)
        print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'case':<15} {'ours ms':>9} {'torch ms':>9} {'ratio':>7}")
    for name, (ours, theirs) in table.items():
        t_ours, t_theirs = best_times([ours, theirs], repeats) if theirs else (
            best_times([ours], repeats)[0], None)
        ratio = f"{t_ours / t_theirs:7.2f}" if t_theirs else "      -"
        theirs_ms = f"{t_theirs * 1e3:9.2f}" if t_theirs else "        -"
        print(f"{name:<15} {t_ours * 1e3:9.2f} {theirs_ms} {ratio}", flush=True)


if __name__ == "__main__":
    main()
