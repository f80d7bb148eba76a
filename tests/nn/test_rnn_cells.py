"""The one-step cells (nn.RNNCell, LSTMCell, GRUCell) and the CPU kernels of the fused cells:
kernels against the whole-array references in refs.py, cells against the equations
(rnn_refs.py), every gradient by gradcheck, second derivatives, input checks."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import refs
import rnn_refs as ref
import tinygrad_edu as tg
from tinygrad_edu import nn
from tinygrad_edu.ops import cpu_kernels as K
from tinygrad_edu.tensor import graph_order

FLOAT_TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}


# ---- the CPU kernels ---------------------------------------------------------------------------
@st.composite
def cell_arrays(draw, gates):
    """(N, H, dtype, rng): N may be 0; pre-activations up to +-20 reach saturation."""
    return (draw(st.integers(0, 5)), draw(st.integers(1, 9)),
            draw(st.sampled_from([np.float32, np.float64])),
            np.random.default_rng(draw(st.integers(0, 2**16))))


def arr(rng, dtype, *shape, scale=3.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def close(got, want, dtype):
    for g, w in zip(got, want):
        assert g.dtype == dtype and g.shape == w.shape and g.flags.c_contiguous
        np.testing.assert_allclose(g, w, **FLOAT_TOL[dtype])


@given(cell_arrays(4))
def test_lstm_kernels_match_the_references(args):
    N, H, dtype, rng = args
    gates, c_prev = arr(rng, dtype, N, 4 * H, scale=6), arr(rng, dtype, N, H)
    out = K.lstm_cell_forward(gates, c_prev)
    close(out, refs.lstm_cell_forward(gates.astype(np.float64), c_prev.astype(np.float64)),
          dtype)
    dh, dc = arr(rng, dtype, N, H), arr(rng, dtype, N, H)
    close(K.lstm_cell_backward(dh, dc, out[2], c_prev),
          refs.lstm_cell_backward(dh, dc, out[2], c_prev), dtype)


@given(cell_arrays(3))
def test_gru_kernels_match_the_references(args):
    N, H, dtype, rng = args
    xg, hg, h_prev = arr(rng, dtype, N, 3 * H, scale=6), arr(rng, dtype, N, 3 * H), \
        arr(rng, dtype, N, H)
    out = K.gru_cell_forward(xg, hg, h_prev)
    close(out, refs.gru_cell_forward(*(a.astype(np.float64) for a in (xg, hg, h_prev))), dtype)
    dh = arr(rng, dtype, N, H)
    close(K.gru_cell_backward(dh, out[1], h_prev), refs.gru_cell_backward(dh, out[1], h_prev),
          dtype)


def test_tanh32_is_within_4e7_and_keeps_nan():
    x = np.concatenate([np.linspace(-20, 20, 400001), [0.0, 1e-30, -np.inf, np.inf, np.nan]])
    x = x.astype(np.float32)
    got = np.array([K.tanh32(v) for v in x[::97]] + [K.tanh32(v) for v in x[-5:]],
                   dtype=np.float32)
    want = np.tanh(np.concatenate([x[::97], x[-5:]]).astype(np.float64))
    assert np.nanmax(np.abs(got - want) / np.maximum(np.abs(want), 1e-30)) <= 4e-7
    assert got[-5] == 0 and got[-3] == -1 and got[-2] == 1 and np.isnan(got[-1])
    gates = np.zeros((1, 4), np.float32)
    gates[0, 2] = np.nan                         # g = NaN: NaN in c and h, as in NumPy
    h, c, _ = K.lstm_cell_forward(gates, np.zeros((1, 1), np.float32))
    assert np.isnan(h).all() and np.isnan(c).all()


def test_the_plain_loop_functions_compute_what_the_compiled_ones_do():
    rng = np.random.default_rng(0)
    gates, c_prev = arr(rng, np.float32, 2, 12), arr(rng, np.float32, 2, 3)
    h, c, act = (np.empty((2, n), np.float32) for n in (3, 3, 15))
    K.lstm_cell_forward_loops(gates, c_prev, h, c, act)
    close((h, c, act), K.lstm_cell_forward(gates, c_prev), np.float32)
    xg, hg = arr(rng, np.float32, 2, 9), arr(rng, np.float32, 2, 9)
    h, act = np.empty((2, 3), np.float32), np.empty((2, 12), np.float32)
    K.gru_cell_forward_loops(xg, hg, c_prev, h, act)
    close((h, act), K.gru_cell_forward(xg, hg, c_prev), np.float32)


def test_kernels_assert_their_layouts():
    with pytest.raises(AssertionError, match=r"lstm_cell_forward: gates has shape \(2, 7\), "
                                             r"expected \(2, 12\)"):
        K.lstm_cell_forward(np.zeros((2, 7), np.float32), np.zeros((2, 3), np.float32))
    with pytest.raises(AssertionError, match="c_prev must be a C-contiguous 2-D float32"):
        K.lstm_cell_forward(np.zeros((2, 12), np.float32), np.zeros((2, 3)))
    with pytest.raises(AssertionError, match="h_prev must be a C-contiguous"):
        K.gru_cell_backward(np.zeros((3, 2)), np.zeros((3, 8)), np.zeros((2, 3)).T)


# ---- the cells ---------------------------------------------------------------------------------
@st.composite
def cell_configs(draw, max_size=3):
    return dict(kind=draw(st.sampled_from(sorted(ref.KINDS))), N=draw(st.integers(1, 3)),
                input_size=draw(st.integers(1, max_size)),
                hidden_size=draw(st.integers(1, max_size)), bias=draw(st.booleans()),
                batched=draw(st.booleans()), with_state=draw(st.booleans()),
                seed=draw(st.integers(0, 2**16)))


def build_cell(cfg, dtype=np.float64):
    """(cell, x (N, in), states [(N, H)], the cell's x, its state Tensors or [])."""
    kind, N, H = cfg["kind"], cfg["N"] if cfg["batched"] else 1, cfg["hidden_size"]
    tg.manual_seed(cfg["seed"])
    kwargs = dict(nonlinearity="relu") if kind == "RNN_relu" else {}
    m = getattr(nn, kind.split("_")[0] + "Cell")(cfg["input_size"], H, bias=cfg["bias"],
                                                  **kwargs)
    rng = np.random.default_rng(cfg["seed"])
    for p in m.parameters():
        p.data = rng.uniform(-1, 1, p.shape).astype(dtype)
    x = rng.standard_normal((N, cfg["input_size"]))
    states = [rng.standard_normal((N, H)) if cfg["with_state"] else np.zeros((N, H))
              for _ in range(ref.KINDS[kind][1])]
    user = (lambda a: a) if cfg["batched"] else (lambda a: a[0])
    x_t = tg.tensor(user(x).astype(dtype), requires_grad=True)
    s_t = [tg.tensor(user(s).astype(dtype), requires_grad=True) for s in states]
    return m, x, states, x_t, s_t if cfg["with_state"] else []


def call_cell(m, x_t, s_t):
    hx = None if not s_t else s_t[0] if len(s_t) == 1 else tuple(s_t)
    out = m(x_t, hx)
    return out if isinstance(out, tuple) else (out,)


@settings(max_examples=40)
@given(cell_configs())
def test_cells_match_the_equations(cfg):
    m, x, states, x_t, s_t = build_cell(cfg)
    zero = np.zeros(m.weight_ih.shape[0])
    b = [zero, zero] if not cfg["bias"] else [m.bias_ih.data, m.bias_hh.data]
    want = ref.cell(cfg["kind"], x, tuple(states), m.weight_ih.data, m.weight_hh.data, *b)
    for got, w in zip(call_cell(m, x_t, s_t), want):
        w = w if cfg["batched"] else w[0]
        assert got.shape == w.shape and got.dtype == np.float64
        np.testing.assert_allclose(got.numpy(), w, rtol=1e-12, atol=1e-14)


@settings(max_examples=30)
@given(cell_configs())
def test_cell_gradients_by_gradcheck(cfg):
    m, _, _, x_t, s_t = build_cell(cfg)
    assert tg.gradcheck(lambda x, *rest: call_cell(m, x, rest[:len(s_t)]),
                        [x_t, *s_t, *m.parameters()])


@pytest.mark.parametrize("kind", sorted(ref.KINDS))
@pytest.mark.parametrize("bias", [True, False])
def test_cell_second_derivatives(kind, bias):
    cfg = dict(kind=kind, N=2, input_size=2, hidden_size=2, bias=bias, batched=True,
               with_state=True, seed=4)
    m, _, _, x_t, s_t = build_cell(cfg)
    assert tg.gradgradcheck(lambda x, *rest: call_cell(m, x, rest[:len(s_t)]),
                            [x_t, *s_t, *m.parameters()], atol=1e-4)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_fused_cells_recorded_and_fast_backward_agree(kind):
    cfg = dict(kind=kind, N=3, input_size=2, hidden_size=4, bias=True, batched=True,
               with_state=True, seed=5)
    m, _, _, x_t, s_t = build_cell(cfg)
    wrt = [x_t, *s_t, *m.parameters()]
    loss = lambda: sum((y * y * y).sum() for y in call_cell(m, x_t, s_t))  # noqa: E731
    for a, b in zip(tg.grad(loss(), wrt), tg.grad(loss(), wrt, create_graph=True)):
        assert b.requires_grad and not a.requires_grad
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-14)


def test_fused_cells_are_one_node_after_the_projection():
    h, c = nn.LSTMCell(3, 4)(tg.randn(2, 3))
    nodes = [type(t._ctx).__name__ for t in graph_order([h]) if t._ctx is not None]
    assert nodes == ["Add", "Linear", "LSTMCell", "GetItem"]   # Add: b_ih + b_hh
    nodes = [type(t._ctx).__name__ for t in graph_order([nn.GRUCell(3, 4)(tg.randn(2, 3))])
             if t._ctx is not None]
    assert nodes == ["Linear", "GRUCell"]
    assert c.shape == (2, 4) and c.data.flags.c_contiguous


def test_cell_float32_matches_float64():
    cfg = dict(kind="LSTM", N=5, input_size=3, hidden_size=6, bias=True, batched=True,
               with_state=True, seed=6)
    want = call_cell(*(lambda b: (b[0], *b[3:]))(build_cell(cfg)))
    got = call_cell(*(lambda b: (b[0], *b[3:]))(build_cell(cfg, np.float32)))
    for g, w in zip(got, want):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5, atol=1e-6)


def test_cells_init_and_repr_are_pytorchs():
    tg.manual_seed(0)
    cell = nn.LSTMCell(10, 20)
    assert [(n, p.shape) for n, p in cell.named_parameters()] == [
        ("weight_ih", (80, 10)), ("weight_hh", (80, 20)), ("bias_ih", (80,)), ("bias_hh", (80,))]
    assert all(np.abs(p.data).max() <= 20 ** -0.5 for p in cell.parameters())
    assert nn.GRUCell(3, 4, bias=False).bias_ih is None
    assert list(nn.GRUCell(3, 4, bias=False).state_dict()) == ["weight_ih", "weight_hh"]
    assert repr(cell) == "LSTMCell(10, 20)"
    assert repr(nn.RNNCell(3, 4, bias=False, nonlinearity="relu")) == \
        "RNNCell(3, 4, bias=False, nonlinearity=relu)"
    assert repr(nn.GRUCell(3, 4)) == "GRUCell(3, 4)"
    with pytest.raises(ValueError, match="RNNCell: unknown nonlinearity 'gelu'"):
        nn.RNNCell(3, 4, nonlinearity="gelu")


@pytest.mark.parametrize("kind", ["RNNCell", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("x_shape, h_shape, message", [
    ((2, 5), None, r"expected input of shape \(N, 3\) or \(3,\) unbatched, got \(2, 5\)"),
    ((2, 1, 3), None, r"expected input of shape \(N, 3\) .* got \(2, 1, 3\)"),
    ((2, 3), (3, 4), r"expected h_0 of shape \(2, 4\), got \(3, 4\)"),        # batch
    ((2, 3), (2, 5), r"expected h_0 of shape \(2, 4\), got \(2, 5\)"),
    ((3,), (1, 4), r"expected h_0 of shape \(4,\), got \(1, 4\)"),            # unbatched
])
def test_cell_bad_input_raises_before_anything_changes(kind, x_shape, h_shape, message):
    m = getattr(nn, kind)(3, 4)
    before = m.state_dict()
    x = np.ones(x_shape, np.float32)
    hx = None if h_shape is None else tg.from_numpy(np.zeros(h_shape, np.float32))
    if hx is not None and kind == "LSTMCell":
        hx = (hx, hx)
    with pytest.raises(ValueError, match=f"{kind}: {message}"):
        m(tg.from_numpy(x), hx)
    assert all(np.array_equal(v, m.state_dict()[k]) for k, v in before.items())
    assert (x == 1).all() and all(p.grad is None for p in m.parameters())
    with pytest.raises(TypeError, match=f"{kind}: input has dtype int64"):
        m(tg.zeros(2, 3, dtype=np.int64))
