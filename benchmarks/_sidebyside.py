"""Side-by-side timing: each framework in a process of its own, the processes taking turns.

    with SideBySide(setup, ["ours", "torch"], args=(cases,), threads=2) as bench:
        best = bench.best("conv1", rounds=3, reps=4)       # {"ours": seconds, "torch": seconds}

Why: two thread pools in one process fight. After its turn, one library's threads keep spinning
for a while (OpenMP's wait policy, OpenBLAS's thread timeout) and steal the cores from the other,
so each framework gets a spawned child process of its own (neither library is ever imported next
to the other), with the same number of threads: ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
``MKL_NUM_THREADS`` and ``NUMBA_NUM_THREADS`` are in the child's environment from its first
instruction (set around ``Process.start``, then restored in the parent), and the torch worker
calls ``torch.set_num_threads``. The parent asks one worker for a timed turn, waits for the
answer, pauses (``pause``) so that the worker's thread pools fall asleep, then asks the next:
one computes at a time, and rounds alternate between them, so a noisy neighbour slows all alike.
``best`` keeps the best (smallest) time of every framework: noise only ever adds time.

``setup(framework, *args)`` runs in the worker and returns ``(tasks, info)``: ``tasks`` maps a
name to a zero-argument function, or to ``(function, number)`` to time ``number`` calls in a row
and report seconds per call (as ``timeit`` does); ``info`` is anything picklable for the parent
(versions, results to cross-check). ``setup`` does its own warm-up and must be importable (a
module-level function). Workers are spawned, so they import the calling script again: keep its
top level free of NumPy and PyTorch, and its work under ``if __name__ == "__main__":``.
A worker that raises, dies or (with ``timeout``) stays silent makes the parent raise
``WorkerError`` with the worker's traceback; ``close`` (or leaving the ``with``) stops every
worker.
"""
import contextlib
import gc
import importlib.util
import multiprocessing as mp
import os
import time
import traceback
from multiprocessing.connection import wait

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")
OPENBLAS_TUNING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def benchmark_environment():
    """Unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for this command and the workers it spawns:
    on this machine they slow current NumPy down. For benchmark commands only (tests and CI
    leave the environment as it is)."""
    for var in OPENBLAS_TUNING:
        os.environ.pop(var, None)


def set_threads(threads):
    """The thread variables for work in this process (profiling): call before importing NumPy."""
    os.environ.update({var: str(threads) for var in THREAD_VARIABLES})


def torch_available():
    """Whether PyTorch is installed, without importing it into this process."""
    return importlib.util.find_spec("torch") is not None


def available(frameworks):
    """The frameworks that can run here: "torch" only when PyTorch is installed."""
    return [fw for fw in frameworks if fw != "torch" or torch_available()]


class WorkerError(RuntimeError):
    """A worker raised (the message holds its traceback), died, or did not answer in time."""


@contextlib.contextmanager
def _environment(values):
    saved = {var: os.environ.get(var) for var in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def _worker(setup, framework, args, threads, gc_off, conn):
    """The child: set up, then answer ("time", task, reps) with a list of seconds per call and
    ("call", task) with the task's return value, until the parent sends None."""
    try:
        if framework == "torch":
            import torch
            torch.set_num_threads(threads)
        tasks, info = setup(framework, *args)
        conn.send(("ready", (info, list(tasks))))
        while (request := conn.recv()) is not None:
            task = tasks[request[1]]
            fn, number = task if isinstance(task, tuple) else (task, 1)
            if request[0] == "call":
                conn.send(("answer", fn()))
                continue
            seconds, gc_was_on = [], gc.isenabled()
            if gc_off:
                gc.disable()  # as timeit does: no collection pause inside a timed turn
            try:
                for _ in range(request[2]):
                    t0 = time.perf_counter()
                    for _ in range(number):
                        fn()
                    seconds.append((time.perf_counter() - t0) / number)
            finally:
                if gc_was_on:
                    gc.enable()
            conn.send(("answer", seconds))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


class SideBySide:
    """One worker process per framework, set up one after the other (see the module docstring).

    ``timeout``: seconds to wait for any one answer (None: wait as long as the worker lives).
    ``gc_off``: disable Python's cyclic collector during timed turns. ``info[fw]`` is what the
    framework's setup returned, ``tasks[fw]`` the names of its tasks.
    """

    def __init__(self, setup, frameworks, args=(), threads=2, pause=0.3, timeout=None,
                 gc_off=False):
        self.pause, self.timeout = pause, timeout
        self.workers, self.info, self.tasks = {}, {}, {}
        ctx = mp.get_context("spawn")
        try:
            for fw in frameworks:
                parent_end, child_end = ctx.Pipe()
                proc = ctx.Process(target=_worker, name=f"sidebyside-{fw}", daemon=True,
                                   args=(setup, fw, tuple(args), threads, gc_off, child_end))
                with _environment({var: str(threads) for var in THREAD_VARIABLES}):
                    proc.start()
                child_end.close()  # so that a dead child reads as end-of-file here
                self.workers[fw] = (proc, parent_end)
                # one at a time: the next worker starts once this one is set up
                self.info[fw], self.tasks[fw] = self._answer(fw)
        except BaseException:
            self.close()
            raise
        time.sleep(pause)  # the last warm-up's thread pools fall asleep before the first turn

    @property
    def frameworks(self):
        return list(self.workers)

    def _answer(self, fw):
        proc, conn = self.workers[fw]
        if not wait([conn, proc.sentinel], self.timeout):
            proc.kill()  # silent past the timeout: of no more use
            proc.join()
            raise WorkerError(f"{fw} worker: no answer within {self.timeout} s")
        if conn.poll():  # an answer (or an error) may arrive just before the process ends
            try:
                kind, value = conn.recv()
            except EOFError:
                kind = None
            if kind == "error":
                last = value.strip().splitlines()[-1]  # the exception, then where it came from
                raise WorkerError(f"{fw} worker failed: {last}\n{value}")
            if kind is not None:
                return value
        proc.join(5)
        raise WorkerError(f"{fw} worker exited (code {proc.exitcode}) without answering")

    def run(self, fw, task, reps=1):
        """One turn of worker ``fw``: ``reps`` timed calls of ``task``, as seconds per call."""
        self.workers[fw][1].send(("time", task, reps))
        return self._answer(fw)

    def call(self, fw, task):
        """Call ``task`` once in worker ``fw`` and return its (picklable) result, untimed."""
        self.workers[fw][1].send(("call", task))
        return self._answer(fw)

    def best(self, task, rounds, reps=1, frameworks=None):
        """{framework: best seconds per call}: ``rounds`` rounds of one turn (``reps`` calls) per
        framework that has ``task``, in turn, with a pause after each turn."""
        frameworks = [fw for fw in (frameworks or self.workers) if task in self.tasks[fw]]
        best = dict.fromkeys(frameworks, float("inf"))
        for _ in range(rounds):
            for fw in frameworks:
                best[fw] = min(best[fw], *self.run(fw, task, reps))
                time.sleep(self.pause)
        return best

    def close(self):
        """Ask every worker to stop; kill one that does not within 5 s."""
        for proc, conn in self.workers.values():
            with contextlib.suppress(OSError):
                conn.send(None)
        for proc, conn in self.workers.values():
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
            conn.close()
        self.workers = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
