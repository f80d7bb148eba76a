"""Greedy layer-wise pre-training (tinygrad_edu/pretraining.py) on a tiny problem: the layers'
shapes, that pre-training lowers each layer's reconstruction error, the codes, the MLP built
from the layers (and that it trains with fit), reproducibility, and bad arguments that change
nothing."""
import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu.nn.autoencoder import TiedAutoencoder
from tinygrad_edu.nn.rbm import RBM
from tinygrad_edu.pretraining import (codes, mlp_from_pretrained, pretrain_autoencoders,
                                      pretrain_rbms)


def toy(n=300, d=16, classes=3, seed=0):
    """Noisy binary copies of one prototype per class."""
    rng = np.random.default_rng(seed)
    protos = (rng.random((classes, d)) < 0.5).astype(np.float32)
    y = rng.integers(0, classes, n)
    flip = rng.random((n, d)) < 0.05
    return np.abs(protos[y] - flip).astype(np.float32), y


X, Y = toy()
SIZES = (16, 10, 6)


def sigmoid(a):
    return np.exp(-np.logaddexp(0.0, -a))


def ae_error(layer, inputs):
    layer.eval()
    return layer.loss(inputs).item()


def test_pretrain_autoencoders_shapes_and_lower_errors():
    records = []
    layers = pretrain_autoencoders(SIZES, X, corruption=(0.1, 0.2), epochs=4, lr=0.1,
                                   batch_size=20, log=records.append)
    assert [type(m) for m in layers] == [TiedAutoencoder] * 2
    assert [m.weight.shape for m in layers] == [(10, 16), (6, 10)]
    assert [m.corruption for m in layers] == [0.1, 0.2]
    assert [(r["layer"], r["epoch"]) for r in records] == [(i, e) for i in (0, 1)
                                                           for e in range(1, 5)]
    assert records[0]["monitor"] == "cross_entropy" and records[-1]["cost"] < records[0]["cost"]
    fresh = pretrain_autoencoders(SIZES, X, corruption=(0.1, 0.2), epochs=0)  # same seed: the
    inputs = tg.from_numpy(X)                                             # initial weights
    for trained, untrained in zip(layers, fresh):
        assert ae_error(trained, inputs) < 0.8 * ae_error(untrained, inputs)
        inputs = codes([trained], inputs)  # the next layer's training data


def test_pretrain_rbms_shapes_and_lower_errors():
    records = []
    layers = pretrain_rbms(SIZES, X, k=1, epochs=4, lr=0.1, batch_size=20, log=records.append)
    assert [(type(m), m.W.shape) for m in layers] == [(RBM, (16, 10)), (RBM, (10, 6))]
    assert len(records) == 8 and records[0]["monitor"] == "reconstruction"
    assert all(m.chains is None for m in layers)
    fresh = pretrain_rbms(SIZES, X, epochs=0)
    inputs = tg.from_numpy(X)
    for trained, untrained in zip(layers, fresh):
        assert (trained.reconstruction_cross_entropy(inputs)
                < 0.8 * untrained.reconstruction_cross_entropy(inputs))
        inputs = codes([trained], inputs)


def test_pcd_and_pseudo_likelihood_monitor():
    records = []
    layers = pretrain_rbms((16, 8), X, k=3, persistent=True, epochs=3, monitor="pseudo_likelihood",
                           log=records.append)
    assert [r["monitor"] for r in records] == ["pseudo_likelihood"] * 3
    assert all(r["cost"] < 0 for r in records) and records[-1]["cost"] > records[0]["cost"]
    assert layers[0].chains is None
    quiet = []
    pretrain_rbms((16, 8), X, epochs=1, monitor=None, log=quiet.append)
    assert np.isnan(quiet[0]["cost"])


def test_same_seed_same_layers():
    def weights(seed, fn):
        return [p.numpy() for m in fn(SIZES, X, epochs=2, seed=seed) for p in m.parameters()]
    for fn in (pretrain_rbms, lambda *a, **k: pretrain_autoencoders(*a, corruption=0.3, **k)):
        a, b, c = weights(1, fn), weights(1, fn), weights(2, fn)
        for wa, wb in zip(a, b):
            np.testing.assert_array_equal(wa, wb)
        assert not all(np.array_equal(wa, wc) for wa, wc in zip(a, c))


@pytest.mark.parametrize("fn", ["autoencoders", "rbms"])
def test_compiled_pretraining_gives_the_same_layers_bit_for_bit(fn):
    def weights(compile):
        train = (lambda *a, **k: pretrain_autoencoders(*a, corruption=0.3, **k)) \
            if fn == "autoencoders" else lambda *a, **k: pretrain_rbms(*a, persistent=True, **k)
        costs = []
        layers = train(SIZES, X, epochs=2, batch_size=32, seed=3, compile=compile,
                       log=lambda r: costs.append(r["cost"]))
        return [p.numpy() for m in layers for p in m.parameters()], costs
    (plain, plain_costs), (compiled, compiled_costs) = weights(False), weights(True)
    assert plain_costs == compiled_costs
    for a, b in zip(plain, compiled):
        assert a.tobytes() == b.tobytes()


def test_codes_compose_the_layers():
    tg.manual_seed(0)
    rbm, ae = RBM(16, 10), TiedAutoencoder(10, 6, corruption=0.5)  # (never corrupted here)
    h = sigmoid(X @ rbm.W.numpy() + rbm.b_hidden.numpy())
    ref = sigmoid(h @ ae.weight.numpy().T + ae.bias.numpy())
    out = codes([rbm, ae], X, batch_size=7)
    assert out.shape == (300, 6) and not out.requires_grad
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-6)


def test_mlp_from_pretrained_copies_weights_and_trains():
    layers = pretrain_rbms(SIZES, X, epochs=2)
    model = mlp_from_pretrained(layers, n_classes=3)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Linear", "Sigmoid", "Linear", "Sigmoid", "Linear"]
    np.testing.assert_array_equal(model[0].weight.numpy(), layers[0].W.numpy().T)  # (out, in)
    np.testing.assert_array_equal(model[0].bias.numpy(), layers[0].b_hidden.numpy())
    np.testing.assert_array_equal(model[2].weight.numpy(), layers[1].W.numpy().T)
    assert model[4].weight.shape == (3, 6) and not model[4].weight.numpy().any()
    saved = [p.numpy().copy() for m in layers for p in m.parameters()]
    history = tg.training.fit(model, tg.optim.SGD(model.parameters(), lr=0.5), (X, Y),
                              epochs=15, batch_size=20, progress=False, verbose=False)
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    assert tg.training.accuracy(model, X, Y) > 0.9
    for p, old in zip([p for m in layers for p in m.parameters()], saved):
        np.testing.assert_array_equal(p.numpy(), old)  # fine-tuning changed copies only


def test_mlp_from_autoencoders_uses_their_activation():
    tg.manual_seed(0)
    layers = [TiedAutoencoder(16, 10, activation="tanh"), TiedAutoencoder(10, 6)]
    model = mlp_from_pretrained(layers, 4)
    assert [type(m).__name__ for m in model] == ["Linear", "Tanh", "Linear", "Sigmoid", "Linear"]
    x = tg.from_numpy(X)
    np.testing.assert_allclose(model[:4](x).numpy(), codes(layers, x).numpy(), rtol=1e-6)


# ---- bad arguments ---------------------------------------------------------------------------
@pytest.mark.parametrize("call, match", [
    (lambda: pretrain_rbms((16,), X), "at least 2 layer sizes"),
    (lambda: pretrain_rbms((15, 8), X), r"X \(the training inputs\) of shape \(N, 15\)"),
    (lambda: pretrain_rbms(SIZES, X * 2), r"in \[0, 1\]"),
    (lambda: pretrain_rbms(SIZES, X, k=0), "k must be an integer >= 1"),
    (lambda: pretrain_rbms(SIZES, X, lr=0), "lr must be a positive number"),
    (lambda: pretrain_rbms(SIZES, X, epochs=-1), "epochs must be an integer >= 0"),
    (lambda: pretrain_rbms(SIZES, X, batch_size=0), "batch_size must be an integer >= 1"),
    (lambda: pretrain_rbms(SIZES, X, monitor="energy"), "monitor must be"),
    (lambda: pretrain_rbms(SIZES, X, log="print"), "log must be callable"),
    (lambda: pretrain_autoencoders(SIZES, X, corruption=(0.1,)), "one value per layer"),
    (lambda: pretrain_autoencoders(SIZES, X, corruption=1.5), r"probability in \[0, 1\)"),
    (lambda: pretrain_autoencoders(SIZES, X - 1), r"in \[0, 1\]"),
    (lambda: pretrain_autoencoders(SIZES, X, loss="hinge"), "loss must be"),
    (lambda: codes([], X), "non-empty list"),
])
def test_bad_arguments_raise_before_anything_changes(call, match):
    tg.manual_seed(123)
    rng, data = repr(tg.get_rng_state()), X.copy()
    with pytest.raises((ValueError, TypeError), match=match):
        call()
    assert repr(tg.get_rng_state()) == rng  # not reseeded, nothing drawn
    np.testing.assert_array_equal(X, data)


def test_mlp_from_pretrained_bad_layers():
    tg.manual_seed(0)
    a, b = RBM(16, 10), RBM(8, 6)
    saved = [p.numpy().copy() for m in (a, b) for p in m.parameters()]
    with pytest.raises(ValueError, match="layer 1 takes 8 inputs but layer 0 has 10 hidden"):
        mlp_from_pretrained([a, b], 3)
    with pytest.raises(ValueError, match="n_classes must be an integer >= 1, got 0"):
        mlp_from_pretrained([a], 0)
    with pytest.raises(TypeError, match="RBM or TiedAutoencoder"):
        mlp_from_pretrained([a, tg.nn.Sigmoid()], 3)
    for p, old in zip([p for m in (a, b) for p in m.parameters()], saved):
        np.testing.assert_array_equal(p.numpy(), old)
