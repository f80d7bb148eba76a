"""The engine's random state: get_rng_state / set_rng_state cover initialisation, dropout and the
DataLoader; they survive tg.save; an interrupted run resumed in a fresh process is bit-identical.
Also: the tensor constructors wrap the array they make without copying it."""
import os
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import nn
from tinygrad_edu.creation import generator, get_rng_state, manual_seed, set_rng_state


def draws():
    """One number from each use of randomness: initialisation, randn, a dropout mask."""
    layer = nn.Linear(3, 2)
    mask = nn.functional.dropout(tg.ones(8), p=0.5).numpy()
    return [layer.weight.numpy().copy(), tg.randn(4).numpy(), mask]


def assert_draws_equal(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_set_rng_state_repeats_the_same_random_numbers(tmp_path):
    manual_seed(7)
    draws()
    state = get_rng_state()
    expected = draws()
    tg.save(state, tmp_path / "rng.tg")  # PCG64's 128-bit integers must come back exactly
    manual_seed(8)
    draws()
    set_rng_state(tg.load(tmp_path / "rng.tg"))
    assert_draws_equal(draws(), expected)


def test_the_seed_is_restored_for_generators_not_used_yet():
    manual_seed(11)
    state = get_rng_state()
    assert state == {"seed": 11, "generators": {}}
    expected = draws()
    manual_seed(12)
    set_rng_state(state)
    assert_draws_equal(draws(), expected)


def test_a_generator_with_an_array_state_round_trips(tmp_path, monkeypatch):
    monkeypatch.setitem(tg.creation._generators, "cpu", np.random.Generator(np.random.MT19937(1)))
    generator().random(3)
    tg.save(get_rng_state(), tmp_path / "mt.tg")
    expected = generator().random(5)
    set_rng_state(tg.load(tmp_path / "mt.tg"))
    assert isinstance(generator().bit_generator, np.random.MT19937)
    np.testing.assert_array_equal(generator().random(5), expected)


@pytest.mark.parametrize("state, message", [
    ({"seed": 1}, "keys 'seed' and 'generators'"),
    ({"seed": "one", "generators": {}}, "seed must be an int or None"),
    ({"seed": 1, "generators": []}, "'generators' must be a dict"),
    ({"seed": 1, "generators": {"tpu": {}}}, "unknown device 'tpu'"),
    ({"seed": 1, "generators": {"cpu": {"bit_generator": "Generator"}}}, "no bit generator"),
    ({"seed": 1, "generators": {"cpu": {"bit_generator": "PCG64", "state": {}}}},
     "not a valid PCG64 state"),
])
def test_a_bad_state_is_refused_and_changes_nothing(state, message):
    manual_seed(3)
    draws()
    before = get_rng_state()
    with pytest.raises(ValueError, match=message):
        set_rng_state(state)
    assert get_rng_state() == before
    expected = draws()
    set_rng_state(before)
    assert_draws_equal(draws(), expected)


@pytest.mark.gpu
def test_the_gpu_generator_state_round_trips(tmp_path):
    manual_seed(2)
    x = tg.ones(1000, device="cuda")
    nn.functional.dropout(x, p=0.5)
    tg.save(get_rng_state(), tmp_path / "rng.tg")
    expected = nn.functional.dropout(x, p=0.5).numpy()
    manual_seed(5)
    set_rng_state(tg.load(tmp_path / "rng.tg"))
    np.testing.assert_array_equal(nn.functional.dropout(x, p=0.5).numpy(), expected)


# ---- constructors ------------------------------------------------------------------------------
def test_constructors_do_not_copy_the_array_they_make():
    n = 1 << 20  # 4 MiB of float32: a copy would double the peak
    for make in (lambda: tg.zeros(n), lambda: tg.ones(n), lambda: tg.full((n,), 2.0)):
        tracemalloc.start()
        make()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 1.5 * 4 * n


def test_constructors_still_check_dtypes():
    with pytest.raises(TypeError, match="dtype complex"):
        tg.zeros(3, dtype=np.complex64)
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        tg.arange(3, requires_grad=True)
    assert tg.ones(2, requires_grad=True).requires_grad


# ---- an interrupted run, resumed in a fresh process --------------------------------------------
SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tinygrad_edu as tg
    from tinygrad_edu import nn, optim
    from tinygrad_edu.creation import get_rng_state, manual_seed, set_rng_state
    from tinygrad_edu.data import DataLoader

    mode, folder, seed = sys.argv[1], sys.argv[2], sys.argv[3]
    seed = None if seed == "none" else int(seed)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((90, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)

    def noise(xb, rng):  # augmentation, drawn from the loader's generator
        return xb + 0.1 * rng.standard_normal(xb.shape).astype(np.float32)

    manual_seed(1 if mode != "resume" else 2)  # the resumed process starts elsewhere
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))
    opt = optim.Adam(model.parameters(), lr=1e-2)
    loader = DataLoader(X, y, batch_size=16, shuffle=True, seed=seed, transform=noise)
    start, step = 0, 0
    if mode == "resume":
        state = tg.load(folder + "/ckpt.tg")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        loader.load_state_dict(state["loader"])
        set_rng_state(state["rng"])
        start, step = state["epoch"], state["step"]
    for epoch in range(start, 3):
        for xb, yb in loader:  # after load_state_dict: the rest of the interrupted epoch
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if mode == "first" and step == 9:  # in the middle of the second epoch of 6 batches
                tg.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                         "loader": loader.state_dict(), "rng": get_rng_state(), "epoch": epoch,
                         "step": step}, folder + "/ckpt.tg")
                sys.exit(0)
    tg.save(model.state_dict(), folder + "/" + mode + ".tg")
""")


@pytest.mark.parametrize("seed", ["none", "5"])
def test_a_run_interrupted_mid_epoch_resumes_bit_identically_in_a_fresh_process(tmp_path, seed):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(
        tg.__file__))) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for mode in ("whole", "first", "resume"):
        subprocess.run([sys.executable, str(script), mode, str(tmp_path), seed], check=True,
                       env=env, timeout=120)
    whole, resumed = tg.load(tmp_path / "whole.tg"), tg.load(tmp_path / "resume.tg")
    assert whole.keys() == resumed.keys()
    for k in whole:
        np.testing.assert_array_equal(whole[k], resumed[k])  # bit for bit
    first = tg.load(tmp_path / "ckpt.tg")["model"]
    assert not np.array_equal(first["0.weight"], whole["0.weight"])  # training did go on
