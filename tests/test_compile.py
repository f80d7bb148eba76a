"""tg.compile: bit-exact replays, guards/cache, frozen control flow, errors, explain, fusion."""
import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.nn.functional as F
from tinygrad_edu import nn, optim

RNG = np.random.default_rng(0)
X = RNG.standard_normal((8, 20)).astype(np.float32)
Y = RNG.integers(0, 5, 8)


def _mlp(): return nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 5))
def _drop(): return nn.Sequential(nn.Dropout(0.2), nn.Linear(20, 16), nn.ReLU(),
                                  nn.Dropout(0.5), nn.Linear(16, 5))
def _bn(): return nn.Sequential(nn.Linear(20, 16), nn.BatchNorm1d(16), nn.ReLU(),
                                nn.Linear(16, 5))


def _train(make_model, make_opt, compiled, n=4):
    tg.manual_seed(0)
    m = make_model()
    opt = make_opt(m.parameters())
    def step(x, y):
        loss = F.cross_entropy(m(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        return loss
    s = tg.compile(step) if compiled else step
    losses = [s(tg.from_numpy(X + i), tg.from_numpy(Y)).numpy().copy() for i in range(n)]
    return m, opt, losses, s


def _state_arrays(opt):
    out = []
    for st in getattr(opt, "state", {}).values() if isinstance(getattr(opt, "state", None),
                                                                dict) else []:
        for v in (st.values() if isinstance(st, dict) else [st]):
            if hasattr(v, "shape"):
                out.append(np.asarray(getattr(v, "data", v)))
    return out


CASES = [
    (_mlp, lambda p: optim.SGD(p, lr=0.1)),
    (_drop, lambda p: optim.RMSprop(p, lr=1e-2, alpha=0.9, eps=1e-6)),
    (_bn, lambda p: optim.Adam(p, lr=1e-2)),
    (_mlp, lambda p: optim.Adam(p, lr=1e-2)),
]


@pytest.mark.parametrize("make_model,make_opt", CASES, ids=["mlp_sgd", "dropout_rmsprop",
                                                             "bn_adam", "mlp_adam"])
def test_compiled_steps_bit_identical_to_eager(make_model, make_opt):
    m1, o1, l1, _ = _train(make_model, make_opt, False)
    m2, o2, l2, s = _train(make_model, make_opt, True)
    assert s.recordings == 1
    for a, b in zip(l1, l2):
        assert np.array_equal(a, b)
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert np.array_equal(p.data, q.data)
    for a, b in zip(_state_arrays(o1), _state_arrays(o2)):
        assert np.array_equal(a, b)
    for (n1, b1), (n2, b2) in zip(m1.named_buffers(), m2.named_buffers()):
        assert n1 == n2 and np.array_equal(np.asarray(b1.data), np.asarray(b2.data))


def test_dropout_replays_fresh_randomness_in_eager_sequence():
    def run(compiled):
        tg.manual_seed(1)
        m = _drop()
        f = (tg.compile if compiled else (lambda g: g))(lambda x: m(x))
        x = tg.from_numpy(X)
        return [f(x).numpy().copy() for _ in range(3)]
    e, c = run(False), run(True)
    assert not np.array_equal(c[1], c[2])
    for a, b in zip(e, c):
        assert np.array_equal(a, b)


def test_cache_guards_and_lru():
    f = tg.compile(lambda x, k: x * k, cache_size=2)
    a = tg.from_numpy(np.ones((2, 3), np.float32))
    f(a, 2.0); f(a, 2.0)
    assert f.recordings == 1
    f(tg.from_numpy(np.ones((4, 3), np.float32)), 2.0)
    assert f.recordings == 2
    f(a, 2.0)
    assert f.recordings == 2
    out = f(a, 3.0)  # scalar arg: new program; evicts the (4, 3) one (least recent)
    assert f.recordings == 3 and len(f.programs) == 2
    assert np.array_equal(out.numpy(), np.full((2, 3), 3, np.float32))
    f(tg.from_numpy(np.ones((2, 3), np.float64)), 2.0)
    assert f.recordings == 4


def test_frozen_control_flow_follows_recorded_branch():
    @tg.compile
    def f(x):
        return x * 2 if x.sum().item() > 0 else x * -1
    f(tg.from_numpy(np.ones(3, np.float32)))
    out = f(tg.from_numpy(-np.ones(3, np.float32)))  # eager would give +1s
    assert np.array_equal(out.numpy(), -2 * np.ones(3, np.float32))


def test_error_returning_python_number_caches_nothing():
    f = tg.compile(lambda x: (x * 2).sum().item())
    with pytest.raises(tg.CompileError, match="returned a float"):
        f(tg.from_numpy(np.ones(3, np.float32)))
    assert len(f.programs) == 0


def test_error_create_graph_inside():
    w = tg.from_numpy(np.ones(3)); w.requires_grad = True
    def g(x):
        (w * x).sum().backward(create_graph=True)
        return w.grad
    f = tg.compile(g)
    with pytest.raises(tg.CompileError, match="create_graph=True"):
        f(tg.from_numpy(np.ones(3)))
    assert len(f.programs) == 0


def test_error_nested_compiled_call():
    inner = tg.compile(lambda x: x * 2)
    outer = tg.compile(lambda x: inner(x) + 1)
    with pytest.raises(tg.CompileError, match="while another one records"):
        outer(tg.from_numpy(np.ones(3, np.float32)))
    assert len(outer.programs) == 0


def test_returned_values_structures():
    w = tg.from_numpy(np.ones(3, np.float32)); w.requires_grad = True
    f = tg.compile(lambda x: {"a": (x * 2, None), "w": w})
    for _ in range(2):
        out = f(tg.from_numpy(np.ones(3, np.float32)))
        assert out["a"][1] is None and out["w"] is w
        assert getattr(out["a"][0], "grad_fn", None) is None
        assert np.array_equal(out["a"][0].numpy(), np.full(3, 2, np.float32))


def test_explain_lists_steps_and_fused():
    f = tg.compile(lambda x: x * 2)
    import io
    buf = io.StringIO(); f.explain(file=buf)
    assert "nothing recorded" in buf.getvalue()
    def g(a, b):
        with tg.no_grad():
            return ((a * 2 + b) / b).relu()
    h = tg.compile(g)
    h(tg.from_numpy(np.ones(3, np.float32)), tg.from_numpy(np.ones(3, np.float32)))
    assert "[fused]" in next(iter(h.programs.values())).explain()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_chain_bit_identical_with_specials(dtype):
    a = np.array([[1.5, -0.0, np.inf], [np.nan, -2.0, 3.0]], dtype)
    b = np.array([0.5, -np.inf, 2.0], dtype)
    c = np.array([[0.0], [-3.0]], dtype)
    def g(a, b, c):
        with tg.no_grad():
            return ((a * 2 + b) / c).relu()
    args = [tg.from_numpy(v) for v in (a, b, c)]
    with np.errstate(all="ignore"):
        e = g(*args).numpy()
        for fuse in (True, False):
            f = tg.compile(g, fuse=fuse)
            f(*args); r = f(*args).numpy()
            assert r.tobytes() == e.tobytes()


def test_error_inplace_on_tensor_leaves_it_unchanged():
    w = tg.from_numpy(np.ones(3, np.float32))
    def g(x):
        t = w
        t += 1
        return x * t
    f = tg.compile(g)
    with pytest.raises(tg.CompileError, match=r"\+= on a tensor of shape \(3,\)"):
        f(tg.from_numpy(np.ones(3, np.float32)))
    assert len(f.programs) == 0 and np.array_equal(w.numpy(), np.ones(3, np.float32))


def test_optimizer_state_is_compared():
    _, o, _, _ = _train(_mlp, lambda p: optim.Adam(p, lr=1e-2), True, n=1)
    assert len(_state_arrays(o)) > 0


def test_lr_scheduler_change_is_used_by_replay():
    def run(compiled):
        tg.manual_seed(0)
        m = _mlp(); opt = optim.SGD(m.parameters(), lr=0.1)
        sch = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        def step(x, y):
            loss = F.cross_entropy(m(x), y)
            opt.zero_grad(); loss.backward(); opt.step()
            return loss
        s = tg.compile(step) if compiled else step
        for i in range(3):
            s(tg.from_numpy(X), tg.from_numpy(Y)); sch.step()
        return [p.data.copy() for p in m.parameters()]
    for a, b in zip(run(False), run(True)):
        assert np.array_equal(a, b)


def test_relu_grad_op_forward_and_twice_differentiable():
    from tinygrad_edu.ops.elementwise import ReluGrad
    gy = RNG.standard_normal(6); y = np.array([1.0, 0.0, -2.0, 3.0, 0.5, -0.1])
    out = ReluGrad.apply(tg.from_numpy(gy), tg.from_numpy(y)).numpy()
    assert np.array_equal(out, gy * (y > 0))
    x = tg.from_numpy(np.array([0.7, -1.3, 2.1, -0.4]))
    x.requires_grad = True
    assert tg.gradcheck(lambda t: (t.relu() * t.relu()).sum(), [x])
    assert tg.gradgradcheck(lambda t: (t.relu() * t.relu()).sum(), [x])


def test_creation_functions_inside_are_made_again_by_every_replay():
    def noisy(x):  # Gaussian input noise and a fresh zero state, as an RNN step makes them
        h = tg.zeros(*x.shape)
        return x + 0.1 * tg.randn(*x.shape) + h + tg.rand_like(x) * tg.ones(x.shape[1])
    x = tg.from_numpy(X)
    tg.manual_seed(5)
    eager = [noisy(x).numpy() for _ in range(3)]
    f = tg.compile(noisy)
    tg.manual_seed(5)
    compiled = [f(x).numpy() for _ in range(3)]
    assert f.recordings == 1 and not np.array_equal(compiled[1], compiled[2])
    for a, b in zip(eager, compiled):
        assert a.tobytes() == b.tobytes()


def test_copy_into_a_buffer_is_repeated_by_every_replay():
    state = tg.zeros(8, 20)      # state kept between calls, as an RBM's persistent chains
    def step(x):
        with tg.no_grad():
            state.copy_(state * 0.5 + x)
        return state * 1.0
    f = tg.compile(step)
    outs = [f(tg.from_numpy(X)).numpy() for _ in range(3)]
    expected, s = [], np.zeros((8, 20), np.float32)
    for _ in range(3):
        s = s * np.float32(0.5) + X
        expected.append(s)
    for a, b in zip(outs, expected):
        assert a.tobytes() == b.tobytes()
    assert state.numpy().tobytes() == expected[-1].tobytes() and f.recordings == 1


@pytest.mark.parametrize("clip", ["norm", "value"])
def test_gradient_clipping_runs_again_in_every_replay(clip):
    """The recording call's gradients are small (no clipping), the later ones large: each
    replay clips anew, and the optimizer steps on the clipped gradients."""
    def run(compiled):
        tg.manual_seed(0)
        m = _mlp()
        opt = optim.SGD(m.parameters(), lr=0.1)
        def step(x, y, scale):
            loss = F.cross_entropy(m(x), y) * scale
            opt.zero_grad(); loss.backward()
            if clip == "norm":
                nn.utils.clip_grad_norm_(m.parameters(), max_norm=1.0)
            else:
                nn.utils.clip_grad_value_(m.parameters(), clip_value=0.05)
            opt.step()
            return loss
        s = tg.compile(step) if compiled else step
        grads = []
        for scale in (0.01, 100.0, 100.0):  # the loss's scale: an input, not a constant
            s(tg.from_numpy(X), tg.from_numpy(Y), tg.tensor(np.float32(scale)))
            grads.append([p.grad.numpy().copy() for p in m.parameters()])
        return [p.numpy() for p in m.parameters()], grads, s
    eager, compiled = run(False), run(True)
    assert compiled[2].recordings == 1
    for a, b in zip(eager[0] + sum(eager[1], []), compiled[0] + sum(compiled[1], [])):
        assert a.tobytes() == b.tobytes()
    first = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in eager[1][0]))
    last = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in eager[1][2]))
    if clip == "norm":
        assert first < 1.0 and abs(last - 1.0) < 1e-4  # unclipped while recording, then clipped
    else:
        assert max(abs(g).max() for g in eager[1][0]) < 0.05
        assert max(abs(g).max() for g in eager[1][2]) == np.float32(0.05)


_EMB = nn.Embedding(10, 4, padding_idx=0)
DATA_DEPENDENT = {  # results that depend on the data through engine code outside the ops
    "comparison and where": (lambda x, y: tg.where(x > 0, x, x * 0.1), (4, 5), None),
    "softmax": (lambda x, y: F.softmax(x, dim=1), (4, 5), None),
    "log_softmax + nll_loss": (lambda x, y: F.nll_loss(F.log_softmax(x, dim=1), y), (4, 5), 5),
    "max along a dim": (lambda x, y: x.max(dim=1)[0] * x.argmax(dim=1).float(), (4, 5), None),
    "index by tensors": (lambda x, y: x[y, 4 - y], (6, 5), 5),
    "embedding, padding_idx": (lambda x, y: _EMB(y) * x.sum(), (3,), 10),
    "adaptive_max_pool2d": (lambda x, y: F.adaptive_max_pool2d(x, 2), (1, 2, 5, 5), None),
    "avg_pool2d, ceil_mode": (lambda x, y: F.avg_pool2d(x, 2, ceil_mode=True), (1, 2, 5, 5),
                              None),
    "integer cast": (lambda x, y: x * (x > 0.5).long().float(), (4, 5), None),
}


@pytest.mark.parametrize("name", DATA_DEPENDENT)
def test_results_that_depend_on_the_data_follow_the_new_data_in_a_replay(name):
    """Each replay, on new data, gives eager mode's values and gradients, bit for bit (before,
    these were refused, or taken from the recorded call)."""
    fn, shape, classes = DATA_DEPENDENT[name]
    rng = np.random.default_rng(1)
    calls = [(rng.standard_normal(shape).astype(np.float32),
              None if classes is None else rng.integers(0, classes, 4)) for _ in range(3)]

    def step(x, y):
        out = fn(x, y)
        (out * tg.tensor(np.float32(1.5))).sum().backward()
        return out
    compiled = tg.compile(step)
    for run in (step, compiled):
        results = []
        for xa, ya in calls:
            x = tg.tensor(xa, requires_grad=True)
            out = run(x, None if ya is None else tg.tensor(ya))
            results.append((out.numpy().tobytes(), x.grad.numpy().tobytes()))
        if run is step:
            eager = results
    assert compiled.recordings == 1 and results == eager
    assert len({r for r, _ in eager}) == 3  # the three calls do differ
