"""The loss modules (nn.CrossEntropyLoss, NLLLoss, MSELoss, L1Loss, BCELoss, BCEWithLogitsLoss)
and F.l1_loss: forward against NumPy references for every reduction, gradients by central
differences, PyTorch's names, defaults and export, and the error for a bad reduction.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_edu as tg
from tinygrad_edu import nn
from tinygrad_edu.nn import functional as F
from tinygrad_edu.testing import strategies as tst

REDUCTIONS = ["mean", "sum", "none"]


def param(array):
    return tg.Tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


def reduce_ref(losses, reduction):
    return {"mean": np.mean, "sum": np.sum, "none": lambda a: a}[reduction](losses)


def log_softmax_ref(z):
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def sigmoid_ref(z):
    return 1 / (1 + np.exp(-z))


# ---- the cases: (module, (input, target) strategy, per-element NumPy reference) ---------------
def regression(elements_input=None, elements_target=None, domain="real"):
    def pair(shape):
        return st.tuples(tst.arrays(shape, elements=elements_input, domain=domain),
                         tst.arrays(shape, elements=elements_target, domain=domain))
    return tst.shapes(max_dims=3, max_side=3).flatmap(pair)


def l1_pair():
    """|x - t| has a kink where x = t: keep the two apart."""
    def apart(shape):
        return st.tuples(tst.arrays(shape), tst.arrays(shape, domain="nonzero")).map(
            lambda p: (p[0], p[0] + p[1]))
    return tst.shapes(max_dims=3, max_side=3).flatmap(apart)


def pick(z, labels):
    return z[np.arange(len(labels)), labels]


CASES = [
    (nn.CrossEntropyLoss, tst.classification(), lambda z, t: -pick(log_softmax_ref(z), t)),
    (nn.NLLLoss, tst.classification(), lambda z, t: -pick(z, t)),
    (nn.MSELoss, regression(), lambda x, t: (x - t) ** 2),
    (nn.L1Loss, l1_pair(), lambda x, t: np.abs(x - t)),
    (nn.BCELoss, regression(st.floats(0.05, 0.95), st.floats(0, 1)),
     lambda p, t: -(t * np.log(p) + (1 - t) * np.log(1 - p))),
    (nn.BCEWithLogitsLoss, regression(None, st.floats(0, 1), "bounded_exp"),
     lambda z, t: -(t * np.log(sigmoid_ref(z)) + (1 - t) * np.log(1 - sigmoid_ref(z)))),
]
IDS = [case[0].__name__ for case in CASES]


@pytest.mark.parametrize("cls, pairs, ref", CASES, ids=IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=10)
@given(data=st.data())
def test_loss_module_forward_and_gradients(cls, pairs, ref, reduction, data):
    x, t = data.draw(pairs)
    loss_fn = cls(reduction=reduction)
    integer_target = t.dtype.kind == "i"
    inp = param(x)
    target = tg.Tensor(t) if integer_target else param(t)
    got = loss_fn(inp, target)
    np.testing.assert_allclose(got.numpy(), reduce_ref(ref(x, t), reduction), rtol=1e-10,
                               atol=1e-12)
    assert got.shape == (() if reduction != "none" else np.shape(ref(x, t)))
    wrt = [inp] if integer_target else [inp, target]
    if integer_target:
        assert tg.gradcheck(lambda z: loss_fn(z, target), wrt)
    else:
        assert tg.gradcheck(lambda z, t: loss_fn(z, t), wrt)


@pytest.mark.parametrize("cls", [c[0] for c in CASES], ids=IDS)
def test_loss_module_defaults_names_and_export(cls):
    assert cls().reduction == "mean"
    assert repr(cls()) == f"{cls.__name__}()"
    assert repr(cls(reduction="sum")) == f"{cls.__name__}(reduction='sum')"
    assert cls.__name__ in nn.__all__ and getattr(nn, cls.__name__) is cls
    assert cls.__name__ in nn.__doc__
    assert cls().parameters() == []  # a loss has nothing to train


@pytest.mark.parametrize("cls", [c[0] for c in CASES], ids=IDS)
@pytest.mark.parametrize("bad", ["avg", "MEAN", None, 1])
def test_loss_module_refuses_an_unknown_reduction(cls, bad):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: reduction must be 'mean', 'sum' or "
                       rf"'none', got {bad!r}"):
        cls(reduction=bad)


@pytest.mark.parametrize("cls", [c[0] for c in CASES], ids=IDS)
def test_loss_module_arguments_are_keyword_only(cls):
    """PyTorch's first positional argument is weight or size_average, which are not supported:
    a positional one must not be taken silently as the reduction."""
    with pytest.raises(TypeError, match="positional argument"):
        cls("sum")


def test_loss_modules_agree_with_the_functions_and_train():
    rng = np.random.default_rng(0)
    z, labels = param(rng.standard_normal((4, 3))), tg.Tensor(np.array([0, 2, 1, 1]))
    np.testing.assert_array_equal(nn.CrossEntropyLoss()(z, labels).numpy(),
                                  F.cross_entropy(z, labels).numpy())
    np.testing.assert_allclose(nn.NLLLoss()(nn.LogSoftmax(1)(z), labels).numpy(),
                               nn.CrossEntropyLoss()(z, labels).numpy(), rtol=1e-14)
    nn.CrossEntropyLoss(reduction="sum")(z, labels).backward()
    onehot = np.eye(3)[labels.numpy()]
    np.testing.assert_allclose(z.grad.numpy(), np.exp(log_softmax_ref(z.numpy())) - onehot,
                               rtol=1e-12)


# ---- F.l1_loss ---------------------------------------------------------------------------------
def test_l1_loss_gradient_is_the_sign_and_zero_where_equal():
    x = param([1.0, -2.0, 3.0, 0.5])
    t = tg.Tensor(np.array([0.0, 0.0, 3.0, 1.0]))
    loss = F.l1_loss(x, t, reduction="sum")
    np.testing.assert_allclose(loss.item(), 1 + 2 + 0 + 0.5)
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, -1.0, 0.0, -1.0])


@pytest.mark.parametrize("call, error, match", [
    (lambda: F.l1_loss(tg.zeros(2, 3), tg.zeros(3)), ValueError,
     r"l1_loss: input shape \(2, 3\) != target shape \(3,\)"),
    (lambda: F.l1_loss(tg.zeros(2), tg.zeros(2), reduction="avg"), ValueError,
     r"l1_loss: reduction must be 'mean', 'sum' or 'none', got 'avg'"),
    (lambda: nn.MSELoss()(tg.zeros(2), tg.zeros(3)), ValueError,
     r"mse_loss: input shape \(2,\) != target shape \(3,\)"),
    (lambda: nn.CrossEntropyLoss()(tg.zeros(2, 3), tg.Tensor(np.array([0, 3]))), ValueError,
     r"cross_entropy: labels must be in \[0, 3\)"),
])
def test_bad_loss_inputs_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
