"""Autoencoders (tinygrad_edu/nn/autoencoder.py): the tied-weight layer against NumPy, its tied
gradient as the sum of both uses, masking noise, gradcheck of the losses, deep autoencoders
(untied, tied, unrolled from pre-trained layers) and bad input that changes nothing."""
import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu.nn.autoencoder import DeepAutoencoder, TiedAutoencoder
from tinygrad_edu.nn.rbm import RBM


def np_sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))


def np_cross_entropy(z, x):
    return -np.mean(np.sum(x * np.log(z) + (1 - x) * np.log(1 - z), axis=1))


def make_ae(n_v=6, n_h=4, seed=0, **kwargs):
    tg.manual_seed(seed)
    ae = TiedAutoencoder(n_v, n_h, dtype=np.float64, **kwargs)
    rng = np.random.default_rng(seed)
    with tg.no_grad():  # nonzero biases, so every term is exercised
        ae.bias.copy_(rng.normal(size=n_h))
        ae.decoder_bias.copy_(rng.normal(size=n_v))
    return ae, ae.weight.numpy().copy(), ae.bias.numpy().copy(), ae.decoder_bias.numpy().copy()


def data(shape=(5, 6), seed=0, dtype=np.float64):
    return np.random.default_rng(seed).uniform(0.05, 0.95, shape).astype(dtype)


def test_parameters_layout_and_init():
    tg.manual_seed(0)
    ae = TiedAutoencoder(30, 20)
    assert [(n, p.shape) for n, p in ae.named_parameters()] == [
        ("weight", (20, 30)), ("bias", (20,)), ("decoder_bias", (30,))]  # one weight only
    a = 4 * np.sqrt(6 / 50)  # the tutorial's bound for sigmoid units
    assert a * 0.9 < np.abs(ae.weight.numpy()).max() <= a
    tg.manual_seed(0)
    np.testing.assert_array_equal(TiedAutoencoder(30, 20).weight.numpy(), ae.weight.numpy())


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "linear"])
def test_encode_decode_forward_match_numpy(activation):
    ae, W, b, c = make_ae(activation=activation)
    x = data()
    act = {"sigmoid": np_sigmoid, "tanh": np.tanh, "relu": lambda a: np.maximum(a, 0),
           "linear": lambda a: a}[activation]
    h = act(x @ W.T + b)
    np.testing.assert_allclose(ae.encode(x).numpy(), h, rtol=1e-12)
    np.testing.assert_allclose(ae.decode(h).numpy(), np_sigmoid(h @ W + c), rtol=1e-12)
    np.testing.assert_allclose(ae(x).numpy(), np_sigmoid(h @ W + c), rtol=1e-12)  # p = 0


def test_loss_is_the_tutorials_cross_entropy_or_squared_error():
    ae, W, b, c = make_ae()
    x = data()
    z = np_sigmoid(np_sigmoid(x @ W.T + b) @ W + c)
    assert ae.loss(x).item() == pytest.approx(np_cross_entropy(z, x), rel=1e-12)
    ref = np.mean(np.sum((z - x) ** 2, axis=1))
    assert ae.loss(x, kind="mse").item() == pytest.approx(ref, rel=1e-12)


def test_tied_gradient_is_the_sum_of_both_uses():
    """The same loss with an untied copy (encoder W, decoder V = W^T as separate tensors): the
    tied weight's gradient must be dL/dW + (dL/dV)^T."""
    ae, W, b, c = make_ae()
    x = data()
    ae.loss(x).backward()
    enc, dec = tg.Tensor(W, requires_grad=True), tg.Tensor(W.T.copy(), requires_grad=True)
    bias, dbias = tg.Tensor(b, requires_grad=True), tg.Tensor(c, requires_grad=True)
    h = (tg.Tensor(x) @ enc.T + bias).sigmoid()
    logits = h @ dec.T + dbias  # decoder as a Linear with weight V (n_visible, n_hidden)
    tg.nn.functional.binary_cross_entropy_with_logits(logits, tg.Tensor(x), reduction="sum") \
        .div(len(x)).backward()
    np.testing.assert_allclose(ae.weight.grad.numpy(), enc.grad.numpy() + dec.grad.numpy().T,
                               rtol=1e-12)
    assert np.abs(enc.grad.numpy()).max() > 1e-3 and np.abs(dec.grad.numpy()).max() > 1e-3
    np.testing.assert_allclose(ae.bias.grad.numpy(), bias.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ae.decoder_bias.grad.numpy(), dbias.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("kind", ["cross_entropy", "mse"])
def test_gradcheck_tied_loss(kind):
    ae, *_ = make_ae(5, 3, seed=2, corruption=0.3)
    x = data((4, 5), seed=2)

    def loss(w, b, c):
        tg.manual_seed(5)  # the same corruption mask at every evaluation
        return ae.loss(x, kind=kind)
    assert tg.gradcheck(loss, [ae.weight, ae.bias, ae.decoder_bias])


def test_masking_noise():
    tg.manual_seed(0)
    ae = TiedAutoencoder(50, 10, corruption=0.3)
    x = np.random.default_rng(0).uniform(0.5, 1.0, (400, 50)).astype(np.float32)
    tg.manual_seed(1)
    xc = ae.corrupt(x).numpy()
    zeroed = xc == 0
    assert zeroed.mean() == pytest.approx(0.3, abs=0.01)
    np.testing.assert_array_equal(xc[~zeroed], x[~zeroed])  # kept as they are: no rescaling
    tg.manual_seed(1)
    np.testing.assert_array_equal(ae.corrupt(x).numpy(), xc)  # from the engine's generator
    tg.manual_seed(1)  # forward uses the same mask
    np.testing.assert_allclose(ae(x).numpy(), ae.decode(ae.encode(xc)).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(ae.encode(x).numpy(), ae.eval().encode(x).numpy())
    ae.eval()  # evaluation mode: no corruption at all
    np.testing.assert_array_equal(ae.corrupt(x).numpy(), x)
    assert ae.loss(x).item() == ae.loss(x).item()


def test_denoising_autoencoder_learns():
    rng = np.random.default_rng(0)
    protos = (rng.random((4, 20)) < 0.5).astype(np.float32)
    X = protos[rng.integers(0, 4, 400)]
    tg.manual_seed(0)
    ae = TiedAutoencoder(20, 8, corruption=0.2)
    opt = tg.optim.SGD(ae.parameters(), lr=0.1)
    ae.eval()
    before = ae.loss(X).item()
    ae.train()
    for _ in range(5):
        for i in range(0, 400, 20):
            loss = ae.loss(X[i:i + 20])
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert ae.eval().loss(X).item() < 0.5 * before


# ---- deep autoencoders -----------------------------------------------------------------------
def test_deep_autoencoder_layers_and_formula():
    tg.manual_seed(0)
    m = DeepAutoencoder((8, 6, 3), dtype=np.float64)
    assert [(n, p.shape) for n, p in m.named_parameters()] == [
        ("encoder.0.weight", (6, 8)), ("encoder.0.bias", (6,)), ("encoder.1.weight", (3, 6)),
        ("encoder.1.bias", (3,)), ("decoder.0.weight", (6, 3)), ("decoder.0.bias", (6,)),
        ("decoder.1.weight", (8, 6)), ("decoder.1.bias", (8,))]
    x = data((4, 8))
    (W1, b1), (W2, b2), (V1, c1), (V2, c2) = [(m_.weight.numpy(), m_.bias.numpy())
                                              for m_ in m.encoder + m.decoder]
    code = np_sigmoid(x @ W1.T + b1) @ W2.T + b2  # a linear code
    np.testing.assert_allclose(m.encode(x).numpy(), code, rtol=1e-12)
    z = np_sigmoid(np_sigmoid(code @ V1.T + c1) @ V2.T + c2)
    np.testing.assert_allclose(m(x).numpy(), z, rtol=1e-12)
    assert m.loss(x).item() == pytest.approx(np_cross_entropy(z, x), rel=1e-12)


def test_tied_deep_autoencoder_shares_weights():
    tg.manual_seed(0)
    m = DeepAutoencoder((8, 6, 3), tied=True, activation="tanh", dtype=np.float64)
    assert [n for n, _ in m.named_parameters()] == [
        "encoder.0.weight", "encoder.0.bias", "encoder.1.weight", "encoder.1.bias",
        "decoder_biases.0", "decoder_biases.1"]
    x = data((4, 8))
    W1, W2 = m.encoder[0].weight.numpy(), m.encoder[1].weight.numpy()
    code = m.encode(x).numpy()
    z = np_sigmoid(np.tanh(code @ W2) @ W1)  # decoder biases start at 0
    np.testing.assert_allclose(m(x).numpy(), z, rtol=1e-12)
    assert tg.gradcheck(lambda *ps: m.loss(x, kind="mse"), m.parameters())


def test_from_pretrained_unrolls_rbms_and_autoencoders():
    tg.manual_seed(0)
    rbm, ae = RBM(8, 6), TiedAutoencoder(6, 3)
    with tg.no_grad():
        rbm.b_visible.copy_(np.arange(8.0))
        ae.decoder_bias.copy_(-np.arange(6.0))
    m = DeepAutoencoder.from_pretrained([rbm, ae])
    assert m.sizes == (8, 6, 3) and not m.tied
    np.testing.assert_array_equal(m.encoder[0].weight.numpy(), rbm.W.numpy().T)
    np.testing.assert_array_equal(m.encoder[1].weight.numpy(), ae.weight.numpy())
    np.testing.assert_array_equal(m.decoder[0].weight.numpy(), ae.weight.numpy().T)
    np.testing.assert_array_equal(m.decoder[1].weight.numpy(), rbm.W.numpy())
    np.testing.assert_array_equal(m.decoder[0].bias.numpy(), -np.arange(6.0))
    np.testing.assert_array_equal(m.decoder[1].bias.numpy(), np.arange(8.0))
    with tg.no_grad():  # copies: fine-tuning the deep model leaves the layers alone
        m.encoder[0].weight.fill_(0.0)
    assert np.abs(rbm.W.numpy()).max() > 0
    with pytest.raises(ValueError, match="layer 1 takes 6 inputs but layer 0 has 5"):
        DeepAutoencoder.from_pretrained([RBM(8, 5), ae])
    with pytest.raises(TypeError, match="RBM or TiedAutoencoder"):
        DeepAutoencoder.from_pretrained([tg.nn.Linear(8, 6)])


# ---- bad input -------------------------------------------------------------------------------
X = data((4, 6), dtype=np.float32)


@pytest.mark.parametrize("call, match", [
    (lambda m: m.loss(X * 3 - 1), r"input must be probabilities or binary values in \[0, 1\]"),
    (lambda m: m.loss(X[:, :5]), r"shape \(N, 6\).*\(4, 5\)"),
    (lambda m: m(X[:, :5]), r"shape \(N, 6\)"),
    (lambda m: m.loss(X, kind="l1"), "kind must be 'cross_entropy' or 'mse'"),
    (lambda m: m.decode(X), r"code of shape \(N, 4\)"),
    (lambda m: m.encode(tg.Tensor(X, dtype=np.float64)), "float64, the model float32"),
])
def test_bad_input_raises_and_changes_nothing(call, match):
    tg.manual_seed(0)
    ae = TiedAutoencoder(6, 4, corruption=0.5)
    params = [p.numpy().copy() for p in ae.parameters()]
    rng, data_before = repr(tg.get_rng_state()), X.copy()
    with pytest.raises((ValueError, TypeError), match=match):
        call(ae)
    for p, old in zip(ae.parameters(), params):
        np.testing.assert_array_equal(p.numpy(), old)
        assert p.grad is None
    assert repr(tg.get_rng_state()) == rng  # no corruption mask was drawn
    np.testing.assert_array_equal(X, data_before)


def test_squared_error_accepts_any_real_input_and_bad_settings_are_refused():
    tg.manual_seed(0)
    ae = TiedAutoencoder(6, 4, output_activation="linear")
    assert np.isfinite(ae.loss(X * 3 - 1, kind="mse").item())
    with pytest.raises(ValueError, match="cross-entropy needs a sigmoid output"):
        ae.loss(X)
    with pytest.raises(ValueError, match=r"corruption must be a probability in \[0, 1\)"):
        TiedAutoencoder(6, 4, corruption=1.0)
    with pytest.raises(ValueError, match="activation must be one of"):
        TiedAutoencoder(6, 4, activation="softmax")
    with pytest.raises(ValueError, match="sizes must be a sequence of at least 2"):
        DeepAutoencoder((784,))
    with pytest.raises(ValueError, match=r"sizes\[1\] must be an integer >= 1"):
        DeepAutoencoder((784, 0))
