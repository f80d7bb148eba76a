"""Adaptive pooling (F.adaptive_avg_pool2d, F.adaptive_max_pool2d and their layers) and Identity.

* forward against the plain NumPy loop over output cells (``adaptive_pool_ref`` in
  tests/op_table.py, whose rows also run gradcheck on the CPU and the GPU comparison) over
  Hypothesis-drawn H, W and output sizes 1..9: divisible, overlapping, O > H, None;
* float64 gradcheck of both paths (the divisible fast path through the pooling kernels and the
  general one), second derivatives, overlapping windows adding up;
* one fixed case against numbers PyTorch 2.13 gave (recorded once; torch is not imported);
* ties, NaN, indices, validation, the layers' repr and the exports.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_edu as tg
from tinygrad_edu import nn
from tinygrad_edu.nn import functional as F
from tinygrad_edu.ops import nn_ops
from tinygrad_edu.testing import strategies as tst

from op_table import adaptive_pool_ref

POOLS = {"avg": F.adaptive_avg_pool2d, "max": F.adaptive_max_pool2d}
SIZES = st.integers(1, 9)
OUTPUT_SIZES = SIZES | st.tuples(SIZES | st.none(), SIZES | st.none())


def ref_indices(x, out):
    """The flat index r*W + s of each window's first maximum, by the same plain loop."""
    h, w = x.shape[-2:]
    (oh, ow) = out
    idx = np.zeros(x.shape[:-2] + (oh, ow), dtype=np.int64)
    for i in range(oh):
        for j in range(ow):
            r0, r1 = i * h // oh, -(-(i + 1) * h // oh)
            c0, c1 = j * w // ow, -(-(j + 1) * w // ow)
            for lead in np.ndindex(x.shape[:-2]):
                win = x[lead][r0:r1, c0:c1]
                a, b = np.unravel_index(np.argmax(win), win.shape)
                idx[lead + (i, j)] = (r0 + a) * w + c0 + b
    return idx


@settings(max_examples=40)
@given(data=st.data(), kind=st.sampled_from(["avg", "max"]), dtype=st.sampled_from(
    [np.float32, np.float64]), batched=st.booleans())
def test_forward_matches_the_numpy_loop(data, kind, dtype, batched):
    h, w = data.draw(SIZES), data.draw(SIZES)
    shape = ((2,) if batched else ()) + (3, h, w)
    x = data.draw(tst.arrays(shape, dtype=dtype))
    out = data.draw(OUTPUT_SIZES)
    y = POOLS[kind](tg.Tensor(x), out)
    want = adaptive_pool_ref(x.astype(np.float64), out, kind)
    assert y.shape == want.shape and y.dtype == dtype
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-6 if dtype == np.float32 else 1e-12,
                               atol=1e-6 if dtype == np.float32 else 1e-12)
    if kind == "max":
        values, idx = F.adaptive_max_pool2d(tg.Tensor(x), out, return_indices=True)
        np.testing.assert_array_equal(values.numpy(), y.numpy())
        assert idx.dtype == np.int64 and not idx.requires_grad
        np.testing.assert_array_equal(idx.numpy(), ref_indices(x, want.shape[-2:]))


# (input shape, output size): the fast path (sizes divide), overlapping windows, O > H, None
CASES = [((2, 2, 6, 4), (3, 2)), ((1, 2, 4, 4), 1), ((2, 1, 5, 5), 3), ((1, 2, 5, 3), (2, 4)),
         ((2, 3, 2), (5, None)), ((1, 1, 1, 1), (3, 2))]


def distinct(shape, seed=1):
    """float64 values 0.37 apart in a shuffled order: no ties, so every argmax is unique and
    gradcheck's steps (1e-6) never swap two of them."""
    n = int(np.prod(shape))
    return tg.Tensor(np.random.default_rng(seed).permutation(n).reshape(shape) * 0.37 - n / 5,
                     requires_grad=True)


@pytest.mark.parametrize("shape, out", CASES)
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_gradcheck_both_paths(kind, shape, out):
    assert tg.gradcheck(lambda t: POOLS[kind](t, out), [distinct(shape)])


@pytest.mark.parametrize("shape, out", [((1, 1, 4, 2), (2, 1)), ((1, 1, 3, 2), (2, 3))])
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_second_derivatives(kind, shape, out):
    x = distinct(shape)
    assert tg.gradgradcheck(lambda t: (POOLS[kind](t, out) ** 2), [x])


def test_the_divisible_case_takes_the_pooling_kernels(monkeypatch):
    """7x7 -> 7x7 and 14x14 -> 7x7 (VGG) and 7x7 -> 1x1 (ResNet) run max_pool2d's kernel and
    avg_pool2d, and equal the general path, which a non-kernel dtype takes."""
    rng = np.random.default_rng(2)
    for h, out in [(7, 7), (14, 7), (7, 1)]:
        x = tg.Tensor(rng.standard_normal((2, 3, h, h)), requires_grad=True)
        idx, window = nn_ops.adaptive_argmax(x.data, (out, out))
        assert window == (h // out, h // out, h // out, h // out, 0, 0)
        fast = [F.adaptive_avg_pool2d(x, out), F.adaptive_max_pool2d(x, out)]
        with monkeypatch.context() as m:
            m.setattr(F, "has_pool_kernel", lambda a: False)
            m.setattr(nn_ops, "has_pool_kernel", lambda a: False)
            assert nn_ops.adaptive_argmax(x.data, (out, out))[1] is None
            general = [F.adaptive_avg_pool2d(x, out), F.adaptive_max_pool2d(x, out)]
        for a, b in zip(fast, general):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-14)
            ga, = tg.grad(a.sum(), [x])
            gb, = tg.grad(b.sum(), [x])
            np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-12, atol=1e-14)
    assert nn_ops.adaptive_argmax(np.zeros((1, 1, 5, 5), np.float32), (3, 3))[1] is None


def test_overlapping_windows_add_their_gradients():
    # 3 columns into 2 windows, [0, 2) and [1, 3): the middle column is in both
    x = tg.Tensor(np.array([[[[1.0, 5.0, 2.0]]]]), requires_grad=True)
    F.adaptive_avg_pool2d(x, (1, 2)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0.5, 1.0, 0.5]]]])
    x.grad = None
    F.adaptive_max_pool2d(x, (1, 2)).sum().backward()  # 5 is the max of both windows
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0.0, 2.0, 0.0]]]])
    one = tg.Tensor(np.array([[[[3.0]]]]), requires_grad=True)
    for pool in POOLS.values():  # O > H: the one pixel is every window
        one.grad = None
        y = pool(one, (3, 2))
        np.testing.assert_array_equal(y.numpy(), np.full((1, 1, 3, 2), 3.0))
        y.sum().backward()
        assert one.grad.item() == 6.0


# PyTorch 2.13: x = sin(arange(20)).reshape(1, 1, 4, 5), output (3, 2),
# dx of (y * arange(1, 7).reshape(1, 1, 3, 2)).sum()
TORCH_AVG = [0.19490253958171713, 0.39201304502692463, -0.44365623493063056,
             0.4887774675175007, -0.44659953397133556, -0.11471767574453402]
TORCH_AVG_GRAD = [1 / 6, 1 / 6, 0.5, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1.6666666666666665, 1.0, 1.0,
                  1.3333333333333335, 1.3333333333333335, 3.0, 1.6666666666666665,
                  1.6666666666666665, 0.8333333333333334, 0.8333333333333334, 1.8333333333333335,
                  1.0, 1.0]
TORCH_MAX = [0.9092974268256817, 0.9893582466233818, 0.6569865987187891, 0.9906073556948704,
             0.6502878401571168, 0.9906073556948704]
TORCH_MAX_GRAD = [0, 0, 1, 0, 0, 0, 0, 3, 2, 0, 0, 0, 0, 0, 10, 5, 0, 0, 0, 0]
TORCH_MAX_INDICES = [2, 8, 7, 14, 15, 14]


@pytest.mark.parametrize("kind, values, grads", [("avg", TORCH_AVG, TORCH_AVG_GRAD),
                                                 ("max", TORCH_MAX, TORCH_MAX_GRAD)])
def test_fixed_case_matches_pytorch(kind, values, grads):
    x = tg.Tensor(np.sin(np.arange(20.0)).reshape(1, 1, 4, 5), requires_grad=True)
    y = POOLS[kind](x, (3, 2))
    (y * tg.Tensor(np.arange(1.0, 7.0).reshape(1, 1, 3, 2))).sum().backward()
    np.testing.assert_allclose(y.numpy().ravel(), values, rtol=1e-13)
    np.testing.assert_allclose(x.grad.numpy().ravel(), grads, rtol=1e-13)
    if kind == "max":
        _, idx = F.adaptive_max_pool2d(x, (3, 2), return_indices=True)
        assert idx.numpy().ravel().tolist() == TORCH_MAX_INDICES


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("out", [(2, 2), (3, 3)])  # the max-pool kernel, the general loop
def test_ties_go_to_the_first_maximum_and_nan_wins(out, dtype):
    x = tg.Tensor(np.ones((1, 1, 4, 4), dtype), requires_grad=True)
    y, idx = F.adaptive_max_pool2d(x, out, return_indices=True)
    h = 4
    starts = [i * h // out[0] for i in range(out[0])]  # each window's top-left pixel
    np.testing.assert_array_equal(idx.numpy()[0, 0], [[r * 4 + c for c in starts] for r in starts])
    y.sum().backward()
    assert x.grad.numpy().sum() == out[0] * out[1]
    nan = np.zeros((1, 1, 4, 4), dtype)
    nan[0, 0, 1, 1] = np.nan
    assert np.isnan(F.adaptive_max_pool2d(tg.Tensor(nan), out).numpy()[0, 0, 0, 0])


def test_empty_batch_and_3d_input():
    x = tg.Tensor(np.zeros((0, 2, 5, 4)))
    for pool in POOLS.values():
        assert pool(x, (2, 3)).shape == (0, 2, 2, 3)
    x3 = np.random.default_rng(3).standard_normal((2, 5, 4))
    for kind, pool in POOLS.items():
        np.testing.assert_allclose(pool(tg.Tensor(x3), (3, None)).numpy(),
                                   adaptive_pool_ref(x3, (3, None), kind), rtol=1e-12)


@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("x, out, error, match", [
    (np.zeros((4, 4)), 2, ValueError, r"expected a 3-D or 4-D input, got shape \(4, 4\)"),
    (np.zeros((1, 1, 1, 4, 4)), 2, ValueError, r"expected a .* got shape \(1, 1, 1, 4, 4\)"),
    (np.zeros((1, 2, 4, 4)), 0, ValueError, "output_size must be an int >= 1 .* got 0"),
    (np.zeros((1, 2, 4, 4)), (2, -1), ValueError, r"got \(2, -1\)"),
    (np.zeros((1, 2, 4, 4)), 1.5, ValueError, "got 1.5"),
    (np.zeros((1, 2, 4, 4)), True, ValueError, "got True"),
    (np.zeros((1, 2, 4, 4)), (2,), ValueError, r"got \(2,\)"),
    (np.zeros((1, 2, 4, 4)), (2, 2, 2), ValueError, r"got \(2, 2, 2\)"),
    (np.zeros((1, 2, 4, 4)), None, ValueError, "got None"),
    (np.zeros((1, 2, 4, 4)), "7", ValueError, "got '7'"),
    (np.zeros((1, 2, 0, 4)), 2, ValueError, r"input of shape \(1, 2, 0, 4\) is empty"),
    (np.zeros((1, 0, 4, 4)), 2, ValueError, r"input of shape \(1, 0, 4, 4\) is empty"),
    (np.zeros((1, 2, 4, 4), np.int64), 2, TypeError, "must be floating point, got int64"),
])
def test_bad_arguments_are_named(kind, x, out, error, match):
    before = x.copy()
    with pytest.raises(error, match=f"^adaptive_{kind}_pool2d: .*{match}"):
        POOLS[kind](x, out)
    np.testing.assert_array_equal(x, before)


# ---- the layers, Identity, exports ----------------------------------------------------------
def test_layers_call_the_functions_and_print_what_they_were_given():
    x = tg.Tensor(np.random.default_rng(4).standard_normal((2, 3, 5, 6)))
    avg, mx = nn.AdaptiveAvgPool2d((7, 7)), nn.AdaptiveMaxPool2d((None, 3), return_indices=True)
    np.testing.assert_array_equal(avg(x).numpy(), F.adaptive_avg_pool2d(x, 7).numpy())
    values, idx = mx(x)
    want, want_idx = F.adaptive_max_pool2d(x, (5, 3), return_indices=True)
    np.testing.assert_array_equal(values.numpy(), want.numpy())
    np.testing.assert_array_equal(idx.numpy(), want_idx.numpy())
    assert nn.AdaptiveMaxPool2d(2)(x).shape == (2, 3, 2, 2)
    assert avg(tg.Tensor(np.ones((3, 2, 2)))).shape == (3, 7, 7)
    assert repr(avg) == "AdaptiveAvgPool2d(output_size=(7, 7))"
    assert repr(nn.AdaptiveAvgPool2d(7)) == "AdaptiveAvgPool2d(output_size=7)"
    assert repr(mx) == "AdaptiveMaxPool2d(output_size=(None, 3))"  # as PyTorch: no indices flag
    assert avg.parameters() == [] and avg.state_dict() == {}


def test_layers_check_their_arguments():
    for layer in (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d):
        name = layer.__name__
        with pytest.raises(ValueError, match=f"^{name}: output_size must be .* got 0"):
            layer(0)
        with pytest.raises(ValueError, match=rf"^{name}: output_size .* got \(7, 1.0\)"):
            layer((7, 1.0))
        with pytest.raises(ValueError, match=r"expected input of shape \(N, C, H, W\) or "
                                             r"\(C, H, W\), got \(2, 3\)"):
            layer(2)(tg.ones(2, 3))
        with pytest.raises(TypeError, match="expected a Tensor, got ndarray"):
            layer(2)(np.ones((1, 1, 2, 2)))


def test_identity_returns_its_input_and_ignores_arguments():
    x = tg.Tensor(np.arange(3, dtype=np.float32), requires_grad=True)
    ident = nn.Identity(54, unused_argument=0.1)
    assert ident(x) is x and repr(ident) == "Identity()" and ident.parameters() == []
    model = nn.Sequential(nn.Linear(3, 2), nn.Identity())
    assert model(x).shape == (2,)


def test_exports():
    for name in ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "Identity"):
        assert name in nn.__all__ and getattr(nn, name) is getattr(nn.layers, name)
        assert name in nn.layers.__all__
    for name in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
        assert name in F.__all__ and getattr(nn.functional, name) is getattr(F, name)
