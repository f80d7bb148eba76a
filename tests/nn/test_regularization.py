"""L1/L2 weight penalties (tinygrad_edu/nn/regularization.py), against hand computations."""
import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import optim
from tinygrad_edu.nn.regularization import l1_penalty, l2_penalty


W1 = np.array([[1.0, -2.0], [3.0, -0.5]])
W2 = np.array([0.5, -0.25, 1.0])


@pytest.mark.parametrize("penalty, reduction, value", [
    (l1_penalty, "mean", 6.5 / 4 + 1.75 / 3),
    (l1_penalty, "sum", 6.5 + 1.75),
    (l2_penalty, "mean", 14.25 / 4 + 1.3125 / 3),
    (l2_penalty, "sum", 14.25 + 1.3125),
])
def test_penalty_values_and_gradients(penalty, reduction, value):
    ws = [tg.Tensor(W1.copy(), requires_grad=True), tg.Tensor(W2.copy(), requires_grad=True)]
    out = penalty(ws, reduction=reduction)
    assert out.shape == () and out.item() == pytest.approx(value, rel=1e-12)
    out.backward()
    for w, data in zip(ws, (W1, W2)):
        d = np.sign(data) if penalty is l1_penalty else 2 * data
        np.testing.assert_allclose(w.grad.data, d / (data.size if reduction == "mean" else 1))
    assert tg.gradcheck(lambda a, b: penalty([a, b], reduction=reduction),
                        [tg.Tensor(W1.copy(), requires_grad=True),
                         tg.Tensor(W2.copy(), requires_grad=True)])


def test_penalty_defaults_single_tensor_and_float32():
    w = tg.Tensor(W1.astype(np.float32), requires_grad=True)
    assert l1_penalty(w).item() == pytest.approx(6.5 / 4)  # default reduction: mean
    assert l2_penalty([w]).dtype == np.float32
    with pytest.raises(ValueError, match="reduction"):
        l1_penalty(w, reduction="max")
    with pytest.raises(ValueError, match="no tensors"):
        l2_penalty([])


def test_l2_sum_penalty_is_weight_decay():
    """A loss term c * sum(W^2) and SGD(weight_decay=2c) give the same step."""
    c = 0.05
    a = tg.Tensor(W1.copy(), requires_grad=True)
    (c * l2_penalty(a, reduction="sum")).backward()
    optim.SGD([a], lr=0.1).step()
    b = tg.Tensor(W1.copy(), requires_grad=True)
    b.grad = tg.zeros_like(b)
    optim.SGD([b], lr=0.1, weight_decay=2 * c).step()
    np.testing.assert_allclose(a.data, b.data, rtol=1e-12)
