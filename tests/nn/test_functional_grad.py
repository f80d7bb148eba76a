"""nn.functional, function by function: the forward pass against a NumPy reference, gradients by
central differences (``tg.gradcheck``, float64) over Hypothesis-drawn shapes and arguments,
second derivatives (``tg.gradgradcheck``) where the function is twice differentiable, numerical
stability at extreme inputs, and clear errors for bad inputs.

Shapes stay tiny: a gradient check runs the function twice per input element.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import refs
import tinygrad_edu as tg
from tinygrad_edu.nn import functional as F
from tinygrad_edu.testing import strategies as tst

RNG = np.random.default_rng(0)


def param(array):
    """A float64 leaf that requires grad, as gradcheck wants."""
    return tg.Tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


def randn(*shape):
    return param(RNG.standard_normal(shape))


def distinct(*shape):
    """Values pairwise >= 0.1 apart, so every max has a unique winner (no ties)."""
    return param(RNG.permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 1.0)


def close(got, want, tol=1e-10):
    np.testing.assert_allclose(got.numpy(), want, rtol=tol, atol=tol)


# ---- linear and conv2d ---------------------------------------------------------------------------
@given(lead=tst.shapes(max_dims=2, max_side=3), n_in=st.integers(1, 4), n_out=st.integers(1, 3),
       bias=st.booleans(), data=st.data())
def test_linear_with_any_leading_dims(lead, n_in, n_out, bias, data):
    x = param(data.draw(tst.arrays(lead + (n_in,))))
    w = param(data.draw(tst.arrays((n_out, n_in))))
    b = param(data.draw(tst.arrays((n_out,)))) if bias else None
    want = x.numpy() @ w.numpy().T + (b.numpy() if bias else 0)
    close(F.linear(x, w, b), want)
    args = [x, w] + ([b] if bias else [])
    assert tg.gradcheck(lambda *a: F.linear(*a), args)


@st.composite
def conv_cases(draw):
    """Valid conv2d arguments: non-square kernels, per-axis stride and padding."""
    n, c, f = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    padding = draw(st.integers(0, 1)), draw(st.integers(0, 1))
    h = draw(st.integers(max(kh - 2 * padding[0], 1), 5))  # the kernel fits the padded input
    w = draw(st.integers(max(kw - 2 * padding[1], 1), 5))
    x = draw(tst.arrays((n, c, h, w)))
    weight = draw(tst.arrays((f, c, kh, kw)))
    bias = draw(st.none() | tst.arrays((f,)))
    return x, weight, bias, stride, padding


@settings(max_examples=15)
@given(conv_cases())
def test_conv2d_forward_and_gradients(case):
    x, w, b, stride, padding = case
    args = [param(x), param(w)] + ([] if b is None else [param(b)])
    conv = lambda *a: F.conv2d(*a, stride=stride, padding=padding)  # noqa: E731
    close(conv(*args), refs.conv2d(x, w, b, stride, padding))
    assert tg.gradcheck(conv, args)


def test_conv2d_int_stride_and_padding_mean_both_axes():
    x, w = randn(1, 2, 6, 5), randn(3, 2, 2, 3)
    close(F.conv2d(x, w, stride=2, padding=1),
          refs.conv2d(x.numpy(), w.numpy(), None, (2, 2), (1, 1)))


# ---- pooling -------------------------------------------------------------------------------------
@st.composite
def pool_cases(draw):
    k = draw(st.integers(1, 3))
    s = draw(st.integers(1, 3))
    p = draw(st.integers(0, k // 2))  # PyTorch's (and our) limit: at most half the kernel
    h, w = draw(st.integers(max(k - 2 * p, 1), 5)), draw(st.integers(max(k - 2 * p, 1), 5))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), h, w)
    return shape, k, s, p, draw(st.booleans())


@given(pool_cases(), st.data())
def test_max_pool2d_forward_and_gradient(case, data):
    shape, k, s, p, ceil_mode = case
    x = param(data.draw(tst.distinct_arrays(shape)))  # tie-free: the argmax is unique
    pool = lambda x: F.max_pool2d(x, k, s, p, ceil_mode)  # noqa: E731
    close(pool(x), refs.pool2d(x.numpy(), k, s, p, ceil_mode, "max"))
    assert tg.gradcheck(pool, [x])


def test_max_pool2d_padding_never_wins_and_stride_defaults_to_kernel():
    x = distinct(1, 2, 5, 5) - 10  # all negative: a zero from the padding would win every max
    close(F.max_pool2d(x, 3, 2, padding=1), refs.pool2d(x.numpy(), 3, 2, 1, False, "max"))
    assert F.max_pool2d(x, 2).shape == (1, 2, 2, 2)


@given(pool_cases(), st.booleans(), st.data())
def test_avg_pool2d_forward_and_gradient(case, count_include_pad, data):
    shape, k, s, p, ceil_mode = case
    x = param(data.draw(tst.arrays(shape)))
    pool = lambda x: F.avg_pool2d(x, k, s, p, ceil_mode, count_include_pad)  # noqa: E731
    close(pool(x), refs.pool2d(x.numpy(), k, s, p, ceil_mode, "avg", count_include_pad))
    assert tg.gradcheck(pool, [x])


# ---- dropout -------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.25, 0.5])
def test_dropout_scales_the_kept_values_and_routes_the_gradient_through_the_mask(p):
    tg.manual_seed(0)
    x = param(RNG.uniform(1, 2, (40, 50)))
    y = F.dropout(x, p)
    scale = (y.numpy() / x.numpy())  # the mask over (1 - p), as dropout drew it
    assert np.isin(np.round(scale, 12), [0.0, round(1 / (1 - p), 12)]).all()
    assert abs((scale == 0).mean() - p) < 0.05
    g = RNG.uniform(0.5, 1.5, x.shape)
    y.backward(tg.Tensor(g))
    close(x.grad, g * scale)  # dy/dx = mask / (1 - p), the same mask as the forward


def test_dropout_is_reproducible_with_a_seed_and_passes_gradcheck():
    x = randn(3, 4)

    def seeded(x):  # gradcheck calls it many times: re-seed so every call draws the same mask
        tg.manual_seed(7)
        return F.dropout(x, 0.4)

    np.testing.assert_array_equal(seeded(x).numpy(), seeded(x).numpy())
    assert (seeded(x).numpy() == 0).any()
    assert tg.gradcheck(seeded, [x])


def test_dropout_identity_cases():
    x = randn(5, 6)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    y = F.dropout(x, 1.0)
    y.sum().backward()
    assert (y.numpy() == 0).all() and (x.grad.numpy() == 0).all()


# ---- batch normalization -------------------------------------------------------------------------
bn_shapes = st.sampled_from([(2, 1), (4, 3), (3, 2, 2, 2), (2, 3, 1, 2), (1, 2, 2, 1)])


@given(bn_shapes, st.data())
def test_batch_norm_training_forward_gradient_and_running_statistics(shape, data):
    c = shape[1]
    x = param(data.draw(tst.distinct_arrays(shape)))  # distinct: no zero-variance channel
    weight, bias = param(data.draw(tst.arrays((c,)))), param(data.draw(tst.arrays((c,))))
    axes = (0,) if len(shape) == 2 else (0, 2, 3)
    bshape = (1, c) + (1,) * (len(shape) - 2)
    xs = x.numpy()
    mean, var = xs.mean(axis=axes), xs.var(axis=axes)  # biased, for the normalization
    want = (xs - mean.reshape(bshape)) / np.sqrt(var.reshape(bshape) + 1e-5)
    want = want * weight.numpy().reshape(bshape) + bias.numpy().reshape(bshape)

    rm0, rv0 = RNG.standard_normal(c), RNG.uniform(0.5, 2, c)
    rm, rv = tg.Tensor(rm0.copy()), tg.Tensor(rv0.copy())
    close(F.batch_norm(x, rm, rv, weight, bias, training=True, momentum=0.3), want, 1e-8)
    count = x.numel() // c
    close(rm, 0.7 * rm0 + 0.3 * mean)
    close(rv, 0.7 * rv0 + 0.3 * var * count / (count - 1))  # unbiased in the running average

    # no running statistics inside gradcheck: it calls the function many times
    train = lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True)  # noqa: E731
    assert tg.gradcheck(train, [x, weight, bias])


@given(bn_shapes, st.data())
def test_batch_norm_eval_uses_running_statistics_and_leaves_them(shape, data):
    c = shape[1]
    x, weight, bias = (param(data.draw(tst.arrays(s))) for s in (shape, (c,), (c,)))
    rm0, rv0 = data.draw(tst.arrays((c,))), data.draw(tst.arrays((c,), domain="positive"))
    rm, rv = tg.Tensor(rm0.copy()), tg.Tensor(rv0.copy())
    bshape = (1, c) + (1,) * (len(shape) - 2)
    want = ((x.numpy() - rm0.reshape(bshape)) / np.sqrt(rv0.reshape(bshape) + 1e-5)
            * weight.numpy().reshape(bshape) + bias.numpy().reshape(bshape))
    evaluate = lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False)  # noqa: E731
    close(evaluate(x, weight, bias), want)
    assert tg.gradcheck(evaluate, [x, weight, bias])
    np.testing.assert_array_equal(rm.numpy(), rm0)
    np.testing.assert_array_equal(rv.numpy(), rv0)


def test_batch_norm_without_weight_and_bias_normalizes():
    x = randn(6, 2)
    y = F.batch_norm(x, None, None, training=True).numpy()
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(0), x.numpy().var(0) / (x.numpy().var(0) + 1e-5))


# ---- softmax and log_softmax ---------------------------------------------------------------------
@given(st.data())
def test_softmax_and_log_softmax_forward_and_gradients(data):
    x = data.draw(tst.tensors(shape=tst.shapes(min_dims=1, max_dims=3, max_side=4)))
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    want = refs.log_softmax(x.numpy(), dim)
    close(F.log_softmax(x, dim), want)
    close(F.softmax(x, dim), np.exp(want))
    assert tg.gradcheck(lambda x: F.log_softmax(x, dim), [x])
    assert tg.gradcheck(lambda x: F.softmax(x, dim), [x])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_and_log_softmax_are_stable_at_huge_logits(dtype):
    x = tg.Tensor(np.array([[1e4, 0.0, -1e4], [1e4, 1e4, -1e4]], dtype=dtype), requires_grad=True)
    log_p = F.log_softmax(x, 1)
    close(log_p, [[0, -1e4, -2e4], [-np.log(2), -np.log(2), -2e4 - np.log(2)]], 1e-6)
    close(F.softmax(x, 1), [[1, 0, 0], [0.5, 0.5, 0]], 1e-6)
    (log_p * tg.Tensor(np.array([[1, 0, 0], [0, 1, 0]], dtype=dtype))).sum().backward()
    close(x.grad, [[0, 0, 0], [-0.5, 0.5, 0]], 1e-6)  # onehot - softmax


# ---- classification losses -----------------------------------------------------------------------
@st.composite
def classification(draw):
    """(logits (N, K) float64 requiring grad, integer labels (N,) in [0, K))."""
    logits, labels = draw(tst.classification())
    return param(logits), tg.Tensor(labels)


@given(classification(), st.sampled_from(["mean", "sum", "none"]))
def test_cross_entropy_and_nll_loss_forward_and_gradients(case, reduction):
    logits, labels = case
    picked = refs.log_softmax(logits.numpy(), 1)[np.arange(len(labels)), labels.numpy()]
    want = refs.reduce(-picked, reduction)
    close(F.cross_entropy(logits, labels, reduction), want)
    close(F.nll_loss(F.log_softmax(logits, 1), labels, reduction), want)
    assert tg.gradcheck(lambda z: F.cross_entropy(z, labels, reduction), [logits])
    assert tg.gradcheck(lambda z: F.nll_loss(z, labels, reduction), [logits])


@pytest.mark.parametrize("reduction, scale", [("mean", 1 / 3), ("sum", 1.0)])
def test_cross_entropy_gradient_is_softmax_minus_onehot(reduction, scale):
    z, labels = randn(3, 5), np.array([4, 0, 2])
    F.cross_entropy(z, tg.Tensor(labels), reduction).backward()
    onehot = np.eye(5)[labels]
    close(z.grad, (np.exp(refs.log_softmax(z.numpy(), 1)) - onehot) * scale)


def test_cross_entropy_is_stable_at_huge_logits():
    z = tg.Tensor(np.array([[1e4, 0.0], [0.0, 1e4], [-1e4, -1e4]], dtype=np.float32),
                  requires_grad=True)
    loss = F.cross_entropy(z, [0, 0, 1], reduction="none")
    close(loss, [0, 1e4, np.log(2)], 1e-6)
    loss.sum().backward()
    close(z.grad, [[0, 0], [-1, 1], [0.5, -0.5]], 1e-6)


def test_cross_entropy_and_nll_of_log_softmax_are_twice_differentiable():
    z, labels = randn(3, 4), tg.Tensor(np.array([1, 0, 3]))
    assert tg.gradgradcheck(lambda z: F.cross_entropy(z, labels), [z])
    assert tg.gradgradcheck(lambda z: F.nll_loss(F.log_softmax(z, 1), labels), [z])


# ---- regression and binary losses ----------------------------------------------------------------
@given(tst.shapes(max_dims=3, max_side=3), st.sampled_from(["mean", "sum", "none"]), st.data())
def test_mse_loss_forward_and_gradients(shape, reduction, data):
    x, t = param(data.draw(tst.arrays(shape))), param(data.draw(tst.arrays(shape)))
    close(F.mse_loss(x, t, reduction), refs.reduce((x.numpy() - t.numpy()) ** 2, reduction))
    assert tg.gradcheck(lambda x, t: F.mse_loss(x, t, reduction), [x, t])


@given(tst.shapes(min_dims=1, max_dims=2, max_side=4), st.sampled_from(["mean", "sum", "none"]),
       st.data())
def test_binary_cross_entropy_forward_and_gradients(shape, reduction, data):
    p = param(data.draw(tst.arrays(shape, elements=st.floats(0.05, 0.95))))  # clamp inactive
    t = param(data.draw(tst.arrays(shape, elements=st.floats(0, 1))))
    want = -(t.numpy() * np.log(p.numpy()) + (1 - t.numpy()) * np.log(1 - p.numpy()))
    close(F.binary_cross_entropy(p, t, reduction), refs.reduce(want, reduction))
    assert tg.gradcheck(lambda p, t: F.binary_cross_entropy(p, t, reduction), [p, t])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_cross_entropy_is_finite_at_probabilities_0_and_1(dtype):
    p = tg.Tensor(np.array([0.0, 1.0, 0.0, 1.0, 0.0], dtype=dtype), requires_grad=True)
    t = tg.Tensor(np.array([0.0, 1.0, 1.0, 0.0, 0.5], dtype=dtype))
    loss = F.binary_cross_entropy(p, t, reduction="none")
    big = -np.log(np.finfo(dtype).tiny)  # log of the clamp, instead of log(0) = -inf
    close(loss, [0, 0, big, big, 0.5 * big], 1e-5)
    loss.sum().backward()
    assert np.isfinite(p.grad.numpy()).all()


@given(tst.shapes(min_dims=1, max_dims=2, max_side=4), st.sampled_from(["mean", "sum", "none"]),
       st.data())
def test_binary_cross_entropy_with_logits_forward_and_gradients(shape, reduction, data):
    z = param(data.draw(tst.arrays(shape, domain="bounded_exp")))
    t = param(data.draw(tst.arrays(shape, elements=st.floats(0, 1))))
    s = 1 / (1 + np.exp(-z.numpy()))
    want = -(t.numpy() * np.log(s) + (1 - t.numpy()) * np.log(1 - s))
    close(F.binary_cross_entropy_with_logits(z, t, reduction), refs.reduce(want, reduction), 1e-9)
    assert tg.gradcheck(lambda z, t: F.binary_cross_entropy_with_logits(z, t, reduction), [z, t])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_cross_entropy_with_logits_is_stable_at_huge_logits(dtype):
    z = tg.Tensor(np.array([1e4, 1e4, -1e4, -1e4], dtype=dtype), requires_grad=True)
    t = tg.Tensor(np.array([1.0, 0.0, 0.0, 1.0], dtype=dtype))
    loss = F.binary_cross_entropy_with_logits(z, t, reduction="none")
    close(loss, [0, 1e4, 0, 1e4], 1e-6)
    loss.sum().backward()
    close(z.grad, [0, 1, 0, -1], 1e-6)  # sigmoid(z) - t


# ---- the re-exported activations -----------------------------------------------------------------
@pytest.mark.parametrize("fn, ref, domain", [
    (F.relu, lambda x: np.maximum(x, 0), "nonzero"),  # away from the kink at 0
    (F.sigmoid, lambda x: 1 / (1 + np.exp(-x)), "real"),
    (F.tanh, np.tanh, "real"),
    (lambda x: F.flatten(x, 1), lambda x: x.reshape(len(x), -1), "real"),
])
@settings(max_examples=10)
@given(data=st.data())
def test_activations_and_flatten(fn, ref, domain, data):
    x = data.draw(tst.tensors(shape=tst.shapes(min_dims=2, max_dims=4, max_side=3), domain=domain))
    close(fn(x), ref(x.numpy()), 1e-12)
    assert tg.gradcheck(fn, [x])


# ---- second derivatives --------------------------------------------------------------------------
# Linear ops like pooling have a zero second derivative, so they are squared: the first derivative
# then depends on x and create_graph must differentiate the op's backward.
@pytest.mark.parametrize("fn, inputs", [
    (lambda x, w, b: F.linear(x, w, b), lambda: [randn(2, 2, 3), randn(2, 3), randn(2)]),
    (lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 0)),
     lambda: [randn(1, 2, 4, 3), randn(2, 2, 3, 2), randn(2)]),
    (lambda x: F.max_pool2d(x, 2, 1, ceil_mode=True) ** 2, lambda: [distinct(1, 2, 3, 3)]),
    (lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False) ** 2,
     lambda: [randn(1, 2, 4, 4)]),
    (lambda x: F.softmax(x, 0), lambda: [randn(3, 4)]),
    (lambda x: F.log_softmax(x, 1), lambda: [randn(3, 4)]),
    (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
     lambda: [randn(4, 2), randn(2), randn(2)]),
    (lambda x, t: F.mse_loss(x, t), lambda: [randn(2, 3), randn(2, 3)]),
    (lambda p, t: F.binary_cross_entropy(p, t), lambda: [param(RNG.uniform(0.1, 0.9, 5)),
                                                         param(RNG.uniform(0, 1, 5))]),
    (lambda z, t: F.binary_cross_entropy_with_logits(z, t),
     lambda: [randn(5), param(RNG.uniform(0, 1, 5))]),
], ids=["linear", "conv2d", "max_pool2d", "avg_pool2d", "softmax", "log_softmax", "batch_norm",
        "mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"])
def test_second_derivatives(fn, inputs):
    assert tg.gradgradcheck(fn, inputs())


# ---- bad inputs ----------------------------------------------------------------------------------
Z = tg.zeros
LABELS = tg.Tensor(np.array([0, 1, 2]))


@pytest.mark.parametrize("call, error, match", [
    (lambda: F.cross_entropy(Z(3, 4), tg.Tensor(np.array([0, 1, 4]))), ValueError,
     r"cross_entropy: labels must be in \[0, 4\), got values from 0 to 4"),
    (lambda: F.cross_entropy(Z(3, 4), tg.Tensor(np.array([0, -1, 2]))), ValueError,
     r"labels must be in \[0, 4\), got values from -1 to 2"),
    (lambda: F.nll_loss(Z(3, 4), tg.Tensor(np.array([5, 1, 2]))), ValueError,
     r"nll_loss: labels must be in \[0, 4\)"),
    (lambda: F.cross_entropy(Z(3, 4), [0.0, 1.0, 2.0]), TypeError,
     r"cross_entropy: labels must be integers \(class indices\), got float32"),
    (lambda: F.nll_loss(Z(3, 4), tg.Tensor(np.array([0.0, 1.0, 2.0]))), TypeError,
     r"nll_loss: labels must be integers"),
    (lambda: F.cross_entropy(Z(3, 4), tg.Tensor(np.array([[0, 1, 2]]))), ValueError,
     r"labels of shape \(1, 3\) do not match scores of shape \(3, 4\); expected \(3,\)"),
    (lambda: F.nll_loss(Z(3, 4), tg.Tensor(np.array([0, 1]))), ValueError,
     r"labels of shape \(2,\) do not match scores of shape \(3, 4\)"),
    (lambda: F.cross_entropy(Z(3, 4, 2), LABELS), ValueError,
     r"cross_entropy: expected a 2-D input, got shape \(3, 4, 2\)"),
    (lambda: F.cross_entropy(Z(3, 4), LABELS, reduction="avg"), ValueError,
     r"reduction must be 'mean', 'sum' or 'none', got 'avg'"),
    (lambda: F.conv2d(Z(3, 6, 6), Z(2, 3, 3, 3)), ValueError,
     r"conv2d: expected a 4-D input, got shape \(3, 6, 6\)"),
    (lambda: F.conv2d(Z(1, 3, 6, 6), Z(2, 2, 3, 3)), ValueError,
     r"conv2d: input of shape \(1, 3, 6, 6\) has 3 channels, weight of shape \(2, 2, 3, 3\)"),
    (lambda: F.conv2d(Z(1, 3, 2, 2), Z(2, 3, 3, 3), padding=0), ValueError,
     r"conv2d: kernel 3 is larger than the padded input \(2 \+ 2\*0\)"),
    (lambda: F.conv2d(Z(1, 3, 4, 4), Z(2, 3, 3, 3), Z(3)), ValueError,
     r"conv2d: bias of shape \(3,\) should be \(2,\)"),
    (lambda: F.conv2d(Z(1, 3, 4, 4), Z(2, 3, 3, 3), stride=0), ValueError,
     r"conv2d: stride must be an int >= 1 or a pair of them, got 0"),
    (lambda: F.max_pool2d(Z(1, 3, 4, 4), 2, padding=2), ValueError,
     r"max_pool2d: padding 2 must be at most half the kernel 2"),
    (lambda: F.max_pool2d(Z(1, 3, 4, 4), 2, padding=-1), ValueError,
     r"max_pool2d: padding must be an int >= 0 or a pair of them, got -1"),
    (lambda: F.max_pool2d(Z(3, 4, 4), 2), ValueError,
     r"max_pool2d: expected a 4-D input, got shape \(3, 4, 4\)"),
    (lambda: F.max_pool2d(Z(1, 1, 1, 5), 2), ValueError,
     r"max_pool2d: kernel 2 is larger than the padded input \(1 \+ 2\*0\)"),
    (lambda: F.avg_pool2d(Z(1, 1, 3, 3), 2, padding=2), ValueError,
     r"avg_pool2d: padding 2 must be at most half the kernel 2"),
    (lambda: F.dropout(Z(3), 1.5), ValueError, r"dropout: p must be in \[0, 1\], got 1.5"),
    (lambda: F.dropout(Z(3), -0.1), ValueError, r"dropout: p must be in \[0, 1\], got -0.1"),
    (lambda: F.batch_norm(Z(2, 3, 4), None, None, training=True), ValueError,
     r"batch_norm: expected a 2-D or 4-D input, got shape \(2, 3, 4\)"),
    (lambda: F.batch_norm(Z(2, 3), Z(4), Z(3)), ValueError,
     r"batch_norm: running_mean has shape \(4,\), input \(2, 3\) has 3 channels"),
    (lambda: F.batch_norm(Z(2, 3), None, None), ValueError,
     r"evaluation needs running_mean and running_var"),
    (lambda: F.linear(Z(2, 3), Z(4, 5)), ValueError,
     r"linear: input of shape \(2, 3\) does not match weight of shape \(4, 5\)"),
    (lambda: F.linear(Z(2, 3), Z(4, 3), Z(5)), ValueError,
     r"linear: bias of shape \(5,\) should be \(4,\)"),
    (lambda: F.mse_loss(Z(2, 3), Z(3)), ValueError,
     r"mse_loss: input shape \(2, 3\) != target shape \(3,\)"),
    (lambda: F.binary_cross_entropy(Z(2, 3), Z(3, 2)), ValueError,
     r"binary_cross_entropy: probs shape \(2, 3\) != target shape \(3, 2\)"),
    (lambda: F.binary_cross_entropy_with_logits(Z(2), Z(2, 1)), ValueError,
     r"logits shape \(2,\) != target shape \(2, 1\)"),
])
def test_bad_inputs_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("shape, running_var", [((1, 3), "ok"), ((1, 3, 1, 1), "ok"),
                                                ((4, 3), None)])
def test_batch_norm_errors_leave_the_running_statistics_alone(shape, running_var):
    """One value per channel has no variance; a lone running_mean would be updated alone."""
    rm, rv = tg.Tensor(np.arange(3.0)), tg.ones(3)
    with pytest.raises(ValueError, match="more than one value per channel, input shape "
                       rf"\({shape[0]}, 3.*has 1|both running_mean and running_var"):
        F.batch_norm(Z(*shape), rm, rv if running_var else None, training=True)
    np.testing.assert_array_equal(rm.numpy(), [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(rv.numpy(), [1.0, 1.0, 1.0])


def test_linear_and_conv2d_refuse_mixed_dtypes():
    """One node computes with input, weight and bias together: NumPy would promote silently."""
    x32, w64 = tg.Tensor(np.ones((1, 1, 4, 4), np.float32)), tg.Tensor(np.ones((2, 1, 3, 3)))
    with pytest.raises(TypeError, match="conv2d: input dtype float32, weight dtype float64"):
        F.conv2d(x32, w64)
    w32 = tg.Tensor(np.ones((2, 1, 3, 3), np.float32))
    with pytest.raises(TypeError, match="conv2d: .*bias dtype float64"):
        F.conv2d(x32, w32, tg.Tensor(np.zeros(2)))
    with pytest.raises(TypeError, match="linear: input dtype float64, weight dtype float32"):
        F.linear(tg.Tensor(np.ones((2, 3))), tg.Tensor(np.ones((4, 3), np.float32)))
