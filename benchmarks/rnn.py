"""Recurrent layers, forward + backward: nn.LSTM and nn.GRU at batch 64, input 28, hidden 128,
float32, over 28 and 100 time steps, ours against PyTorch CPU, each in its own process.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/rnn.py [--quick]
    .venv/bin/python benchmarks/rnn.py --profile lstm100      # cProfile of our side of one case

One step = zero the gradients, ``out, _ = layer(x)`` on x of shape (L, 64, 28), then
``out.backward(g)`` with a fixed random g: the gradients of all four parameters (x needs none,
as in training on data). Both layers start from the same weights (PyTorch's names and layouts,
drawn once here), and the script checks that both give the same loss and gradient norm, so
they are known to do the same work.

How the two are kept apart: each framework runs in a child process of its own (spawned, so
neither library is ever imported next to the other), with the same number of threads
(``--threads``, 2: OpenBLAS, OpenMP, MKL, Numba and ``torch.set_num_threads``). The parent
asks one child for ``--reps`` timed calls, waits for its answer, pauses (``--pause``) so that
the child's thread pools fall asleep, then asks the other: one computes at a time, and rounds
alternate between them, so a noisy neighbour slows both alike. The figure is the best call.
"""
import argparse
import math
import sys

from _sidebyside import SideBySide, available, benchmark_environment, set_threads

CASES = {"lstm28": ("LSTM", 28), "lstm100": ("LSTM", 100), "gru28": ("GRU", 28),
         "gru100": ("GRU", 100)}
BATCH, INPUT, HIDDEN = 64, 28, 128
GATES = {"LSTM": 4, "GRU": 3}


def arrays(kind, seq):
    """The case's data, the same in both processes: x (L, N, 28), the upstream gradient g of the
    output (L, N, 128) and the layer's weights by PyTorch's names, U(-1/sqrt(H), 1/sqrt(H))."""
    import numpy as np
    rng = np.random.default_rng(seq)
    k, rows = 1 / math.sqrt(HIDDEN), GATES[kind] * HIDDEN
    shapes = {"weight_ih_l0": (rows, INPUT), "weight_hh_l0": (rows, HIDDEN),
              "bias_ih_l0": (rows,), "bias_hh_l0": (rows,)}
    weights = {name: rng.uniform(-k, k, shape).astype(np.float32)
               for name, shape in shapes.items()}
    x = rng.standard_normal((seq, BATCH, INPUT), dtype=np.float32)
    g = rng.standard_normal((seq, BATCH, HIDDEN), dtype=np.float32)
    return x, g, weights


def our_step(kind, seq):
    """(step, summary): step() is one forward + backward of our layer; summary() gives the sum of
    out * g and the norm of all gradients, for the agreement check."""
    import numpy as np
    import tinygrad_edu as tg
    x, g, weights = arrays(kind, seq)
    layer = getattr(tg.nn, kind)(INPUT, HIDDEN)
    layer.load_state_dict(weights)
    tx, tg_out = tg.from_numpy(x), tg.from_numpy(g)
    params = list(layer.parameters())

    def step():
        for p in params:
            p.grad = None
        out, _ = layer(tx)
        out.backward(tg_out)
        return out

    def summary():
        out = step()
        norm = math.sqrt(sum(float(np.vdot(p.grad.data, p.grad.data)) for p in params))
        return float((out.data.astype(np.float64) * g).sum()), norm
    return step, summary


def torch_step(kind, seq):
    """The same as our_step, with torch.nn.LSTM / GRU."""
    import numpy as np
    import torch
    x, g, weights = arrays(kind, seq)
    layer = getattr(torch.nn, kind)(INPUT, HIDDEN)
    with torch.no_grad():
        for name, p in layer.named_parameters():
            p.copy_(torch.from_numpy(weights[name]))
    tx, t_out = torch.from_numpy(x), torch.from_numpy(g)

    def step():
        layer.zero_grad(set_to_none=True)
        out, _ = layer(tx)
        out.backward(t_out)
        return out

    def summary():
        out = step()
        norm = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in layer.parameters()))
        return float((out.detach().double().numpy() * g.astype(np.float64)).sum()), norm
    return step, summary


def setup(framework, case_names):
    """In a worker: (tasks, info) for _sidebyside. Each case's step is warmed up (Numba
    compilation, allocator, caches) and its summary computed for the agreement check."""
    if framework == "torch":
        import torch
        make, version = torch_step, f"PyTorch {torch.__version__}"
    else:
        import numpy as np
        make, version = our_step, f"tinygrad_edu on NumPy {np.__version__}"
    steps, summaries = {}, {}
    for name in case_names:
        steps[name], summary = make(*CASES[name])
        steps[name]()
        summaries[name] = summary()
    return steps, {"version": version, "summaries": summaries}


def profile(case):
    """Our side of one case under cProfile: the 25 most expensive functions by own time."""
    import cProfile
    import pstats
    step, _ = our_step(*CASES[case])
    step()
    prof = cProfile.Profile()
    prof.runcall(lambda: [step() for _ in range(10)])
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES),
                   help="cases to time (default: all)")
    p.add_argument("--quick", action="store_true", help="3 rounds instead of 6")
    p.add_argument("--reps", type=int, default=3, help="timed calls per turn (default: 3)")
    p.add_argument("--threads", type=int, default=2, help="threads of each framework (default: 2)")
    p.add_argument("--pause", type=float, default=0.3,
                   help="seconds between two turns, for thread pools to sleep (default: 0.3)")
    p.add_argument("--profile", metavar="CASE", choices=list(CASES),
                   help="profile our side of one case instead")
    args = p.parse_args(argv)
    benchmark_environment()
    if args.profile:
        set_threads(args.threads)
        return profile(args.profile)
    with SideBySide(setup, available(["ours", "torch"]), args=(args.cases,),
                    threads=args.threads, pause=args.pause) as bench:
        info = bench.info
        print(", ".join(info[fw]["version"] for fw in bench.frameworks)
              + f"; {args.threads} threads each, one process each")
        if "torch" not in info:
            print("PyTorch is not installed: timing tinygrad_edu only")
        print(f"{'case':<8} {'steps':>5} {'ours ms':>9} {'torch ms':>9} {'ratio':>6}  same result")
        for name in args.cases:
            best = bench.best(name, rounds=3 if args.quick else 6, reps=args.reps)
            line = f"{name:<8} {CASES[name][1]:>5} {best['ours'] * 1e3:9.2f}"
            if "torch" in best:
                (ours_sum, ours_norm), (t_sum, t_norm) = (info[fw]["summaries"][name]
                                                         for fw in ("ours", "torch"))
                agree = math.isclose(ours_sum, t_sum, rel_tol=1e-3, abs_tol=1e-3) and \
                    math.isclose(ours_norm, t_norm, rel_tol=1e-3)
                line += (f" {best['torch'] * 1e3:9.2f} {best['ours'] / best['torch']:6.2f}  "
                         + ("yes" if agree else f"NO: loss {ours_sum:.6g} vs {t_sum:.6g}, "
                                                f"grad norm {ours_norm:.6g} vs {t_norm:.6g}"))
            print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
