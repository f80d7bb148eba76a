"""tg.compile on the GPU: replays of a dropout/RMSprop step on CuPy arrays are bit-identical to
eager steps, and a run of elementwise ops becomes one CuPy ElementwiseKernel (compiled with
--fmad=false, so its roundings are the unfused ops'). Skipped unless CuPy sees a GPU."""
import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.nn.functional as F
from tinygrad_edu import nn, optim
from tinygrad_edu.backend import cuda_available

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA GPU")]


def _run(compiled, steps=4):
    tg.manual_seed(0)
    model = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.5),
                          nn.Linear(32, 10)).to("cuda")
    opt = optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-6, eps_inside_sqrt=True)
    rng = np.random.default_rng(0)

    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    run = tg.compile(step) if compiled else step
    losses = []
    for _ in range(steps):
        x = tg.Tensor(rng.standard_normal((16, 64), dtype=np.float32), device="cuda")
        y = tg.Tensor(rng.integers(0, 10, 16), device="cuda")
        losses.append(run(x, y).numpy().copy())
    return [p.numpy().copy() for p in model.parameters()] + losses, run


def test_gpu_replays_are_bit_identical_to_eager_steps():
    eager, _ = _run(False)
    compiled, run = _run(True)
    assert run.recordings == 1
    for a, b in zip(eager, compiled):
        assert a.tobytes() == b.tobytes()


def test_a_run_of_elementwise_ops_is_one_cupy_kernel_with_eagers_bits():
    rng = np.random.default_rng(1)
    a, b = (tg.Tensor(rng.standard_normal((33, 7), dtype=np.float32), device="cuda")
            for _ in "ab")
    fn = lambda x, y: ((x * 3 + y) / 7 - x * y).relu()  # noqa: E731
    f = tg.compile(fn)
    f(a, b)
    replay = f(a, b)
    (program,) = f.programs.values()
    assert [s.kind for s in program.steps] == ["fused"]
    assert replay.numpy().tobytes() == fn(a, b).numpy().tobytes()
