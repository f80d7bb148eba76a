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
import os
import sys
import time

CASES = {"lstm28": ("LSTM", 28), "lstm100": ("LSTM", 100), "gru28": ("GRU", 28),
         "gru100": ("GRU", 100)}
BATCH, INPUT, HIDDEN = 64, 28, 128
GATES = {"LSTM": 4, "GRU": 3}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


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


def set_threads(threads):
    """Before NumPy or PyTorch is imported: every thread pool gets ``threads`` threads."""
    for var in THREAD_VARIABLES:
        os.environ[var] = str(threads)


def worker(framework, case_names, threads, conn):
    """A child process: build the cases, then answer requests {"case", "reps"} from the parent
    with the seconds of each call, until it sends None."""
    set_threads(threads)
    if framework == "torch":
        import torch
        torch.set_num_threads(threads)
        make, version = torch_step, f"PyTorch {torch.__version__}"
    else:
        import numpy as np
        make, version = our_step, f"tinygrad_edu on NumPy {np.__version__}"
    steps, summaries = {}, {}
    for name in case_names:
        steps[name], summary = make(*CASES[name])
        steps[name]()  # warm-up: Numba compilation, allocator, caches
        summaries[name] = summary()
    conn.send({"version": version, "summaries": summaries})
    while (request := conn.recv()) is not None:
        fn, seconds = steps[request["case"]], []
        for _ in range(request["reps"]):
            t0 = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - t0)
        conn.send(seconds)


def torch_available():
    import importlib.util
    return importlib.util.find_spec("torch") is not None


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
    set_threads(args.threads)
    if args.profile:
        return profile(args.profile)
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    frameworks = ["ours"] + (["torch"] if torch_available() else [])
    pipes, procs, info = {}, [], {}
    for fw in frameworks:
        parent_end, child_end = ctx.Pipe()
        proc = ctx.Process(target=worker, args=(fw, args.cases, args.threads, child_end),
                           daemon=True)
        proc.start()
        pipes[fw] = parent_end
        procs.append(proc)
        info[fw] = parent_end.recv()  # one at a time: the next child starts after this is set up
    print(", ".join(info[fw]["version"] for fw in frameworks)
          + f"; {args.threads} threads each, one process each")
    if "torch" not in info:
        print("PyTorch is not installed: timing tinygrad_edu only")
    print(f"{'case':<8} {'steps':>5} {'ours ms':>9} {'torch ms':>9} {'ratio':>6}  same result")
    rounds = 3 if args.quick else 6
    try:
        for name in args.cases:
            best = dict.fromkeys(frameworks, float("inf"))
            for _ in range(rounds):
                for fw in frameworks:
                    pipes[fw].send({"case": name, "reps": args.reps})
                    best[fw] = min(best[fw], *pipes[fw].recv())
                    time.sleep(args.pause)
            line = f"{name:<8} {CASES[name][1]:>5} {best['ours'] * 1e3:9.2f}"
            if "torch" in best:
                (ours_sum, ours_norm), (t_sum, t_norm) = (info[fw]["summaries"][name]
                                                         for fw in frameworks)
                agree = math.isclose(ours_sum, t_sum, rel_tol=1e-3, abs_tol=1e-3) and \
                    math.isclose(ours_norm, t_norm, rel_tol=1e-3)
                line += (f" {best['torch'] * 1e3:9.2f} {best['ours'] / best['torch']:6.2f}  "
                         + ("yes" if agree else f"NO: loss {ours_sum:.6g} vs {t_sum:.6g}, "
                                                f"grad norm {ours_norm:.6g} vs {t_norm:.6g}"))
            print(line, flush=True)
    finally:
        for fw in frameworks:
            pipes[fw].send(None)
        for proc in procs:
            proc.join(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
