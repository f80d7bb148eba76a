"""Layers: forward values against NumPy references, modes, buffers, input and argument checks."""
import math

import numpy as np
import pytest

import refs
import tinygrad_edu as tg
from tinygrad_edu import nn

RNG = np.random.default_rng(0)


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def close(got, want, tol=1e-5):
    np.testing.assert_allclose(got.numpy(), want, rtol=tol, atol=tol)


# ---- forward values ------------------------------------------------------------------------
def test_linear_forward_backward_and_default_init():
    tg.manual_seed(0)
    layer = nn.Linear(5, 3)
    bound = math.sqrt(6 / (5 + 3))  # Glorot uniform, gain 1
    assert layer.weight.shape == (3, 5) and layer.bias.shape == (3,)
    assert np.abs(layer.weight.data).max() <= bound and (layer.bias.data == 0).all()
    layer.bias.data[...] = randn(3)
    x = randn(4, 5)
    y = layer(tg.Tensor(x))
    close(y, x @ layer.weight.data.T + layer.bias.data)
    y.sum().backward()
    close(layer.weight.grad, np.ones((4, 3)).T @ x)
    close(layer.bias.grad, np.full(3, 4.0))
    assert layer(tg.Tensor(randn(2, 6, 5))).shape == (2, 6, 3)  # any leading dimensions
    assert nn.Linear(5, 3, bias=False).bias is None


def test_default_init_is_reproducible_with_manual_seed():
    tg.manual_seed(3)
    a = nn.Conv2d(2, 4, 3)
    tg.manual_seed(3)
    b = nn.Conv2d(2, 4, 3)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert np.abs(a.weight.data).max() <= math.sqrt(6 / (2 * 9 + 4 * 9))  # receptive field


@pytest.mark.parametrize("stride, padding, bias", [(1, 0, True), (2, 1, False), (1, 2, True)])
def test_conv2d_matches_reference(stride, padding, bias):
    layer = nn.Conv2d(3, 4, 3, stride=stride, padding=padding, bias=bias)
    if bias:
        layer.bias.data[...] = randn(4)
    x = randn(2, 3, 7, 6)
    want = refs.conv2d(x, layer.weight.data, layer.bias.data if bias else None, stride, padding)
    close(layer(tg.Tensor(x)), want, 1e-4)
    assert nn.Conv2d(1, 2, (3, 5)).weight.shape == (2, 1, 3, 5)


@pytest.mark.parametrize("k, s, p, ceil", [(2, None, 0, False), (3, 2, 1, False), (2, 2, 0, True),
                                           (3, 2, 1, True)])
def test_max_pool2d_matches_reference(k, s, p, ceil):
    x = randn(2, 3, 7, 5)
    close(nn.MaxPool2d(k, s, p, ceil)(tg.Tensor(x)), refs.pool2d(x, k, s or k, p, ceil, "max"))


@pytest.mark.parametrize("k, s, p, ceil, include", [(2, None, 0, False, True), (3, 2, 1, False, True),
                                                    (3, 2, 1, False, False), (2, 2, 0, True, True)])
def test_avg_pool2d_matches_reference(k, s, p, ceil, include):
    x = randn(2, 3, 7, 5)
    layer = nn.AvgPool2d(k, s, p, ceil, count_include_pad=include)
    close(layer(tg.Tensor(x)), refs.pool2d(x, k, s or k, p, ceil, "avg", include))


def test_activations_softmax_and_flatten():
    x = randn(3, 4, 2, 2)
    close(nn.ReLU()(tg.Tensor(x)), np.maximum(x, 0))
    close(nn.Sigmoid()(tg.Tensor(x)), 1 / (1 + np.exp(-x)))
    close(nn.Tanh()(tg.Tensor(x)), np.tanh(x))
    e = np.exp(x - x.max(axis=1, keepdims=True))
    close(nn.Softmax(dim=1)(tg.Tensor(x)), e / e.sum(axis=1, keepdims=True))
    close(nn.LogSoftmax(1)(tg.Tensor(x)), np.log(e / e.sum(axis=1, keepdims=True)))
    close(nn.Flatten()(tg.Tensor(x)), x.reshape(3, 16))
    assert nn.Flatten(0, 1)(tg.Tensor(x)).shape == (12, 2, 2)
    assert nn.Flatten(-2)(tg.Tensor(x)).shape == (3, 4, 4)


def test_dropout_in_training_and_identity_in_eval():
    tg.manual_seed(0)
    layer = nn.Dropout(0.25)
    x = tg.ones(200, 100)
    y = layer(x).numpy()
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.02
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())
    assert nn.Dropout(0.0)(x).numpy().min() == 1.0


# ---- batch normalization --------------------------------------------------------------------------
def bn_ref(x, axes, eps=1e-5):
    mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


@pytest.mark.parametrize("cls, shape, axes", [(nn.BatchNorm1d, (8, 3), (0,)),
                                              (nn.BatchNorm2d, (4, 3, 5, 2), (0, 2, 3))])
def test_batch_norm_training_eval_and_running_statistics(cls, shape, axes):
    layer = cls(3, momentum=0.2)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in layer.named_buffers()] == ["running_mean", "running_var",
                                                      "num_batches_tracked"]
    assert (layer.weight.data == 1).all() and (layer.bias.data == 0).all()
    layer.weight.data[...], layer.bias.data[...] = [1.0, 2.0, 3.0], [0.0, -1.0, 0.5]
    x = 3 + 2 * randn(*shape)
    gamma = layer.weight.data.reshape((1, 3) + (1,) * (len(shape) - 2))
    beta = layer.bias.data.reshape(gamma.shape)
    close(layer(tg.Tensor(x)), bn_ref(x, axes) * gamma + beta, 1e-4)
    count = x.size // 3
    mean, var = x.mean(axis=axes), x.var(axis=axes) * count / (count - 1)  # unbiased
    close(layer.running_mean, 0.2 * mean, 1e-5)
    close(layer.running_var, 0.8 + 0.2 * var, 1e-4)
    assert layer.num_batches_tracked.item() == 1
    layer.eval()
    rm, rv = layer.running_mean.numpy().copy(), layer.running_var.numpy().copy()
    want = (x - rm.reshape(gamma.shape)) / np.sqrt(rv.reshape(gamma.shape) + 1e-5) * gamma + beta
    close(layer(tg.Tensor(x)), want, 1e-4)
    np.testing.assert_array_equal(layer.running_mean.numpy(), rm)  # eval changes nothing
    assert layer.num_batches_tracked.item() == 1


def test_batch_norm_variants():
    x1, x2 = randn(6, 2), randn(6, 2) + 4
    cumulative = nn.BatchNorm1d(2, momentum=None)  # running mean = plain average of batches
    cumulative(tg.Tensor(x1)), cumulative(tg.Tensor(x2))
    close(cumulative.running_mean, (x1.mean(0) + x2.mean(0)) / 2, 1e-5)
    plain = nn.BatchNorm1d(2, affine=False, track_running_stats=False)
    assert plain.parameters() == [] and plain.buffers() == []
    plain.eval()  # no running statistics: batch statistics even in evaluation
    close(plain(tg.Tensor(x1)), bn_ref(x1, (0,)), 1e-4)
    assert "BatchNorm1d(2, eps=1e-05, momentum=None, affine=True" in repr(cumulative)
    assert "affine=False, track_running_stats=False)" in repr(plain)


# ---- Sequential ------------------------------------------------------------------------------------
def test_sequential_container():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Sequential(nn.Linear(3, 2), nn.Tanh()))
    assert len(model) == 3 and isinstance(model[0], nn.Linear)
    assert isinstance(model[-1], nn.Sequential)
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Sequential"]
    names = ["0.weight", "0.bias", "2.0.weight", "2.0.bias"]
    assert [n for n, _ in model.named_parameters()] == names
    head = model[1:]
    assert isinstance(head, nn.Sequential) and head[1] is model[2]
    x = tg.Tensor(randn(5, 4))
    hidden = np.maximum(x.numpy() @ model[0].weight.data.T, 0)
    close(model(x), np.tanh(hidden @ model[2][0].weight.data.T))
    model.append(nn.Softmax())
    assert len(model) == 4 and list(model.state_dict())[-1] == "2.0.bias"
    named = nn.Sequential({"fc": nn.Linear(2, 2), "act": nn.ReLU()})
    assert [n for n, _ in named.named_children()] == ["fc", "act"] and named[0] is named.fc
    with pytest.raises(TypeError, match="element '1' is a function, not a Module"):
        nn.Sequential(nn.ReLU(), tg.relu)
    assert repr(nn.Sequential(nn.Linear(2, 1))) == (
        "Sequential(\n  (0): Linear(in_features=2, out_features=1, bias=True)\n)")


def test_train_eval_propagate_into_sequential():
    model = nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.Dropout(0.5), nn.BatchNorm1d(3)))
    model.eval()
    assert not model[1][0].training and not model[1][1].training
    x = tg.ones(4, 3)
    np.testing.assert_array_equal(model(x).numpy(), model(x).numpy())  # deterministic in eval
    model.train()
    assert model[1][1].training


# ---- checks --------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer, shape, match", [
    (nn.Linear(4, 2), (3, 5), r"Linear\(in_features=4, out_features=2, bias=True\): expected input "
                              r"of shape \(\*, 4\), got \(3, 5\)"),
    (nn.Conv2d(3, 8, 3), (2, 1, 8, 8), r"Conv2d\(3, 8.*expected input of shape \(N, 3, H, W\), got "
                                       r"\(2, 1, 8, 8\)"),
    (nn.Conv2d(3, 8, 3), (3, 8, 8), r"got \(3, 8, 8\)"),
    (nn.MaxPool2d(2), (3, 8), r"MaxPool2d\(kernel_size=2.*\(N, C, H, W\), got \(3, 8\)"),
    (nn.AvgPool2d(2), (1, 3, 8), r"AvgPool2d"),
    (nn.BatchNorm1d(4), (2, 3), r"BatchNorm1d\(4.*expected input of shape \(N, 4\), got \(2, 3\)"),
    (nn.BatchNorm1d(4), (2, 4, 5), r"got \(2, 4, 5\)"),
    (nn.BatchNorm2d(4), (2, 3, 5, 5), r"\(N, 4, H, W\), got \(2, 3, 5, 5\)"),
    (nn.Softmax(dim=2), (2, 3), r"Softmax\(dim=2\): dim=2 is out of range for input of shape"),
    (nn.Flatten(2), (4, 5), r"start_dim=2 is out of range"),
    (nn.Flatten(1, 0), (4, 5, 6), r"start_dim comes after end_dim"),
])
def test_layers_check_their_input(layer, shape, match):
    with pytest.raises(ValueError, match=match):
        layer(tg.zeros(*shape))


def test_layers_want_tensors():
    with pytest.raises(TypeError, match=r"ReLU\(\): expected a Tensor, got ndarray"):
        nn.ReLU()(np.zeros(3))


@pytest.mark.parametrize("make, match", [
    (lambda: nn.Linear(0, 3), "Linear: in_features must be an integer >= 1, got 0"),
    (lambda: nn.Linear(3, 2.5), "out_features"),
    (lambda: nn.Conv2d(1, 2, 0), "kernel_size"),
    (lambda: nn.Conv2d(1, 2, 3, stride=(1, 0)), "stride"),
    (lambda: nn.Conv2d(1, 2, 3, padding=-1), "padding must be an integer >= 0"),
    (lambda: nn.Conv2d(1, 2, (3, 3, 3)), "kernel_size must be an int or a pair"),
    (lambda: nn.MaxPool2d(0), "MaxPool2d: kernel_size"),
    (lambda: nn.AvgPool2d(2, stride=0), "AvgPool2d: stride"),
    (lambda: nn.Dropout(1.0), r"0 <= p < 1, got 1.0"),
    (lambda: nn.Dropout(-0.1), "Dropout: p"),
    (lambda: nn.BatchNorm2d(0), "BatchNorm2d: num_features"),
    (lambda: nn.BatchNorm1d(3, momentum=1.5), "momentum"),
    (lambda: nn.BatchNorm1d(3, eps=0), "eps"),
])
def test_constructor_arguments_are_checked(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_reprs():
    assert repr(nn.Conv2d(1, 32, 3, padding=1, bias=False)) == \
        "Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)"
    assert repr(nn.MaxPool2d(2, ceil_mode=True)) == \
        "MaxPool2d(kernel_size=2, stride=2, padding=0, ceil_mode=True)"
    assert repr(nn.Dropout(0.2)) == "Dropout(p=0.2)" and repr(nn.ReLU()) == "ReLU()"
    assert repr(nn.LogSoftmax(1)) == "LogSoftmax(dim=1)"
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"
