"""nn.RNN, nn.LSTM and nn.GRU: forward against the NumPy equations (rnn_refs.py), every gradient
by gradcheck, second derivatives, dropout, input checks, backpropagation through time."""
import gc
import math
import weakref

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import rnn_refs as ref
import tinygrad_edu as tg
from tinygrad_edu import nn
from tinygrad_edu.ops.recurrent import LSTMSequence
from tinygrad_edu.tensor import graph_order


@st.composite
def configs(draw, max_size=3):
    """A small layer and its call: kind, sizes, layers, directions, layout, bias, state."""
    return dict(kind=draw(st.sampled_from(sorted(ref.KINDS))), L=draw(st.integers(1, 3)),
                N=draw(st.integers(1, 2)), input_size=draw(st.integers(1, max_size)),
                hidden_size=draw(st.integers(1, max_size)), num_layers=draw(st.integers(1, 2)),
                bidirectional=draw(st.booleans()), batch_first=draw(st.booleans()),
                bias=draw(st.booleans()), batched=draw(st.booleans()),
                with_state=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


def build(cfg, dtype=np.float64):
    """(layer, time-major x (L, N, in), states [(layers*D, N, H)], the layer's arguments)."""
    kind, L, N, H = cfg["kind"], cfg["L"], cfg["N"] if cfg["batched"] else 1, cfg["hidden_size"]
    m = ref.make_layer(kind, cfg["input_size"], H, dtype, cfg["seed"],
                       num_layers=cfg["num_layers"], bidirectional=cfg["bidirectional"],
                       batch_first=cfg["batch_first"], bias=cfg["bias"])
    rng = np.random.default_rng(cfg["seed"] + 1)
    x = rng.standard_normal((L, N, cfg["input_size"]))
    shape = (cfg["num_layers"] * (2 if cfg["bidirectional"] else 1), N, H)
    states = [rng.standard_normal(shape) if cfg["with_state"] else np.zeros(shape)
              for _ in range(ref.KINDS[kind][1])]
    xa = x[:, 0] if not cfg["batched"] else x.swapaxes(0, 1) if cfg["batch_first"] else x
    x_t = tg.tensor(xa.astype(dtype), requires_grad=True)
    s_t = [tg.tensor((s if cfg["batched"] else s[:, 0]).astype(dtype), requires_grad=True)
           for s in states]
    return m, x, states, x_t, s_t if cfg["with_state"] else []


def call(m, x_t, s_t):
    """The layer's outputs as one tuple (output, h_n[, c_n])."""
    hx = None if not s_t else s_t[0] if len(s_t) == 1 else tuple(s_t)
    out, h = m(x_t, hx)
    return (out,) + (h if isinstance(h, tuple) else (h,))


def expected(cfg, m, x, states):
    out, finals = ref.layer(cfg["kind"], x, states, ref.weights_of(m), cfg["num_layers"],
                            cfg["bidirectional"])
    if not cfg["batched"]:
        return (out[:, 0],) + tuple(f[:, 0] for f in finals)
    return (out.swapaxes(0, 1) if cfg["batch_first"] else out,) + tuple(finals)


@settings(max_examples=40)
@given(configs())
def test_forward_matches_the_equations(cfg):
    m, x, states, x_t, s_t = build(cfg)
    for got, want in zip(call(m, x_t, s_t), expected(cfg, m, x, states)):
        assert got.shape == want.shape and got.dtype == np.float64
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)


@settings(max_examples=20)
@given(configs(max_size=2))
def test_every_gradient_by_gradcheck(cfg):
    """Inputs, initial states and every parameter, through all outputs at once."""
    m, _, _, x_t, s_t = build(cfg)
    params = m.parameters()
    assert tg.gradcheck(lambda x, *rest: call(m, x, rest[:len(s_t)]), [x_t, *s_t, *params])


def test_float32_matches_float64():
    cfg = dict(kind="LSTM", L=4, N=3, input_size=3, hidden_size=5, num_layers=2,
               bidirectional=True, batch_first=False, bias=True, batched=True, with_state=True,
               seed=3)
    m, _, _, *args = build(cfg)
    m32, _, _, *args32 = build(cfg, np.float32)
    for got, w in zip(call(m32, *args32), call(m, *args)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got.numpy(), w.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", sorted(ref.KINDS))
def test_second_derivatives(kind):
    """The layers are twice differentiable (their backward under create_graph is recorded)."""
    cfg = dict(kind=kind, L=2, N=1, input_size=1, hidden_size=2, num_layers=1, seed=1,
               bidirectional=kind == "GRU", batch_first=False, bias=True, batched=True,
               with_state=True)
    m, _, _, x_t, s_t = build(cfg)
    assert tg.gradgradcheck(lambda x, *rest: call(m, x, rest[:len(s_t)]),
                            [x_t, *s_t, *m.parameters()], atol=1e-4)


@pytest.mark.parametrize("kind", sorted(ref.KINDS))
def test_recorded_and_fast_backward_agree(kind):
    cfg = dict(kind=kind, L=3, N=2, input_size=2, hidden_size=3, num_layers=2, seed=2,
               bidirectional=True, batch_first=True, bias=True, batched=True, with_state=True)
    m, _, _, x_t, s_t = build(cfg)
    wrt = [x_t, *s_t, *m.parameters()]
    loss = lambda: sum((y * y).sum() for y in call(m, x_t, s_t))  # noqa: E731
    fast = tg.grad(loss(), wrt)
    recorded = tg.grad(loss(), wrt, create_graph=True)
    for a, b in zip(fast, recorded):
        assert b.requires_grad
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)


# ---- construction ------------------------------------------------------------------------------
def test_parameters_have_pytorch_names_shapes_and_init():
    tg.manual_seed(0)
    m = nn.LSTM(10, 20, num_layers=2, bidirectional=True)
    shapes = {name: p.shape for name, p in m.named_parameters()}
    names = [f"{w}_l{k}{s}" for k in (0, 1) for s in ("", "_reverse")
             for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    assert list(shapes) == names == list(m.state_dict())
    assert shapes["weight_ih_l0"] == (80, 10) and shapes["weight_ih_l1_reverse"] == (80, 40)
    assert shapes["weight_hh_l1"] == (80, 20) and shapes["bias_hh_l0_reverse"] == (80,)
    bound = 1 / math.sqrt(20)
    for p in m.parameters():
        assert p.dtype == np.float32 and np.abs(p.data).max() <= bound
    values = np.concatenate([p.data.ravel() for p in m.parameters()])
    assert values.min() < -0.95 * bound and values.max() > 0.95 * bound  # the whole range
    tg.manual_seed(0)
    np.testing.assert_array_equal(nn.LSTM(10, 20, 2, bidirectional=True).weight_hh_l1.data,
                                  m.weight_hh_l1.data)
    assert [n for n, _ in nn.GRU(3, 4, bias=False).named_parameters()] == \
        ["weight_ih_l0", "weight_hh_l0"]
    assert nn.GRU(3, 4).weight_ih_l0.shape == (12, 3) and nn.RNN(3, 4).weight_hh_l0.shape == (4, 4)


def test_repr_is_pytorchs():
    assert repr(nn.LSTM(10, 20)) == "LSTM(10, 20)"
    assert repr(nn.RNN(3, 4, nonlinearity="relu")) == "RNN(3, 4)"
    assert (repr(nn.GRU(3, 4, num_layers=2, bias=False, batch_first=True, dropout=0.5,
                        bidirectional=True))
            == "GRU(3, 4, num_layers=2, bias=False, batch_first=True, dropout=0.5, "
               "bidirectional=True)")


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="nonlinearity 'sigmoid'"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout must be a number in"):
        nn.LSTM(3, 4, num_layers=2, dropout=1.5)
    with pytest.raises(ValueError, match="hidden_size must be an integer >= 1, got 0"):
        nn.GRU(3, 0)
    with pytest.warns(UserWarning, match="num_layers=1"):
        nn.LSTM(3, 4, dropout=0.5)


# ---- dropout -----------------------------------------------------------------------------------
def test_dropout_between_layers_in_training_only():
    tg.manual_seed(0)
    m = nn.GRU(3, 4, num_layers=2, dropout=1.0)   # everything between the layers zeroed
    x1, x2 = tg.randn(5, 2, 3), tg.randn(5, 2, 3)
    (out1, h1), (out2, h2) = m(x1), m(x2)
    np.testing.assert_array_equal(out1.numpy(), out2.numpy())  # layer 1 saw only zeros
    assert not np.allclose(h1.numpy()[0], h2.numpy()[0])       # layer 0 (no dropout after it)
    m.eval()
    assert not np.allclose(m(x1)[0].numpy(), m(x2)[0].numpy())
    m = nn.LSTM(3, 4, num_layers=3, dropout=0.5)
    tg.manual_seed(1)
    a = m(x1)[0].numpy()
    tg.manual_seed(1)
    np.testing.assert_array_equal(m(x1)[0].numpy(), a)            # the engine's generator
    assert not np.array_equal(m(x1)[0].numpy(), a)


# ---- bad input ---------------------------------------------------------------------------------
H0 = (2, 3, 4)  # (num_layers, N, H) of the layers below


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("x_shape, h_shape, c_shape, message", [
    ((5, 3, 6), None, None, r"expected input of shape \(L, N, 2\) or \(L, 2\) unbatched, got "
                            r"\(5, 3, 6\)"),
    ((5, 3, 2, 1), None, None, r"expected input of shape \(L, N, 2\) .* got \(5, 3, 2, 1\)"),
    ((0, 3, 2), None, None, r"input of shape \(0, 3, 2\) has no time steps"),
    ((5, 3, 2), (2, 3, 5), H0, r"expected h_0 of shape \(2, 3, 4\), got \(2, 3, 5\)"),
    ((5, 3, 2), (2, 2, 4), H0, r"expected h_0 of shape \(2, 3, 4\), got \(2, 2, 4\)"),  # batch
    ((5, 3, 2), (1, 3, 4), H0, r"expected h_0 of shape \(2, 3, 4\), got \(1, 3, 4\)"),  # layers
    ((5, 2), (2, 3, 4), (2, 4), r"expected h_0 of shape \(2, 4\), got \(2, 3, 4\)"),
    ((5, 3, 2), H0, (2, 3, 3), r"expected c_0 of shape \(2, 3, 4\), got \(2, 3, 3\)"),
])
def test_bad_input_raises_before_anything_changes(kind, x_shape, h_shape, c_shape, message):
    if "c_0" in message and kind != "LSTM":
        pytest.skip("c_0 is LSTM's")
    tg.manual_seed(0)
    m = getattr(nn, kind)(2, 4, num_layers=2, dropout=0.5)   # training: dropout draws numbers
    before, rng = m.state_dict(), tg.get_rng_state()
    x = np.ones(x_shape, np.float32)
    hx = [] if h_shape is None else [np.zeros(h_shape, np.float32)]
    if hx and kind == "LSTM":
        hx.append(np.zeros(c_shape, np.float32))
    args = [tg.from_numpy(x)] + ([tuple(map(tg.from_numpy, hx))] if kind == "LSTM" and hx
                                 else [tg.from_numpy(h) for h in hx])
    with pytest.raises(ValueError, match=f"{kind}: {message}"):
        m(*args)
    assert all(np.array_equal(v, m.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in m.parameters())
    assert tg.get_rng_state() == rng
    assert (x == 1).all() and all((h == 0).all() for h in hx)


def test_wrong_types_and_dtypes_are_refused():
    m = nn.LSTM(2, 4)
    x = tg.zeros(5, 3, 2)
    with pytest.raises(TypeError, match=r"LSTM: the state must be a tuple \(h_0, c_0\)"):
        m(x, tg.zeros(1, 3, 4))
    with pytest.raises(TypeError, match="LSTM: input has dtype float64, the parameters float32"):
        m(x.double())
    with pytest.raises(TypeError, match="GRU: h_0 has dtype int64"):
        nn.GRU(2, 4)(x, tg.zeros(1, 3, 4, dtype=np.int64))
    with pytest.raises(TypeError, match="RNN: input must be a Tensor, got ndarray"):
        nn.RNN(2, 4)(np.zeros((5, 3, 2), np.float32))


# ---- backpropagation through time --------------------------------------------------------------
def test_truncated_bptt_with_detached_state():
    """Chunks with the state carried over by detach() give the full sequence's outputs, and each
    chunk's gradients stop at its start: they equal those of the chunk alone, from that state."""
    m = ref.make_layer("LSTM", 3, 4)
    x = tg.randn(6, 2, 3, dtype=np.float64)
    full, _ = m(x)
    state, grads = None, []
    for chunk in (x[:3], x[3:]):
        m.zero_grad()
        out, state = m(chunk, state)
        (out * out).sum().backward()
        grads.append([p.grad.numpy().copy() for p in m.parameters()])
        np.testing.assert_allclose(out.numpy(), full.numpy()[:3] if len(grads) == 1 else
                                   full.numpy()[3:], rtol=1e-12)
        state = tuple(s.detach() for s in state)
        assert all(s.grad_fn is None and not s.requires_grad for s in state)
    m.zero_grad()
    h0 = tuple(tg.tensor(s.numpy()) for s in m(x[:3])[1])
    out, _ = m(x[3:], h0)
    (out * out).sum().backward()
    for a, b in zip(grads[1], m.parameters()):
        np.testing.assert_allclose(a, b.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_a_thousand_steps_backward_and_free_memory(kind):
    """No recursion limit, and the graph (the per-step activations included) is freed by
    backward while the output is still held."""
    tg.manual_seed(0)
    m = getattr(nn, kind)(1, 3, num_layers=2)
    x = tg.randn(1000, 1, 1, requires_grad=True)
    loss = m(x)[0][-1].sum()   # (h_n would hold the graph alive: the caller's choice)
    inner = [t for t in graph_order([loss]) if t._ctx is not None and t is not loss]
    refs = [weakref.ref(t) for t in inner]
    if kind == "LSTM":  # the activations of every step, saved by the loop's node
        acts = next(t._ctx.acts for t in inner if isinstance(t._ctx, LSTMSequence))
        assert len(acts) == 1000
        refs += [weakref.ref(acts[0]), weakref.ref(acts[-1])]
        del acts
    del inner
    gc.disable()
    try:
        loss.backward()
        assert all(r() is None for r in refs)
    finally:
        gc.enable()
    assert np.isfinite(x.grad.numpy()).all() and np.abs(x.grad.numpy()[-1]).sum() > 0
    assert all(np.isfinite(p.grad.numpy()).all() for p in m.parameters())


def test_tape_nodes_do_not_grow_with_the_sequence():
    """The loop over time is one node per layer and direction, whatever the length: with the
    projection (Add of the biases, Linear, Reshape) and LSTM's slice of h, 5 per direction."""
    m = nn.LSTM(2, 3, num_layers=2, bidirectional=True)
    counts = []
    for L in (2, 50):
        out, _ = m(tg.randn(L, 4, 2))
        nodes = [type(t._ctx).__name__ for t in graph_order([out]) if t._ctx is not None]
        assert nodes.count("LSTMSequence") == 4
        counts.append(len(nodes))
    assert counts[0] == counts[1] == 4 * 5 + 3   # + the two concatenations, one reshape
