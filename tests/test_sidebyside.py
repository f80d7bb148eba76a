"""benchmarks/_sidebyside.py, the benchmarks' machinery, with two fake "frameworks" whose tasks
sleep a known time: one worker process each, taking turns, the best time of each, thread
variables set in the children, and a worker that fails makes the parent raise at once."""
import os
import pathlib
import sys
import time

import pytest

sys.path.insert(0, os.fspath(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))

from _sidebyside import THREAD_VARIABLES, SideBySide, WorkerError, available  # noqa: E402

SLEEP = {"a": 0.02, "b": 0.05}


def fake_setup(framework, log_name):
    """Runs in the worker: tasks that sleep, log their start and end, fail or hang."""
    if framework == "broken":
        raise ValueError("broken framework: cannot set up")
    log = []

    def sleep():
        t0 = time.monotonic()  # the system-wide clock, comparable across processes
        time.sleep(SLEEP[framework])
        log.append((t0, time.monotonic()))

    def fail():
        raise ZeroDivisionError(f"task of {framework} failed")

    tasks = {"sleep": sleep, "tick": (lambda: time.sleep(0.001), 20), "log": lambda: log,
             "fail": fail, "die": lambda: os._exit(3), "hang": lambda: time.sleep(60)}
    if framework == "b":
        del tasks["tick"]
    info = {"env": {var: os.environ.get(var) for var in THREAD_VARIABLES}, "pid": os.getpid(),
            "log_name": log_name}
    return tasks, info


def open_pair(**kwargs):
    return SideBySide(fake_setup, ["a", "b"], args=("L",), pause=0.01, timeout=20, **kwargs)


def test_each_framework_runs_in_its_own_process_with_the_thread_variables():
    before = {var: os.environ.get(var) for var in THREAD_VARIABLES}
    with open_pair(threads=3) as bench:
        info = bench.info
        procs = [proc for proc, _ in bench.workers.values()]
        assert bench.frameworks == ["a", "b"]
    assert len({info["a"]["pid"], info["b"]["pid"], os.getpid()}) == 3
    for fw in "ab":
        assert info[fw]["env"] == dict.fromkeys(THREAD_VARIABLES, "3")
        assert info[fw]["log_name"] == "L"
    assert {var: os.environ.get(var) for var in THREAD_VARIABLES} == before  # parent unchanged
    assert all(not proc.is_alive() and proc.exitcode == 0 for proc in procs)  # clean exit


def test_the_workers_take_turns_and_the_best_time_is_kept():
    with open_pair() as bench:
        best = bench.best("sleep", rounds=3, reps=2)
        logs = {fw: bench.call(fw, "log") for fw in "ab"}
        per_call = bench.best("tick", rounds=2, reps=1)
    assert set(best) == {"a", "b"}
    for fw in "ab":
        assert SLEEP[fw] <= best[fw] < SLEEP[fw] + 0.02
        assert len(logs[fw]) == 6
    assert list(per_call) == ["a"]  # only a has the task
    assert 0.001 <= per_call["a"] < 0.003  # seconds per call of 20 calls per turn
    # one computes at a time, in turns of two calls: a a b b a a b b a a b b
    calls = sorted((t0, t1, fw) for fw in "ab" for t0, t1 in logs[fw])
    assert [fw for _, _, fw in calls] == list("aabb" * 3)
    assert all(prev[1] <= nxt[0] for prev, nxt in zip(calls, calls[1:]))


def test_a_task_that_raises_makes_the_parent_raise_with_its_message():
    with open_pair() as bench:
        with pytest.raises(WorkerError, match="b worker failed: ZeroDivisionError: task of b"):
            bench.run("b", "fail")
        assert bench.run("a", "sleep") and bench.call("a", "log")  # the other still answers
        procs = [proc for proc, _ in bench.workers.values()]
    assert not any(proc.is_alive() for proc in procs)


def test_a_worker_that_dies_or_hangs_makes_the_parent_raise_without_hanging():
    t0 = time.monotonic()
    with open_pair() as bench:
        with pytest.raises(WorkerError, match=r"a worker exited \(code 3\) without answering"):
            bench.run("a", "die")
        bench.timeout = 0.5
        with pytest.raises(WorkerError, match="b worker: no answer within 0.5 s"):
            bench.run("b", "hang")
        procs = [proc for proc, _ in bench.workers.values()]
    assert not any(proc.is_alive() for proc in procs)
    assert time.monotonic() - t0 < 10


def test_a_setup_that_fails_raises_and_leaves_no_worker_running():
    with pytest.raises(WorkerError,
                       match="broken worker failed: ValueError: broken framework: cannot"):
        SideBySide(fake_setup, ["a", "broken"], args=("L",), timeout=20)
    import multiprocessing
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("sidebyside")]


def test_torch_is_offered_only_when_installed(monkeypatch):
    import _sidebyside
    monkeypatch.setattr(_sidebyside, "torch_available", lambda: False)
    assert available(["ours", "torch", "numpy"]) == ["ours", "numpy"]
    monkeypatch.setattr(_sidebyside, "torch_available", lambda: True)
    assert available(["ours", "torch"]) == ["ours", "torch"]


def test_the_scripts_import_no_framework_at_their_top_level():
    # spawned workers import the calling script again: a torch import at its top would sit next
    # to ours in the "ours" worker, and NumPy would start before the worker's setup
    import subprocess
    code = ("import sys; sys.path.insert(0, 'benchmarks'); import mnist, layers, overhead, rnn; "
            "assert callable(mnist.theirs)  # benchmarks/gpu.py imports it\n"
            "print(sorted(m for m in ('torch', 'numpy', 'tinygrad_edu', 'handwritten') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=pathlib.Path(__file__).resolve().parents[1], timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
