"""The fused LSTM and GRU cells on a real GPU: the CUDA kernels (kernels/lstm_cell.cu,
gru_cell.cu) against their CPU twins in ``cpu_kernels`` and the NumPy references in refs.py,
then nn.LSTM / nn.GRU and the cells on "cuda" against the same layers on "cpu".

Skipped unless CuPy imports and sees a GPU. Tolerances: the cell kernels are elementwise, so
float32 results agree with the CPU to rtol 1e-5 / atol 1e-6 (tanhf and expf differ by an ulp
or two between libraries), float64 ones to 1e-12. Layers add matmuls whose summation order
differs between devices, compounded over a few time steps: rtol 1e-4 / atol 1e-5, as in
test_gpu_models.py.
"""
import numpy as np
import pytest

import refs as ref
import tinygrad_edu as tg
from tinygrad_edu import nn
from tinygrad_edu.backend import check_device, cuda_available, device_of

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA GPU")]

GPU = "cuda"
CELL_TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}
TOL = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def cp():
    import cupy
    return cupy


@pytest.fixture(scope="module")
def ck():
    from tinygrad_edu.ops import cuda_kernels
    return cuda_kernels


@pytest.fixture(scope="module")
def cpu_k():
    from tinygrad_edu.ops import cpu_kernels
    return cpu_kernels


def randn(*shape, seed=0, scale=1.0, dtype=np.float32):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


def assert_cell_outputs(gpu_out, cpu_out, want, dtype, names, cp):
    """Each GPU output is a CuPy array of the input's dtype, equal to the CPU kernel's output
    and to the float64 reference."""
    for name, g, c, w in zip(names.split(), gpu_out, cpu_out, want):
        assert isinstance(g, cp.ndarray) and g.dtype == dtype and g.shape == w.shape, (
            name, type(g), g.dtype, g.shape, w.shape)
        np.testing.assert_allclose(g.get(), c, **CELL_TOL[dtype], err_msg=f"{name} vs cpu")
        np.testing.assert_allclose(g.get(), w, **CELL_TOL[dtype], err_msg=f"{name} vs ref")


# ---- the kernels -----------------------------------------------------------------------------
# (N, H): tiny, one block, one thread per row's unit, and more units than one block holds
SHAPES = [(1, 1), (3, 5), (64, 128), (7, 300)]
SCALES = [1.0, 30.0]   # 30: most gates saturated


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("N, H", SHAPES)
def test_lstm_cell_kernels_match_cpu(cp, ck, cpu_k, N, H, scale, dtype):
    gates, c_prev = randn(N, 4 * H, seed=1, scale=scale, dtype=dtype), randn(N, H, seed=2,
                                                                              dtype=dtype)
    dh, dc = randn(N, H, seed=3, dtype=dtype), randn(N, H, seed=4, dtype=dtype)
    fwd = ck.lstm_cell_forward(cp.asarray(gates), cp.asarray(c_prev))
    fwd_cpu = cpu_k.lstm_cell_forward(gates, c_prev)
    want = ref.lstm_cell_forward(gates.astype(np.float64), c_prev.astype(np.float64))
    assert_cell_outputs(fwd, fwd_cpu, want, dtype, "h c act", cp)
    act = fwd_cpu[2]   # the same act on both devices, so backward is compared on its own
    bwd = ck.lstm_cell_backward(cp.asarray(dh), cp.asarray(dc), cp.asarray(act),
                                cp.asarray(c_prev))
    bwd_cpu = cpu_k.lstm_cell_backward(dh, dc, act, c_prev)
    want = ref.lstm_cell_backward(*(a.astype(np.float64) for a in (dh, dc, act, c_prev)))
    assert_cell_outputs(bwd, bwd_cpu, want, dtype, "dgates dc_prev", cp)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("N, H", SHAPES)
def test_gru_cell_kernels_match_cpu(cp, ck, cpu_k, N, H, scale, dtype):
    xg, hg = (randn(N, 3 * H, seed=s, scale=scale, dtype=dtype) for s in (5, 6))
    h_prev, dh = randn(N, H, seed=7, dtype=dtype), randn(N, H, seed=8, dtype=dtype)
    fwd = ck.gru_cell_forward(cp.asarray(xg), cp.asarray(hg), cp.asarray(h_prev))
    fwd_cpu = cpu_k.gru_cell_forward(xg, hg, h_prev)
    want = ref.gru_cell_forward(*(a.astype(np.float64) for a in (xg, hg, h_prev)))
    assert_cell_outputs(fwd, fwd_cpu, want, dtype, "h act", cp)
    act = fwd_cpu[1]
    bwd = ck.gru_cell_backward(cp.asarray(dh), cp.asarray(act), cp.asarray(h_prev))
    bwd_cpu = cpu_k.gru_cell_backward(dh, act, h_prev)
    want = ref.gru_cell_backward(*(a.astype(np.float64) for a in (dh, act, h_prev)))
    assert_cell_outputs(bwd, bwd_cpu, want, dtype, "dxg dhg dh_prev", cp)


def test_cell_grid_stride_loops_cover_everything(cp, ck, monkeypatch):
    # Two blocks of 256 threads for 64 * 128 units: each thread handles 16 of them.
    monkeypatch.setattr(ck, "MAX_BLOCKS", 2)
    gates, c_prev = randn(64, 512, seed=9), randn(64, 128, seed=10)
    h, c, act = ck.lstm_cell_forward(cp.asarray(gates), cp.asarray(c_prev))
    want = ref.lstm_cell_forward(gates.astype(np.float64), c_prev.astype(np.float64))
    for got, w in zip((h, c, act), want):
        np.testing.assert_allclose(got.get(), w, **CELL_TOL[np.float32])
    xg, hg, h_prev = randn(64, 384, seed=11), randn(64, 384, seed=12), c_prev
    h, act = ck.gru_cell_forward(cp.asarray(xg), cp.asarray(hg), cp.asarray(h_prev))
    want = ref.gru_cell_forward(*(a.astype(np.float64) for a in (xg, hg, h_prev)))
    for got, w in zip((h, act), want):
        np.testing.assert_allclose(got.get(), w, **CELL_TOL[np.float32])


def test_cell_kernels_leave_their_inputs_alone(cp, ck):
    gates, c_prev = cp.asarray(randn(4, 12, seed=13)), cp.asarray(randn(4, 3, seed=14))
    before = gates.copy(), c_prev.copy()
    _, _, act = ck.lstm_cell_forward(gates, c_prev)
    act_before = act.copy()
    ck.lstm_cell_backward(c_prev, c_prev, act, c_prev)
    for a, b in zip((gates, c_prev, act), before + (act_before,)):
        assert bool((a == b).all())


@pytest.mark.skipif(not __debug__, reason="python -O removes asserts")
def test_cell_preconditions_are_still_asserted_on_the_gpu(cp, ck):
    g = cp.zeros((2, 8), cp.float32)
    with pytest.raises(AssertionError, match="C-contiguous"):
        ck.lstm_cell_forward(g, cp.zeros((2, 4), cp.float32)[:, ::2])
    with pytest.raises(AssertionError, match="float32 or float64, got float16"):
        ck.gru_cell_forward(cp.zeros((2, 6), cp.float16), cp.zeros((2, 6), cp.float16),
                            cp.zeros((2, 2), cp.float16))
    with pytest.raises(TypeError, match="expects CuPy arrays"):
        ck.lstm_cell_forward(g, np.zeros((2, 2), np.float32))


# ---- layers and cells on "cuda" against "cpu" ------------------------------------------------

def twins(make):
    """(cpu_module, gpu_module) with the same parameters."""
    cpu, gpu = make(), make()
    gpu.load_state_dict(cpu.state_dict())
    assert gpu.to(GPU) is gpu
    return cpu, gpu


def weighted_sum(outputs, device):
    """sum_k sum(w_k * y_k) with fixed weights in [0.5, 1.5): every output, every entry counts."""
    total = None
    for k, y in enumerate(outputs):
        w = np.random.default_rng(100 + k).uniform(0.5, 1.5, y.shape).astype(np.float32)
        term = (y * tg.Tensor(w, device=device)).sum()
        total = term if total is None else total + term
    return total


def flat(result):
    """A layer's or cell's result as a flat list of tensors: out, (h, c) -> [out, h, c]."""
    if isinstance(result, (tuple, list)):
        return [t for r in result for t in flat(r)]
    return [result]


def run(module, x, state, device):
    """Forward and backward on ``device``; returns (outputs, input grads, parameter grads)."""
    inputs = [tg.Tensor(x, requires_grad=True, device=device)]
    st = None
    if state is not None:
        st = [tg.Tensor(s, requires_grad=True, device=device) for s in state]
        inputs += st
        st = st[0] if len(st) == 1 else tuple(st)
    outputs = flat(module(inputs[0]) if st is None else module(inputs[0], st))
    weighted_sum(outputs, device).backward()
    return outputs, [t.grad for t in inputs], [(n, p.grad) for n, p in module.named_parameters()]


# name, constructor, input shape, initial state shapes (None: no initial state)
LAYERS = [
    ("LSTM", lambda: nn.LSTM(4, 6), (5, 3, 4), None),
    ("LSTM_state", lambda: nn.LSTM(4, 6), (5, 3, 4), [(1, 3, 6), (1, 3, 6)]),
    ("LSTM_2layer_bidir_batch_first",
     lambda: nn.LSTM(4, 6, num_layers=2, bidirectional=True, batch_first=True), (3, 5, 4),
     [(4, 3, 6), (4, 3, 6)]),
    ("LSTM_unbatched", lambda: nn.LSTM(4, 6, bias=False), (5, 4), [(1, 6), (1, 6)]),
    ("LSTM_hidden_300", lambda: nn.LSTM(8, 300), (3, 2, 8), None),   # H over one block
    ("GRU", lambda: nn.GRU(4, 6), (5, 3, 4), None),
    ("GRU_state", lambda: nn.GRU(4, 6), (5, 3, 4), [(1, 3, 6)]),
    ("GRU_2layer_bidir_batch_first",
     lambda: nn.GRU(4, 6, num_layers=2, bidirectional=True, batch_first=True), (3, 5, 4),
     [(4, 3, 6)]),
    ("GRU_unbatched", lambda: nn.GRU(4, 6, bias=False), (5, 4), [(1, 6)]),
    ("LSTMCell", lambda: nn.LSTMCell(4, 6), (3, 4), None),
    ("LSTMCell_state", lambda: nn.LSTMCell(4, 6), (3, 4), [(3, 6), (3, 6)]),
    ("GRUCell", lambda: nn.GRUCell(4, 6), (3, 4), None),
    ("GRUCell_state", lambda: nn.GRUCell(4, 6), (3, 4), [(3, 6)]),
]


@pytest.mark.parametrize("make, x_shape, state_shapes", [c[1:] for c in LAYERS],
                         ids=[c[0] for c in LAYERS])
def test_recurrent_layer_matches_cpu(cp, make, x_shape, state_shapes):
    cpu, gpu = twins(make)
    x = randn(*x_shape, seed=20)
    state = None if state_shapes is None else [randn(*s, seed=21 + k)
                                               for k, s in enumerate(state_shapes)]
    out_c, in_grads_c, p_grads_c = run(cpu, x, state, "cpu")
    out_g, in_grads_g, p_grads_g = run(gpu, x, state, GPU)
    assert len(out_g) == len(out_c) and len(p_grads_g) == len(p_grads_c)
    for what, gs, cs in (("output", out_g, out_c), ("input grad", in_grads_g, in_grads_c)):
        for k, (g, c) in enumerate(zip(gs, cs)):
            assert g is not None and c is not None, f"{what} {k} missing"
            assert g.device == GPU and isinstance(g.data, cp.ndarray), (what, k, g.device)
            np.testing.assert_allclose(g.numpy(), c.numpy(), **TOL, err_msg=f"{what} {k}")
    for (name, g), (_, c) in zip(p_grads_g, p_grads_c):
        assert isinstance(g.data, cp.ndarray), name
        np.testing.assert_allclose(g.numpy(), c.numpy(), **TOL, err_msg=f"gradient of {name}")


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_each_step_is_one_kernel_launch_each_way(cp, ck, monkeypatch, kind):
    """On the GPU a layer's cell runs as the fused kernels: one forward and one backward call
    per time step, layer and direction (L=5, 2 layers, 2 directions: 20 of each)."""
    calls = {}
    for name in (f"{kind.lower()}_cell_forward", f"{kind.lower()}_cell_backward"):
        def spy(*args, _name=name, _real=getattr(ck, name), **kwargs):
            calls[_name] = calls.get(_name, 0) + 1
            return _real(*args, **kwargs)
        monkeypatch.setattr(ck, name, spy)
    layer = getattr(nn, kind)(4, 6, num_layers=2, bidirectional=True).to(GPU)
    x = tg.Tensor(randn(5, 3, 4, seed=30), requires_grad=True, device=GPU)
    weighted_sum(flat(layer(x)), GPU).backward()
    assert calls == {f"{kind.lower()}_cell_forward": 20, f"{kind.lower()}_cell_backward": 20}


def test_an_lstm_training_step_makes_no_host_transfers(monkeypatch, cp):
    """Forward and backward of a 2-layer LSTM keep everything on the GPU: every transfer in the
    package goes through ``to_device``, so make it fail for any change of device."""
    import sys
    layer = nn.LSTM(4, 6, num_layers=2).to(GPU)
    x = tg.Tensor(randn(5, 3, 4, seed=31), device=GPU)

    def guarded(real):
        def to_device(array, device):
            if device_of(array) != check_device(device):
                raise AssertionError(f"a {device_of(array)} -> {device} copy inside a step")
            return real(array, device)
        return to_device
    for name, module in list(sys.modules.items()):
        if name.startswith("tinygrad_edu") and hasattr(module, "to_device"):
            monkeypatch.setattr(module, "to_device", guarded(module.to_device))
    out, (h, c) = layer(x)
    (out.sum() + h.sum() + c.sum()).backward()
    for t in [out, h, c] + [p.grad for p in layer.parameters()]:
        assert t.device == GPU and isinstance(t.data, cp.ndarray)
