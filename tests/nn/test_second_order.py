"""Second derivatives through the losses: cross_entropy (a fused op with two backward paths),
log_softmax, nll_loss and binary_cross_entropy_with_logits.

A Hessian-vector product of a small MLP's loss is checked against central differences of the
gradient, each function is gradgradcheck-ed over Hypothesis shapes, and a plain backward() is
checked to still take the fused op's fast array path.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_edu as tg
from tinygrad_edu.nn import functional as F
from tinygrad_edu.ops.nn_ops import SoftmaxCrossEntropy
from tinygrad_edu.testing import strategies as tst

REDUCTIONS = st.sampled_from(["mean", "sum", "none"])


def param(array):
    return tg.Tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


def mlp_loss(params, x, labels):
    """cross_entropy of a 3-4-3 MLP with a smooth (tanh) hidden layer."""
    w1, b1, w2, b2 = params
    return F.cross_entropy(F.linear(F.linear(x, w1, b1).tanh(), w2, b2), labels)


def test_hessian_vector_product_of_an_mlp_matches_central_differences():
    rng = np.random.default_rng(0)
    shapes = [(4, 3), (4,), (3, 4), (3,)]
    values = [rng.standard_normal(s) for s in shapes]
    v = [rng.standard_normal(s) for s in shapes]
    x, labels = tg.Tensor(rng.standard_normal((5, 3))), tg.Tensor(np.array([0, 2, 1, 2, 0]))

    params = [param(a) for a in values]
    g = tg.grad(mlp_loss(params, x, labels), params, create_graph=True)
    gv = sum((gi * tg.Tensor(vi)).sum() for gi, vi in zip(g, v))
    hv = tg.grad(gv, params)

    def gradient_at(step):
        ps = [param(a + step * vi) for a, vi in zip(values, v)]
        return [t.numpy() for t in tg.grad(mlp_loss(ps, x, labels), ps)]

    eps = 1e-5
    up, down = gradient_at(eps), gradient_at(-eps)
    for h, u, d in zip(hv, up, down):
        np.testing.assert_allclose(h.numpy(), (u - d) / (2 * eps), rtol=1e-6, atol=1e-8)
    assert any(np.abs(h.numpy()).max() > 1e-3 for h in hv)  # not a trivially zero product


@st.composite
def classification(draw):
    """(logits (N, K) float64 requiring grad, integer labels (N,) in [0, K))."""
    logits, labels = draw(tst.classification())
    return param(logits), tg.Tensor(labels)


@settings(max_examples=15)
@given(classification(), REDUCTIONS)
def test_cross_entropy_is_twice_differentiable(case, reduction):
    logits, labels = case
    assert tg.gradgradcheck(lambda z: F.cross_entropy(z, labels, reduction), [logits])


@settings(max_examples=15)
@given(classification(), REDUCTIONS)
def test_nll_loss_is_twice_differentiable(case, reduction):
    z, labels = case
    # nll_loss is linear in its input: squared, its first derivative depends on the input,
    # so the backward of its backward (indexing's scatter) is exercised
    assert tg.gradgradcheck(lambda z: F.nll_loss(z, labels, reduction) ** 2, [z])
    assert tg.gradgradcheck(lambda z: F.nll_loss(F.log_softmax(z, 1), labels, reduction), [z])


@settings(max_examples=15)
@given(st.data())
def test_log_softmax_is_twice_differentiable(data):
    x = data.draw(tst.tensors(shape=tst.shapes(min_dims=0, max_dims=3, max_side=3)))
    dim = data.draw(st.integers(-max(x.ndim, 1), max(x.ndim, 1) - 1))
    assert tg.gradgradcheck(lambda x: F.log_softmax(x, dim), [x])


@settings(max_examples=15)
@given(tst.shapes(max_dims=2, max_side=3), REDUCTIONS, st.data())
def test_binary_cross_entropy_with_logits_is_twice_differentiable(shape, reduction, data):
    z = param(data.draw(tst.arrays(shape, domain="bounded_exp")))
    t = param(data.draw(tst.arrays(shape, elements=st.floats(0, 1))))
    assert tg.gradgradcheck(
        lambda z, t: F.binary_cross_entropy_with_logits(z, t, reduction), [z, t])


def _count_backward_paths(monkeypatch):
    calls = {"backward_arrays": 0, "recorded_backward": 0}
    for name in calls:
        original = getattr(SoftmaxCrossEntropy, name)

        def counted(ctx, *args, _name=name, _original=original):
            calls[_name] += 1
            return _original(ctx, *args)
        monkeypatch.setattr(SoftmaxCrossEntropy, name, counted)
    return calls


def test_plain_backward_takes_the_fast_array_path(monkeypatch):
    calls = _count_backward_paths(monkeypatch)
    rng = np.random.default_rng(1)
    z, labels = param(rng.standard_normal((4, 3))), tg.Tensor(np.array([2, 0, 1, 1]))
    loss = F.cross_entropy(z, labels)
    assert type(loss.grad_fn.inputs[0].grad_fn) is SoftmaxCrossEntropy  # mean of the fused op
    loss.backward()
    assert calls == {"backward_arrays": 1, "recorded_backward": 0}
    assert z.grad.grad_fn is None and not z.grad.requires_grad  # nothing was recorded

    (g,) = tg.grad(F.cross_entropy(z, labels), [z], create_graph=True)
    assert calls == {"backward_arrays": 1, "recorded_backward": 1}
    assert g.requires_grad and g.grad_fn is not None
    np.testing.assert_allclose(g.numpy(), z.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_both_paths_give_softmax_minus_onehot_at_huge_logits():
    z = param([[1e4, 0.0], [0.0, 1e4], [-1e4, -1e4]])
    labels = tg.Tensor(np.array([0, 0, 1]))
    (fast,) = tg.grad(F.cross_entropy(z, labels, reduction="sum"), [z])
    (recorded,) = tg.grad(F.cross_entropy(z, labels, reduction="sum"), [z], create_graph=True)
    for g in (fast, recorded):
        np.testing.assert_allclose(g.numpy(), [[0, 0], [-1, 1], [0.5, -0.5]], atol=1e-12)


@pytest.mark.gpu
def test_recorded_backward_on_the_gpu_matches_the_kernel():
    """float32 on the GPU takes the CUDA kernel in forward and in the fast backward."""
    rng = np.random.default_rng(2)
    z = tg.Tensor(rng.standard_normal((6, 5)).astype(np.float32), device="cuda",
                  requires_grad=True)
    labels = tg.Tensor(np.array([0, 4, 1, 2, 3, 0]), device="cuda")
    (fast,) = tg.grad(F.cross_entropy(z, labels), [z])
    (recorded,) = tg.grad(F.cross_entropy(z, labels), [z], create_graph=True)
    np.testing.assert_allclose(recorded.numpy(), fast.numpy(), rtol=1e-5, atol=1e-7)
    v = tg.Tensor(rng.standard_normal((6, 5)).astype(np.float32), device="cuda")
    (hv,) = tg.grad((recorded * v).sum(), [z])
    assert hv.device == "cuda" and np.isfinite(hv.numpy()).all()
