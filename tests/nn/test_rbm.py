"""The RBM (tinygrad_edu/nn/rbm.py): free energy, conditionals, the CD/PCD gradient and the
monitoring costs against NumPy references of the formulas; gradcheck; a tiny RBM trained by
CD-1 whose Gibbs samples reproduce a toy distribution; bad input changes nothing."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_edu as tg
from tinygrad_edu.nn.rbm import RBM, bernoulli, softplus


# ---- NumPy references ------------------------------------------------------------------------
def np_softplus(x):
    return np.logaddexp(0.0, x)


def np_sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))


def np_free_energy(v, W, bv, bh):
    return -v @ bv - np_softplus(v @ W + bh).sum(axis=1)


def np_cd_grads(v, vm, W, bv, bh):
    """Gradient of mean F(v) - mean F(vm): minus the classic CD update."""
    hd, hm = np_sigmoid(v @ W + bh), np_sigmoid(vm @ W + bh)
    dW = v.T @ hd / len(v) - vm.T @ hm / len(vm)
    return -dW, -(v.mean(0) - vm.mean(0)), -(hd.mean(0) - hm.mean(0))


def make_rbm(n_v, n_h, seed=0, dtype=np.float64):
    """An RBM with random nonzero biases too (so each term of the formulas is exercised)."""
    tg.manual_seed(seed)
    rbm = RBM(n_v, n_h, dtype=dtype)
    rng = np.random.default_rng(seed)
    with tg.no_grad():
        rbm.b_visible.copy_(rng.normal(size=n_v))
        rbm.b_hidden.copy_(rng.normal(size=n_h))
    return rbm, rbm.W.numpy().copy(), rbm.b_visible.numpy().copy(), rbm.b_hidden.numpy().copy()


def binary(shape, seed=0, p=0.5, dtype=np.float64):
    return (np.random.default_rng(seed).random(shape) < p).astype(dtype)


# ---- the model -------------------------------------------------------------------------------
def test_init_is_the_tutorials_and_reproducible():
    tg.manual_seed(3)
    rbm = RBM(30, 20)
    a = 4 * np.sqrt(6 / 50)
    W = rbm.W.numpy()
    assert W.shape == (30, 20) and W.dtype == np.float32
    assert np.abs(W).max() <= a and np.abs(W).max() > 0.9 * a  # U(-a, a), filling the range
    assert not rbm.b_visible.numpy().any() and not rbm.b_hidden.numpy().any()
    assert [n for n, _ in rbm.named_parameters()] == ["W", "b_visible", "b_hidden"]
    tg.manual_seed(3)
    np.testing.assert_array_equal(RBM(30, 20).W.numpy(), W)


def test_softplus_is_stable_and_differentiable():
    x = np.array([-800.0, -30.0, -1.0, 0.0, 2.0, 40.0, 800.0])
    t = tg.Tensor(x, requires_grad=True)
    y = softplus(t)
    np.testing.assert_allclose(y.numpy(), np_softplus(x), rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), np_sigmoid(x), rtol=1e-12, atol=1e-15)
    assert tg.gradcheck(softplus, [tg.Tensor(np.linspace(-5, 5, 11), requires_grad=True)])


@given(st.integers(1, 7), st.integers(1, 5), st.integers(1, 6), st.integers(0, 2 ** 16))
def test_free_energy_and_conditionals_match_numpy(n_v, n_h, n, seed):
    rbm, W, bv, bh = make_rbm(n_v, n_h, seed)
    v = np.random.default_rng(seed + 1).random((n, n_v))  # probabilities are valid data too
    np.testing.assert_allclose(rbm.free_energy(v).numpy(), np_free_energy(v, W, bv, bh),
                               rtol=1e-12, atol=1e-12)
    p, s = rbm.h_given_v(v)
    np.testing.assert_allclose(p.numpy(), np_sigmoid(v @ W + bh), rtol=1e-12, atol=1e-15)
    h = binary((n, n_h), seed)
    q, t = rbm.v_given_h(h)
    np.testing.assert_allclose(q.numpy(), np_sigmoid(h @ W.T + bv), rtol=1e-12, atol=1e-15)
    for sample, shape in ((s, (n, n_h)), (t, (n, n_v))):
        assert sample.shape == shape and sample.dtype == np.float64
        assert not sample.requires_grad and set(np.unique(sample.numpy())) <= {0.0, 1.0}


def test_gradcheck_free_energy():
    rbm, *_ = make_rbm(5, 3, seed=1)
    v = tg.Tensor(np.random.default_rng(0).uniform(0.1, 0.9, (4, 5)), requires_grad=True)
    assert tg.gradcheck(lambda v, W, bv, bh: rbm.free_energy(v),
                        [v, rbm.W, rbm.b_visible, rbm.b_hidden])


def test_bernoulli_frequencies_and_seed():
    p = tg.Tensor(np.array([[0.0, 0.2, 0.5, 0.9, 1.0]]).repeat(20000, 0))
    tg.manual_seed(0)
    s = bernoulli(p)
    np.testing.assert_allclose(s.numpy().mean(0), [0, 0.2, 0.5, 0.9, 1], atol=0.015)
    tg.manual_seed(0)
    np.testing.assert_array_equal(bernoulli(p).numpy(), s.numpy())


def test_gibbs_returns_probs_and_sample_of_the_last_step():
    rbm, W, bv, bh = make_rbm(6, 4, seed=2)
    v = binary((5, 6), seed=2)
    tg.manual_seed(7)
    probs, sample = rbm.gibbs(v, k=3)
    tg.manual_seed(7)  # the same random numbers, step by step through the public conditionals
    x = v
    for _ in range(3):
        p, x = rbm.v_given_h(rbm.h_given_v(x)[1])
    np.testing.assert_array_equal(sample.numpy(), x.numpy())
    np.testing.assert_allclose(probs.numpy(), p.numpy())
    assert not probs.requires_grad and not sample.requires_grad


# ---- the CD gradient -------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 3])
def test_cd_loss_gradient_is_the_cd_update(k):
    rbm, W, bv, bh = make_rbm(7, 5, seed=k)
    v = binary((6, 7), seed=k)
    tg.manual_seed(11)
    loss = rbm.cd_loss(v, k=k)
    tg.manual_seed(11)
    _, vm = rbm.gibbs(v, k=k)  # the chain end cd_loss used
    vm = vm.numpy()
    ref = np_free_energy(v, W, bv, bh).mean() - np_free_energy(vm, W, bv, bh).mean()
    assert loss.item() == pytest.approx(ref, rel=1e-12)
    loss.backward()
    for p, g in zip((rbm.W, rbm.b_visible, rbm.b_hidden), np_cd_grads(v, vm, W, bv, bh)):
        np.testing.assert_allclose(p.grad.numpy(), g, rtol=1e-10, atol=1e-12)


def test_pcd_with_chains_kept_by_the_caller():
    rbm, W, bv, bh = make_rbm(6, 4, seed=5)
    v = binary((5, 6), seed=5)
    chains = tg.Tensor(binary((3, 4), seed=6))  # 3 chains: any number, not the batch size
    start = chains.numpy().copy()
    tg.manual_seed(2)
    loss = rbm.cd_loss(v, k=2, persistent=chains)
    tg.manual_seed(2)
    h = tg.Tensor(start)
    for _ in range(2):  # PCD runs h -> v -> h from the stored hidden states
        _, vm = rbm.v_given_h(h)
        _, h = rbm.h_given_v(vm)
    np.testing.assert_array_equal(chains.numpy(), h.numpy())  # updated in place
    loss.backward()
    for p, g in zip((rbm.W, rbm.b_visible, rbm.b_hidden),
                    np_cd_grads(v, vm.numpy(), W, bv, bh)):
        np.testing.assert_allclose(p.grad.numpy(), g, rtol=1e-10, atol=1e-12)
    assert rbm.chains is None


def test_pcd_with_chains_kept_by_the_module():
    rbm, W, bv, bh = make_rbm(6, 4, seed=8)
    v = binary((5, 6), seed=8)
    tg.manual_seed(4)
    rbm.cd_loss(v, k=1, persistent=True)
    tg.manual_seed(4)  # the first call starts from h = 0, one chain per example
    _, vm = rbm.v_given_h(np.zeros((5, 4)))
    _, h = rbm.h_given_v(vm)
    np.testing.assert_array_equal(rbm.chains.numpy(), h.numpy())
    first, before = rbm.chains, rbm.chains.numpy().copy()
    tg.manual_seed(5)
    rbm.cd_loss(binary((2, 6)), k=1, persistent=True)  # continues the same 5 chains
    tg.manual_seed(5)
    _, h = rbm.h_given_v(rbm.v_given_h(before)[1])
    assert rbm.chains is first  # updated in place (so that a tg.compile replay can repeat it)
    np.testing.assert_array_equal(rbm.chains.numpy(), h.numpy())
    assert "chains" not in rbm.state_dict()


def test_cd_training_is_reproducible():
    def train(seed):
        tg.manual_seed(seed)
        rbm = RBM(8, 5)
        opt = tg.optim.SGD(rbm.parameters(), lr=0.1)
        for b in range(10):
            loss = rbm.cd_loss(binary((10, 8), seed=b), k=2, persistent=True)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return rbm.W.numpy()
    np.testing.assert_array_equal(train(1), train(1))
    assert not np.array_equal(train(1), train(2))


def test_cd1_learns_a_toy_distribution():
    """Two 6-bit patterns with frequencies 0.7 / 0.3: after CD-1 training, both the exact model
    distribution (from the free energy of all 64 states) and Gibbs samples started far from the
    data (all zeros) give the patterns those frequencies."""
    a, b = np.array([1, 1, 0, 0, 1, 0.0]), np.array([1, 0, 0, 0, 1, 1.0])
    rng = np.random.default_rng(0)
    X = np.where(rng.random(1000)[:, None] < 0.7, a, b).astype(np.float32)
    tg.manual_seed(0)
    rbm = RBM(6, 4)
    opt = tg.optim.SGD(rbm.parameters(), lr=0.3, momentum=0.5)
    for lr, epochs in ((0.3, 40), (0.03, 20)):  # a lower rate at the end settles the weights
        opt.param_groups[0]["lr"] = lr
        for _ in range(epochs):
            for i in range(0, 1000, 50):
                loss = rbm.cd_loss(X[i:i + 50], k=1)
                opt.zero_grad()
                loss.backward()
                opt.step()
    states = ((np.arange(64)[:, None] >> np.arange(6)) & 1).astype(np.float32)
    logp = -rbm.free_energy(states).numpy().astype(np.float64)
    p = np.exp(logp - logp.max())
    p /= p.sum()
    index = {tuple(s): i for i, s in enumerate(states)}
    assert p[index[tuple(a)]] == pytest.approx(0.7, abs=0.07)
    assert p[index[tuple(b)]] == pytest.approx(0.3, abs=0.07)
    _, s = rbm.gibbs(np.zeros((2000, 6), np.float32), k=300)
    s = s.numpy()
    freq_a, freq_b = (s == a).all(1).mean(), (s == b).all(1).mean()
    assert freq_a == pytest.approx(0.7, abs=0.07) and freq_b == pytest.approx(0.3, abs=0.07)
    assert 1 - freq_a - freq_b < 0.05


# ---- monitoring ------------------------------------------------------------------------------
def test_pseudo_likelihood_matches_numpy_and_cycles_the_bit():
    rbm, W, bv, bh = make_rbm(5, 3, seed=9)
    v = np.random.default_rng(9).random((4, 5))
    x = np.floor(v + 0.5)
    for call in range(7):
        i = call % 5
        assert rbm.pl_bit == i
        flipped = x.copy()
        flipped[:, i] = 1 - flipped[:, i]
        gap = np_free_energy(flipped, W, bv, bh) - np_free_energy(x, W, bv, bh)
        ref = 5 * np.mean(np.log(np_sigmoid(gap)))
        assert rbm.pseudo_likelihood(v) == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("sample", [False, True])
def test_reconstruction_cross_entropy_matches_numpy(sample):
    rbm, W, bv, bh = make_rbm(5, 3, seed=10)
    v = binary((6, 5), seed=10)
    tg.manual_seed(1)
    value = rbm.reconstruction_cross_entropy(v, sample=sample)
    tg.manual_seed(1)
    h = rbm.h_given_v(v)[1].numpy() if sample else np_sigmoid(v @ W + bh)
    r = np_sigmoid(h @ W.T + bv)
    ref = -np.mean(np.sum(v * np.log(r) + (1 - v) * np.log(1 - r), axis=1))
    assert value == pytest.approx(ref, rel=1e-10)


# ---- bad input -------------------------------------------------------------------------------
def _state(rbm):
    return ([p.numpy().copy() for p in rbm.parameters()], rbm.pl_bit,
            None if rbm.chains is None else rbm.chains.numpy().copy(), tg.get_rng_state())


def _assert_same(rbm, before):
    params, bit, chains, rng = before
    for p, old in zip(rbm.parameters(), params):
        np.testing.assert_array_equal(p.numpy(), old)
        assert p.grad is None
    assert rbm.pl_bit == bit
    assert (rbm.chains is None) == (chains is None)
    if chains is not None:
        np.testing.assert_array_equal(rbm.chains.numpy(), chains)
    assert repr(tg.get_rng_state()) == repr(rng)


GOOD = binary((4, 6), seed=1, dtype=np.float32)


@pytest.mark.parametrize("call, match", [
    (lambda r: r.cd_loss(GOOD * 2 - 0.5), r"in \[0, 1\].*from -0.5 to 1.5"),
    (lambda r: r.cd_loss(GOOD[:, :5]), r"shape \(N, 6\).*\(4, 5\)"),
    (lambda r: r.cd_loss(GOOD[0]), r"shape \(N, 6\)"),
    (lambda r: r.cd_loss(GOOD, k=0), "k must be an integer >= 1, got 0"),
    (lambda r: r.cd_loss(GOOD, k=1.5), "k must be an integer >= 1"),
    (lambda r: r.cd_loss(GOOD, persistent=tg.zeros(3, 5)), r"hidden states.*\(N, 4\)"),
    (lambda r: r.cd_loss(GOOD, persistent=tg.full((3, 4), 2.0)), r"in \[0, 1\]"),
    (lambda r: r.cd_loss(GOOD, persistent="yes"), "persistent must be None"),
    (lambda r: r.gibbs(GOOD, k=-1), "k must be"),
    (lambda r: r.free_energy(GOOD * np.nan), r"in \[0, 1\]"),
    (lambda r: r.pseudo_likelihood(GOOD + 1), r"in \[0, 1\]"),
    (lambda r: r.reconstruction_cross_entropy(np.zeros((0, 6))), "N >= 1"),
    (lambda r: r.v_given_h(GOOD[:, :4] * 3), r"hidden states.*in \[0, 1\]"),
    (lambda r: r.h_given_v(tg.Tensor(GOOD, dtype=np.float64)), "float64, the model float32"),
])
def test_bad_input_raises_and_changes_nothing(call, match):
    tg.manual_seed(0)
    rbm = RBM(6, 4)
    rbm.cd_loss(GOOD, persistent=True)  # chains exist, so a change to them would be seen
    rbm.pseudo_likelihood(GOOD)
    data = GOOD.copy()
    before = _state(rbm)
    with pytest.raises((ValueError, TypeError), match=match):
        call(rbm)
    _assert_same(rbm, before)
    np.testing.assert_array_equal(GOOD, data)  # the caller's array too


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="n_hidden must be an integer >= 1, got 0"):
        RBM(5, 0)
    with pytest.raises(TypeError, match="float32 or float64"):
        RBM(5, 3, dtype=np.int32)
