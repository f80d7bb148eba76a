"""Layers, whole models, optimizers, checkpoints and the training loop on the GPU, against the CPU.

Skipped unless CuPy imports and sees a GPU. A GPU model starts as a copy of a CPU model (same
state dict), sees the same batches, and must give the same outputs, gradients, parameters after
optimizer steps, and saved state. Dropout is left out where values are compared (the GPU draws
from CuPy's generator, not NumPy's); its rule is tested in test_gpu_ops.py.

Float32 tolerance: rtol 1e-4, atol 1e-5 (every compared quantity comes from matmuls, convolutions
and reductions whose summation order differs between devices; see test_gpu_ops.py). After a few
optimizer steps the parameters still agree to that, since each step moves them by lr * (a
gradient that agrees to 1e-4).
"""
import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.nn.functional as F
from tinygrad_edu import nn, optim
from tinygrad_edu.backend import check_device, cuda_available, device_of
from tinygrad_edu.training import evaluate, fit

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA GPU")]

GPU = "cuda"
TOL = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def cp():
    import cupy
    return cupy


def assert_on_gpu(t, cp):
    assert t.device == GPU and isinstance(t.data, cp.ndarray), (t.device, type(t.data))


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def twins(make):
    """(cpu_model, gpu_model): two models from ``make()`` with the same parameters and buffers."""
    cpu, gpu = make(), make()
    gpu.load_state_dict(cpu.state_dict())
    assert gpu.to(GPU) is gpu
    return cpu, gpu


def assert_same(gpu_tensors, cpu_tensors, cp, what):
    for (name, g), (_, c) in zip(gpu_tensors, cpu_tensors):
        assert_on_gpu(g, cp)
        np.testing.assert_allclose(g.numpy(), c.numpy(), **TOL, err_msg=f"{what} {name}")


def convnet():
    """The tutorial convnet's kinds of layers, small, without dropout. The first convolution has
    no bias: BatchNorm would cancel it, leaving it a gradient of pure rounding noise (~1e-8)
    that Adam and RMSprop (eps 1e-8) would turn into steps of ~lr, different on each device."""
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(4, 6, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True), nn.Flatten(),
                         nn.Linear(6 * 2 * 2, 16), nn.Tanh(), nn.Linear(16, 5))


def mlp():
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.BatchNorm1d(16), nn.Linear(16, 3))


IMAGES = randn(8, 1, 7, 7, seed=1)
LABELS = np.array([0, 1, 2, 3, 4, 0, 1, 2])


# ---- layers, one at a time ---------------------------------------------------------------------
LAYERS = [
    ("Linear", lambda: nn.Linear(5, 4), (6, 5)),
    ("Linear_no_bias_3d", lambda: nn.Linear(5, 4, bias=False), (2, 3, 5)),
    ("Conv2d", lambda: nn.Conv2d(3, 4, (3, 2), stride=2, padding=1), (2, 3, 9, 8)),
    ("MaxPool2d", lambda: nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), (2, 3, 9, 8)),
    ("AvgPool2d", lambda: nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False), (2, 3, 9, 8)),
    ("BatchNorm1d", lambda: nn.BatchNorm1d(5), (6, 5)),
    ("BatchNorm2d", lambda: nn.BatchNorm2d(3, momentum=None), (2, 3, 4, 5)),
    ("BatchNorm2d_eval", lambda: nn.BatchNorm2d(3).eval(), (2, 3, 4, 5)),
    ("ReLU", nn.ReLU, (4, 5)), ("Sigmoid", nn.Sigmoid, (4, 5)), ("Tanh", nn.Tanh, (4, 5)),
    ("Softmax", lambda: nn.Softmax(dim=0), (4, 5)), ("LogSoftmax", nn.LogSoftmax, (4, 5)),
    ("Flatten", nn.Flatten, (2, 3, 4)), ("Dropout_eval", lambda: nn.Dropout(0.5).eval(), (4, 5)),
    ("Sequential", convnet, (3, 1, 7, 7)),
]


@pytest.mark.parametrize("make, shape", [c[1:] for c in LAYERS], ids=[c[0] for c in LAYERS])
def test_layer_matches_cpu(make, shape, cp):
    cpu, gpu = twins(make)
    x_cpu = tg.Tensor(randn(*shape, seed=2), requires_grad=True)
    x_gpu = tg.Tensor(randn(*shape, seed=2), requires_grad=True, device=GPU)
    y_cpu, y_gpu = cpu(x_cpu), gpu(x_gpu)
    weights = np.random.default_rng(3).uniform(0.5, 1.5, y_cpu.shape).astype(np.float32)
    (y_cpu * tg.Tensor(weights)).sum().backward()
    (y_gpu * tg.Tensor(weights, device=GPU)).sum().backward()
    assert_same([("output", y_gpu), ("input grad", x_gpu.grad)],
                [("output", y_cpu), ("input grad", x_cpu.grad)], cp, "")
    assert_same([(n, p.grad) for n, p in gpu.named_parameters()],
                [(n, p.grad) for n, p in cpu.named_parameters()], cp, "gradient of")
    assert_same(list(gpu.named_buffers()), list(cpu.named_buffers()), cp, "buffer")


# ---- Module.to ---------------------------------------------------------------------------------
def test_module_to_moves_parameters_buffers_and_gradients_in_place(cp):
    model = convnet()
    params, buffers = model.parameters(), model.buffers()
    F.cross_entropy(model(tg.Tensor(IMAGES)), LABELS).backward()  # gradients on the CPU
    assert model.to("cuda:0") is model
    after = model.parameters() + model.buffers()
    assert len(after) == len(params + buffers)
    assert all(a is b for a, b in zip(after, params + buffers))  # the same objects, moved
    for t in params + buffers:
        assert_on_gpu(t, cp)
    for p in params:
        assert_on_gpu(p.grad, cp)
    assert model.cpu() is model
    assert all(isinstance(t.data, np.ndarray) for t in params + buffers)
    assert model.cuda() is model and all(t.device == GPU for t in params)


def test_state_dict_of_a_gpu_model_is_on_the_gpu_and_loads_anywhere(cp):
    cpu, gpu = twins(convnet)
    state = gpu.state_dict()
    assert all(device_of(a) == GPU for a in state.values())
    fresh = convnet()
    fresh.load_state_dict(state)  # GPU arrays into a CPU model
    for (name, a), (_, b) in zip(fresh.state_dict().items(), cpu.state_dict().items()):
        assert isinstance(a, np.ndarray)
        np.testing.assert_array_equal(a, b, err_msg=name)


# ---- training steps ----------------------------------------------------------------------------
def steps(model, opt, device, n=3):
    """n training steps on fixed batches; returns the losses as Python floats."""
    losses = []
    for i in range(n):
        x = tg.Tensor(randn(8, 1, 7, 7, seed=10 + i), device=device)
        y = tg.Tensor(np.roll(LABELS, i), device=device)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


OPTIMIZERS = [
    (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    (optim.RMSprop, dict(lr=1e-3, alpha=0.9, eps=1e-6, eps_inside_sqrt=True)),
    (optim.RMSprop, dict(lr=1e-3, centered=True, momentum=0.5)),
    (optim.Adam, dict(lr=1e-2, amsgrad=True)),
    (optim.AdamW, dict(lr=1e-2)),
    (optim.Adagrad, dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
    (optim.Adadelta, dict(lr=1.0)),
]


@pytest.mark.parametrize("cls, kwargs", OPTIMIZERS,
                         ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(OPTIMIZERS)])
def test_optimizer_steps_on_the_gpu_equal_those_on_the_cpu(cls, kwargs, cp):
    cpu, gpu = twins(convnet)
    opt_cpu, opt_gpu = cls(cpu.parameters(), **kwargs), cls(gpu.parameters(), **kwargs)
    np.testing.assert_allclose(steps(gpu, opt_gpu, GPU), steps(cpu, opt_cpu, "cpu"), **TOL)
    assert_same(list(gpu.named_parameters()), list(cpu.named_parameters()), cp, "parameter")
    assert_same(list(gpu.named_buffers()), list(cpu.named_buffers()), cp, "buffer")
    for state in opt_gpu.state.values():
        assert all(device_of(v) == GPU for v in state.values() if hasattr(v, "shape"))


def test_a_gpu_training_step_makes_no_host_transfers(monkeypatch, cp):
    """Forward, backward and update keep the data on the GPU: every transfer in the package goes
    through ``to_device``, so make it fail for any change of device. (The label range check of
    cross_entropy reads two numbers back: a check, not a transfer of data.)"""
    import sys
    model = convnet().to(GPU)
    opt = optim.RMSprop(model.parameters(), lr=1e-3)
    x, y = tg.Tensor(IMAGES, device=GPU), tg.Tensor(LABELS, device=GPU)

    def guarded(real):
        def to_device(array, device):
            if device_of(array) != check_device(device):
                raise AssertionError(f"a {device_of(array)} -> {device} copy inside a step")
            return real(array, device)
        return to_device
    for name, module in list(sys.modules.items()):
        if name.startswith("tinygrad_edu") and hasattr(module, "to_device"):
            monkeypatch.setattr(module, "to_device", guarded(module.to_device))
    for _ in range(2):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert_on_gpu(loss, cp)
    for p in model.parameters():
        assert_on_gpu(p, cp)
        assert_on_gpu(p.grad, cp)


# ---- checkpoints -------------------------------------------------------------------------------
def test_a_checkpoint_saved_on_the_gpu_resumes_on_the_cpu_and_back(tmp_path, cp):
    cpu, gpu = twins(convnet)
    opt_gpu = optim.Adam(gpu.parameters(), lr=1e-2)
    steps(gpu, opt_gpu, GPU, n=2)
    tg.save({"model": gpu.state_dict(), "optimizer": opt_gpu.state_dict(), "epoch": 2},
            tmp_path / "gpu.ckpt")

    state = tg.load(tmp_path / "gpu.ckpt")  # onto the CPU
    assert state["epoch"] == 2 and all(isinstance(a, np.ndarray) for a in state["model"].values())
    opt_cpu = optim.Adam(cpu.parameters(), lr=1e-2)
    cpu.load_state_dict(state["model"])
    opt_cpu.load_state_dict(state["optimizer"])
    for (name, g), (_, c) in zip(gpu.state_dict().items(), cpu.state_dict().items()):
        np.testing.assert_array_equal(g.get(), c, err_msg=name)  # saving is exact
    np.testing.assert_allclose(steps(cpu, opt_cpu, "cpu"), steps(gpu, opt_gpu, GPU), **TOL)
    assert_same(list(gpu.named_parameters()), list(cpu.named_parameters()), cp, "parameter")

    tg.save({"model": cpu.state_dict(), "optimizer": opt_cpu.state_dict()}, tmp_path / "cpu.ckpt")
    back = tg.load(tmp_path / "cpu.ckpt", device=GPU)  # and onto the GPU
    assert all(device_of(a) == GPU for a in back["model"].values())
    again = convnet().to(GPU)
    opt_again = optim.Adam(again.parameters(), lr=1e-2)
    again.load_state_dict(back["model"])
    opt_again.load_state_dict(back["optimizer"])
    assert all(device_of(v) == GPU for s in opt_again.state.values() for v in s.values()
               if hasattr(v, "shape"))
    np.testing.assert_allclose(steps(again, opt_again, GPU), steps(cpu, opt_cpu, "cpu"), **TOL)


def test_fit_and_evaluate_on_the_gpu_match_the_cpu(tmp_path, cp):
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((96, 12)).astype(np.float32), rng.integers(0, 3, 96)
    Xv, yv = rng.standard_normal((40, 12)).astype(np.float32), rng.integers(0, 3, 40)
    histories = {}
    for device, model in zip(("cpu", GPU), twins(mlp)):
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        histories[device] = fit(model, opt, (X, y), (Xv, yv), epochs=2, batch_size=32,
                                device=device, checkpoint=tmp_path / f"{device}.ckpt",
                                progress=False, verbose=False)
    for key in ("train_loss", "valid_loss"):
        np.testing.assert_allclose(histories[GPU][key], histories["cpu"][key], **TOL)
    assert all(t.device == GPU for t in model.parameters())
    loss, acc = evaluate(model, Xv, yv, device=GPU)
    assert abs(loss - histories[GPU]["valid_loss"][-1]) < 1e-5 and 0 <= acc <= 1
    state = tg.load(tmp_path / "cuda.ckpt")  # written by fit on the GPU, read on the CPU
    cpu_model = mlp()
    cpu_model.load_state_dict(state["model"])
    np.testing.assert_allclose(evaluate(cpu_model, Xv, yv)[0], loss, **TOL)
    resumed = fit(model, opt, (X, y), (Xv, yv), epochs=3, batch_size=32, device=GPU,
                  checkpoint=tmp_path / "cuda.ckpt", resume=True, progress=False, verbose=False)
    assert len(resumed) == 3


# ---- mixing devices ----------------------------------------------------------------------------
def test_mixing_devices_raises_naming_the_op_and_both_devices(cp):
    a, b = tg.Tensor([1.0, 2.0]), tg.Tensor([3.0, 4.0], device=GPU)
    with pytest.raises(ValueError, match=r"Add: inputs are on different devices \(cpu, cuda\)"):
        a + b
    with pytest.raises(ValueError, match=r"MatMul: .*different devices \(cuda, cpu\)"):
        b.reshape(1, 2) @ a.reshape(2, 1)
    with pytest.raises(ValueError, match="different devices: cuda and cpu"):
        b > a
    with pytest.raises(ValueError, match=r"\+= .*\(cpu, cuda\)"):
        a += b
    model = mlp().to(GPU)
    with pytest.raises(ValueError, match=r"Linear: inputs are on different devices \(cpu, cuda, cuda\)"):
        model(tg.Tensor(randn(4, 12)))  # forgot to move the batch
    logits = tg.Tensor(randn(3, 4), device=GPU)
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: .*\(cuda, cpu\)"):
        F.cross_entropy(logits, tg.Tensor(np.array([0, 1, 2])))
    p = model.parameters()[0]
    p.grad = tg.Tensor(np.zeros(p.shape, np.float32))
    with pytest.raises(ValueError, match="on cuda has a gradient .* on cpu"):
        optim.SGD([p], lr=0.1).step()
