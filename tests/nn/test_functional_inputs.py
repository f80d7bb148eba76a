"""What nn.functional accepts, and the errors for what it does not.

* Array data where a Tensor is expected: every public function converts it (the rule in the
  module docstring) and gives the result the all-Tensor call gives; other types are a TypeError
  naming the function, the argument and the type. One table covers every function in __all__.
* Size arguments (kernel_size, stride, padding) of the conv and pooling functions and layers:
  a ValueError naming the argument for floats, bools, and values out of range.
* softmax / log_softmax of empty tensors return empty tensors.
* BatchNorm: an error (a batch of one, a wrong dtype) changes no running statistic and no
  ``num_batches_tracked``.
"""
import warnings

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import nn
from tinygrad_edu.nn import functional as F

RNG = np.random.default_rng(0)


def randn(*shape):
    return tg.Tensor(RNG.standard_normal(shape))


def uniform(*shape):
    return tg.Tensor(RNG.uniform(0.1, 0.9, shape))


def labels():
    return tg.Tensor(np.array([0, 3, 1]))


def seeded_dropout(x):
    tg.manual_seed(0)
    return F.dropout(x, 0.5)


# name -> (the call, with the tensor arguments as positional parameters; argument names; makers)
TABLE = {
    "linear": (F.linear, ("x", "weight", "bias"), lambda: [randn(2, 3), randn(4, 3), randn(4)]),
    "embedding": (F.embedding, ("input", "weight"),
                  lambda: [tg.Tensor(np.array([[0, 2], [1, 0]])), randn(3, 4)]),
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, padding=1), ("x", "weight", "bias"),
               lambda: [randn(1, 2, 4, 4), randn(3, 2, 3, 3), randn(3)]),
    "max_pool2d": (lambda x: F.max_pool2d(x, 2), ("x",), lambda: [randn(1, 2, 4, 4)]),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 2, 1), ("x",), lambda: [randn(1, 2, 4, 4)]),
    "adaptive_avg_pool2d": (lambda x: F.adaptive_avg_pool2d(x, (3, 2)), ("x",),
                            lambda: [randn(1, 2, 5, 4)]),
    "adaptive_max_pool2d": (lambda x: F.adaptive_max_pool2d(x, (3, 2)), ("x",),
                            lambda: [randn(1, 2, 5, 4)]),
    "dropout": (seeded_dropout, ("x",), lambda: [randn(3, 4)]),
    "batch_norm": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                   ("x", "weight", "bias"), lambda: [randn(4, 3), randn(3), randn(3)]),
    "relu": (F.relu, ("x",), lambda: [randn(3, 4)]),
    "sigmoid": (F.sigmoid, ("x",), lambda: [randn(3, 4)]),
    "tanh": (F.tanh, ("x",), lambda: [randn(3, 4)]),
    "flatten": (lambda x: F.flatten(x, 1), ("x",), lambda: [randn(2, 3, 4)]),
    "softmax": (lambda x: F.softmax(x, 1), ("x",), lambda: [randn(3, 4)]),
    "log_softmax": (lambda x: F.log_softmax(x, 1), ("x",), lambda: [randn(3, 4)]),
    "cross_entropy": (F.cross_entropy, ("logits", "labels"), lambda: [randn(3, 4), labels()]),
    "nll_loss": (F.nll_loss, ("log_probs", "labels"), lambda: [randn(3, 4), labels()]),
    "mse_loss": (F.mse_loss, ("input", "target"), lambda: [randn(3, 4), randn(3, 4)]),
    "l1_loss": (F.l1_loss, ("input", "target"), lambda: [randn(3, 4), randn(3, 4)]),
    "binary_cross_entropy": (F.binary_cross_entropy, ("probs", "target"),
                             lambda: [uniform(3, 4), uniform(3, 4)]),
    "binary_cross_entropy_with_logits": (F.binary_cross_entropy_with_logits, ("logits", "target"),
                                         lambda: [randn(3, 4), uniform(3, 4)]),
}
ARGS = [(name, i) for name, (_, names, _) in TABLE.items() for i in range(len(names))]


def test_the_table_covers_every_public_function():
    assert sorted(TABLE) == sorted(F.__all__)


@pytest.mark.parametrize("name, i", ARGS, ids=[f"{n}-{TABLE[n][1][i]}" for n, i in ARGS])
def test_an_array_argument_is_converted(name, i):
    fn, _, make = TABLE[name]
    tensors = make()
    want = fn(*tensors).numpy()
    array = tensors[i].numpy().copy()
    before = array.copy()
    args = tensors[:i] + [array] + tensors[i + 1:]
    got = fn(*args)
    assert isinstance(got, tg.Tensor)
    np.testing.assert_array_equal(got.numpy(), want)
    np.testing.assert_array_equal(array, before)  # the caller's array is left alone
    if name in ("dropout", "flatten"):  # views of their input: still not the caller's memory
        assert not np.shares_memory(got.numpy(), array)


@pytest.mark.parametrize("name, i", ARGS, ids=[f"{n}-{TABLE[n][1][i]}" for n, i in ARGS])
@pytest.mark.parametrize("bad", ["abc", object(), {"a": 1}])
def test_a_non_array_argument_is_a_type_error_naming_it(name, i, bad):
    fn, names, make = TABLE[name]
    tensors = make()
    args = tensors[:i] + [bad] + tensors[i + 1:]
    with pytest.raises(TypeError, match=rf"^{name}: {names[i]} must be a Tensor or array data, "
                       rf"got {type(bad).__name__}$"):
        fn(*args)


def test_lists_and_numbers_are_data_too():
    np.testing.assert_array_equal(F.relu([-1.0, 2.0]).numpy(), [0.0, 2.0])
    assert F.sigmoid(0.0).item() == 0.5
    z = tg.Tensor(np.array([[1.0, 2.0], [3.0, 0.0]]), requires_grad=True)
    F.cross_entropy(z, [1, 0]).backward()  # labels as a list, as before
    assert z.grad.shape == (2, 2)
    with pytest.raises(TypeError, match=r"mse_loss: target \(list\) is not array data"):
        F.mse_loss(tg.zeros(2), [[1.0], [2.0, 3.0]])  # ragged


def test_batch_norm_running_statistics_must_be_tensors():
    """They are updated in place: a converted copy would silently lose the update."""
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    x = randn(4, 3).float()
    for args, name in (((rm, tg.Tensor(rv)), "running_mean"), ((tg.Tensor(rm), rv), "running_var")):
        with pytest.raises(TypeError, match=rf"batch_norm: {name} must be a Tensor \(it is "
                           r"updated in place\), got ndarray"):
            F.batch_norm(x, *args, training=True)
    np.testing.assert_array_equal(rm, 0.0)
    np.testing.assert_array_equal(rv, 1.0)


# ---- size arguments ------------------------------------------------------------------------------
X = tg.zeros(1, 1, 5, 5)
W = tg.zeros(1, 1, 3, 3)


@pytest.mark.parametrize("call, match", [
    (lambda: F.conv2d(X, W, stride=1.5), r"conv2d: stride must be an int >= 1 or a pair of them, "
                                         r"got 1\.5"),
    (lambda: F.conv2d(X, W, stride=0), r"conv2d: stride must be an int >= 1 .*got 0"),
    (lambda: F.conv2d(X, W, stride=True), r"conv2d: stride .*got True"),
    (lambda: F.conv2d(X, W, stride=(1, 2.5)), r"conv2d: stride .*got \(1, 2\.5\)"),
    (lambda: F.conv2d(X, W, stride=(1, 1, 1)), r"conv2d: stride .*got \(1, 1, 1\)"),
    (lambda: F.conv2d(X, W, padding=-1), r"conv2d: padding must be an int >= 0 .*got -1"),
    (lambda: F.conv2d(X, W, padding=1.0), r"conv2d: padding .*got 1\.0"),
    (lambda: F.conv2d(X, W, padding="1"), r"conv2d: padding .*got '1'"),
    (lambda: F.conv2d(X, tg.zeros(1, 1, 0, 3)), r"conv2d: .*kh, kw >= 1"),
    (lambda: F.max_pool2d(X, kernel_size=-1), r"max_pool2d: kernel_size must be an int >= 1 .*-1"),
    (lambda: F.max_pool2d(X, 0), r"max_pool2d: kernel_size .*got 0"),
    (lambda: F.max_pool2d(X, 2.0), r"max_pool2d: kernel_size .*got 2\.0"),
    (lambda: F.max_pool2d(X, True), r"max_pool2d: kernel_size .*got True"),
    (lambda: F.max_pool2d(X, 2, stride=0), r"max_pool2d: stride must be an int >= 1 .*got 0"),
    (lambda: F.max_pool2d(X, 2, stride=1.5), r"max_pool2d: stride .*got 1\.5"),
    (lambda: F.max_pool2d(X, 2, padding=-1), r"max_pool2d: padding must be an int >= 0 .*-1"),
    (lambda: F.max_pool2d(X, 2, padding=False), r"max_pool2d: padding .*got False"),
    (lambda: F.avg_pool2d(X, -2), r"avg_pool2d: kernel_size must be an int >= 1 .*got -2"),
    (lambda: F.avg_pool2d(X, (2, 1.5)), r"avg_pool2d: kernel_size .*got \(2, 1\.5\)"),
    (lambda: F.avg_pool2d(X, 2, stride=-1), r"avg_pool2d: stride .*got -1"),
    (lambda: F.avg_pool2d(X, 2, padding=0.5), r"avg_pool2d: padding .*got 0\.5"),
    (lambda: nn.Conv2d(1, 1, kernel_size=1.5), r"Conv2d: kernel_size must be an integer >= 1, "
                                               r"got 1\.5"),
    (lambda: nn.Conv2d(1, 1, (3, 0)), r"Conv2d: kernel_size .*got 0"),
    (lambda: nn.Conv2d(1, 1, 3, stride=True), r"Conv2d: stride .*got True"),
    (lambda: nn.Conv2d(1, 1, 3, stride=0.5), r"Conv2d: stride .*got 0\.5"),
    (lambda: nn.Conv2d(1, 1, 3, padding=-1), r"Conv2d: padding must be an integer >= 0, got -1"),
    (lambda: nn.MaxPool2d(-1), r"MaxPool2d: kernel_size must be an integer >= 1, got -1"),
    (lambda: nn.MaxPool2d(2, stride=1.5), r"MaxPool2d: stride .*got 1\.5"),
    (lambda: nn.MaxPool2d(2, padding=-1), r"MaxPool2d: padding .*got -1"),
    (lambda: nn.AvgPool2d(True), r"AvgPool2d: kernel_size .*got True"),
    (lambda: nn.AvgPool2d(2, stride=0), r"AvgPool2d: stride .*got 0"),
    (lambda: nn.AvgPool2d(2, padding=1.0), r"AvgPool2d: padding .*got 1\.0"),
])
def test_bad_size_arguments_are_value_errors_naming_them(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_good_size_arguments_in_every_spelling():
    x = tg.Tensor(RNG.standard_normal((1, 1, 5, 5)))
    w = tg.Tensor(RNG.standard_normal((1, 1, 3, 3)))
    want = F.conv2d(x, w, stride=2, padding=1).numpy()
    for stride, padding in [((2, 2), (1, 1)), ([2, 2], [1, 1]), (np.int64(2), np.int32(1))]:
        np.testing.assert_array_equal(F.conv2d(x, w, stride=stride, padding=padding).numpy(), want)
    assert F.max_pool2d(x, np.int64(2), stride=(1, 2)).shape == (1, 1, 4, 2)


# ---- softmax of empty tensors --------------------------------------------------------------------
@pytest.mark.parametrize("shape, dim", [((0, 5), 1), ((0, 5), -1), ((0, 5), 0), ((3, 0), 1),
                                        ((2, 0, 3), 2), ((0,), 0)])
@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax], ids=["softmax", "log_softmax"])
def test_softmax_of_an_empty_tensor_is_empty(fn, shape, dim):
    x = tg.Tensor(np.zeros(shape), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no log(0) or 0/0 on the way
        y = fn(x, dim)
        y.sum().backward()
    assert y.shape == shape and y.dtype == np.float64
    assert x.grad.shape == shape


def test_softmax_refuses_a_bad_dim():
    with pytest.raises(ValueError, match="softmax: axis 2 is out of range"):
        F.softmax(tg.zeros(2, 3), 2)
    with pytest.raises(TypeError, match="log_softmax: axis must be an int"):
        F.log_softmax(tg.zeros(2, 3), 1.0)


# ---- BatchNorm: a failed forward changes nothing -------------------------------------------------
def _state(layer):
    return {k: v.copy() for k, v in layer.state_dict().items()}


@pytest.mark.parametrize("cls, shape", [(nn.BatchNorm1d, (1, 3)), (nn.BatchNorm2d, (1, 3, 1, 1))])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_layer_on_a_batch_of_one_raises_and_changes_nothing(cls, shape, momentum):
    layer = cls(3, momentum=momentum)
    layer(tg.Tensor(RNG.standard_normal((4,) + shape[1:]).astype(np.float32)))  # one good batch
    before = _state(layer)
    assert before["num_batches_tracked"] == 1
    with pytest.raises(ValueError, match=r"more than one value per channel, input shape "
                       r"\(1, 3.*has 1"):
        layer(tg.zeros(*shape))
    after = _state(layer)
    assert after.keys() == before.keys()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


def test_batch_norm_layer_with_a_wrong_dtype_raises_and_changes_nothing():
    layer = nn.BatchNorm1d(3)
    before = _state(layer)
    with pytest.raises(TypeError, match="batch_norm: input dtype float64, weight dtype float32"):
        layer(tg.Tensor(RNG.standard_normal((4, 3))))
    for k, v in _state(layer).items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


def test_batch_norm_layer_counts_each_good_batch_once():
    layer = nn.BatchNorm1d(2, momentum=None)  # a plain average of the batch means
    batches = [RNG.standard_normal((5, 2)).astype(np.float32) for _ in range(3)]
    for b in batches:
        layer(tg.Tensor(b))
    assert layer.num_batches_tracked.item() == 3
    np.testing.assert_allclose(layer.running_mean.numpy(), np.mean([b.mean(0) for b in batches], 0),
                               rtol=1e-5, atol=1e-6)
