"""tg.compile on the examples' own models: N compiled steps are bit-identical to N eager ones
(parameters, optimizer state, losses), and the --compile flag gives the same figures; fusion
over drawn broadcast shapes; errors for graphs built outside the compiled function."""
import os
import pathlib
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import tinygrad_edu as tg
import tinygrad_edu.nn.functional as F
from tinygrad_edu.nn.autoencoder import TiedAutoencoder
from tinygrad_edu.nn.rbm import RBM
from tinygrad_edu.ops.fusion import same_bits_but_nan_signs

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, os.fspath(EXAMPLES))

import autoencoder  # noqa: E402
import convnet  # noqa: E402
import mlp  # noqa: E402
import modern_net  # noqa: E402
import rbm  # noqa: E402
import sequential_mnist  # noqa: E402


def _mnist_like(n, image):
    rng = np.random.default_rng(1)
    shape = (n, 1, 28, 28) if image else (n, 784)
    return rng.random(shape, dtype=np.float32), rng.integers(0, 10, n)


def _run(build, make_opt, image, compiled, steps=3, n=16):
    tg.manual_seed(0)
    model = build()
    opt = make_opt(model)
    X, y = _mnist_like(n * steps, image)

    def step(xb, yb):
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    run = tg.compile(step) if compiled else step
    losses = [run(tg.from_numpy(X[i * n:(i + 1) * n]), tg.from_numpy(y[i * n:(i + 1) * n]))
              .numpy().copy() for i in range(steps)]
    state = [a for s in opt.state.values() for a in s.values() if isinstance(a, np.ndarray)]
    return [p.data.copy() for p in model.parameters()], state, losses, run


MODELS = {
    "mlp": (mlp.build, lambda m: tg.optim.SGD(m.parameters(), lr=0.05), False),
    "modern_net": (modern_net.build, lambda m: modern_net.optimizer(m, 1e-3), False),
    "convnet": (convnet.build, lambda m: tg.optim.RMSprop(m.parameters(), lr=1e-3, alpha=0.9,
                                                          eps=1e-6, eps_inside_sqrt=True), True),
}


@pytest.mark.parametrize("name", MODELS)
def test_the_examples_models_replay_bit_for_bit(name):
    build, make_opt, image = MODELS[name]
    eager = _run(build, make_opt, image, compiled=False)
    compiled = _run(build, make_opt, image, compiled=True)
    assert compiled[3].recordings == 1 and next(iter(compiled[3].programs.values())).replays == 2
    for a, b in zip(eager[0] + eager[1] + eager[2], compiled[0] + compiled[1] + compiled[2]):
        assert a.tobytes() == b.tobytes()
    assert len(eager[1]) > 0 or name == "mlp"  # RMSprop's state was compared too (SGD has none)


def _hand_loop(case, compiled, steps=3, n=20):
    """3 steps of the hand-written loops of autoencoder.py, rbm.py and sequential_mnist.py
    (masking noise, Gibbs sampling with persistent chains, an LSTM with gradient clipping)."""
    tg.manual_seed(0)
    if case == "denoising_autoencoder":
        model = TiedAutoencoder(784, 50, corruption=0.3)
        opt = tg.optim.SGD(model.parameters(), lr=0.1)
        loss_of = lambda x, y: model.loss(x)  # noqa: E731
    elif case == "rbm_pcd":
        model = RBM(784, 50)
        opt = tg.optim.SGD(model.parameters(), lr=0.1)
        loss_of = lambda x, y: model.cd_loss(x, k=3, persistent=True)  # noqa: E731
    else:
        model = sequential_mnist.build(16)
        opt = tg.optim.Adam(model.parameters(), lr=2e-3)
        loss_of = lambda x, y: F.cross_entropy(model(x), y)  # noqa: E731

    def step(x, y):
        loss = loss_of(x, y)
        opt.zero_grad()
        loss.backward()
        if case == "lstm_clipped":
            tg.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.05)
        opt.step()
        return loss
    run = tg.compile(step) if compiled else step
    X, y = _mnist_like(n * steps, image=False)
    X = (X < 0.3).astype(np.float32)
    losses = [run(tg.from_numpy(X[i * n:(i + 1) * n]), tg.from_numpy(y[i * n:(i + 1) * n]))
              .numpy().copy() for i in range(steps)]
    chains = [model.chains.numpy()] if case == "rbm_pcd" else []
    return [p.data.copy() for p in model.parameters()] + chains + losses, run


@pytest.mark.parametrize("case", ["denoising_autoencoder", "rbm_pcd", "lstm_clipped"])
def test_the_hand_written_loops_replay_bit_for_bit(case):
    eager, _ = _hand_loop(case, compiled=False)
    compiled, run = _hand_loop(case, compiled=True)
    assert run.recordings == 1
    for a, b in zip(eager, compiled):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("example, argv", [
    (autoencoder, ["--model", "dae", "--limit", "200", "--epochs", "1"]),
    (rbm, ["--limit", "100", "--k", "2", "--chains", "2", "--rows", "1", "--steps", "2"]),
    (sequential_mnist, ["--limit", "200", "--hidden-size", "16"]),
], ids=["autoencoder", "rbm", "sequential_mnist"])
def test_the_compile_flag_of_the_hand_loop_examples_gives_the_same_figures(example, argv):
    def figures(flags):
        result = example.main(argv + ["--epochs", "1"] + flags)
        history = result[0] if isinstance(result, tuple) else result
        if isinstance(history, dict):  # autoencoder.py's dae: one history per corruption
            history = [r for h in history.values() for r in h]
        history = getattr(history, "records", history)  # sequential_mnist.py's History
        return [{k: v for k, v in r.items() if k != "seconds"} for r in history]
    assert figures([]) == figures(["--compile"])


def test_the_compile_flag_of_an_example_gives_the_same_figures():
    argv = ["--epochs", "1", "--limit", "300"]
    plain = mlp.main(argv)
    compiled = mlp.main(argv + ["--compile"])
    assert plain[0] == compiled[0] and plain[1] == compiled[1]


def test_a_run_of_elementwise_ops_is_one_fused_step():
    a, b = (tg.Tensor(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)) for _ in "ab")
    f = tg.compile(lambda x, y: ((x * 2 + y) / 3).relu())
    f(a, b)
    (program,) = f.programs.values()
    assert [s.kind for s in program.steps] == ["fused"]
    assert "[fused] Mul -> Add -> Div -> Relu" in program.explain()


# (no -0.0: NumPy itself gives max(-0.0, 0.0) as -0.0 or 0.0 depending on the array's length)
SPECIAL = np.array([0.0, 1.0, -2.5, np.inf, -np.inf, np.nan, 3e38, 1e-40])


@settings(max_examples=12, deadline=None)
@given(shapes=mutually_broadcastable_shapes(num_shapes=3, min_dims=1, max_dims=3, max_side=4),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_fused_kernels_give_numpys_bits(shapes, dtype, seed):
    rng = np.random.default_rng(seed)
    xs = [tg.Tensor(rng.choice(SPECIAL, s).astype(dtype)) for s in shapes.input_shapes]

    def fn(a, b, c):
        return tg.maximum((a - b) * c, a / 4.0).relu() + (-c).sqrt()
    with np.errstate(all="ignore"):
        eager = fn(*xs).numpy()
        f = tg.compile(fn)
        f(*xs)
        replay = f(*xs).numpy()
    assert any(s.kind == "fused" for s in next(iter(f.programs.values())).steps)
    assert same_bits_but_nan_signs(eager, replay)  # -0.0 and inf included


def test_backward_through_a_graph_made_before_the_call_is_an_error():
    w = tg.Tensor(np.ones(3, np.float32), requires_grad=True)
    outside = (w * 2).sum()
    f = tg.compile(lambda: outside.backward())
    with pytest.raises(tg.CompileError, match="computed before the compiled function"):
        f()
    assert not f.programs


def test_an_array_computed_with_numpy_inside_is_an_error_naming_the_line():
    from tinygrad_edu.tensor import Tensor
    x = tg.Tensor(np.arange(4, dtype=np.float32))
    f = tg.compile(lambda t: t + Tensor._wrap(t.data * 2))  # NumPy on .data, wrapped raw
    with pytest.raises(tg.CompileError, match="outside the engine's ops .*test_compile_models"):
        f(x)
    assert not f.programs
