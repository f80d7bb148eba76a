"""nn.Embedding and F.embedding: lookup, accumulation of repeated indices, the padding row,
PyTorch's init, index checks."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_edu as tg
from tinygrad_edu import nn
from tinygrad_edu.nn import functional as F


@st.composite
def lookups(draw):
    """(weight (num, dim) float64, integer indices of 0-3 dims in [0, num), padding_idx)."""
    num, dim = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    idx = draw(hnp.arrays(draw(st.sampled_from([np.int32, np.int64])),
                          hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
                          elements=st.integers(0, num - 1)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    padding = draw(st.one_of(st.none(), st.integers(-num, num - 1)))
    return rng.standard_normal((num, dim)), idx, padding


@settings(max_examples=50)
@given(lookups())
def test_forward_and_backward_match_numpy(case):
    w, idx, padding = case
    weight = tg.tensor(w, requires_grad=True)
    out = F.embedding(tg.tensor(idx), weight, padding)
    assert out.shape == idx.shape + (w.shape[1],)
    np.testing.assert_array_equal(out.numpy(), w[idx])
    g = np.random.default_rng(0).standard_normal(out.shape)
    out.backward(g)
    want = np.zeros_like(w)
    np.add.at(want, idx, g)             # every position adds into its row: repeats accumulate
    if padding is not None:
        want[padding] = 0
    np.testing.assert_allclose(weight.grad.numpy(), want, rtol=1e-12, atol=1e-12)


@settings(max_examples=15)
@given(lookups())
def test_gradcheck_and_gradgradcheck(case):
    """(Without padding_idx: its row's gradient is 0 on purpose, which no numerical check sees.)"""
    w, idx, _ = case
    weight = tg.tensor(w, requires_grad=True)
    fn = lambda weight: F.embedding(idx, weight) ** 2  # noqa: E731 (the indices as an array)
    assert tg.gradcheck(fn, [weight])
    assert tg.gradgradcheck(fn, [weight])


def test_repeated_indices_accumulate_and_the_padding_row_gets_no_gradient():
    tg.manual_seed(0)
    emb = nn.Embedding(5, 2, padding_idx=1)
    np.testing.assert_array_equal(emb.weight.data[1], 0)       # zero at init
    emb.weight.data[1] = 7.0                                    # still looked up as it is
    out = emb(tg.tensor([[3, 1, 3], [3, 0, 1]]))
    np.testing.assert_array_equal(out.numpy()[0, 1], [7, 7])
    out.sum().backward()
    np.testing.assert_array_equal(emb.weight.grad.numpy(),
                                  [[1, 1], [0, 0], [0, 0], [3, 3], [0, 0]])


def test_init_is_pytorchs_normal_and_reproducible():
    tg.manual_seed(1)
    emb = nn.Embedding(1000, 50, padding_idx=-1)
    assert emb.padding_idx == 999 and emb.weight.shape == (1000, 50)
    assert emb.weight.dtype == np.float32 and (emb.weight.data[999] == 0).all()
    w = emb.weight.data[:999]
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1) < 0.01
    tg.manual_seed(1)
    np.testing.assert_array_equal(nn.Embedding(1000, 50, padding_idx=-1).weight.data,
                                  emb.weight.data)
    assert repr(emb) == "Embedding(1000, 50, padding_idx=999)"
    assert repr(nn.Embedding(3, 4)) == "Embedding(3, 4)"


@pytest.mark.parametrize("indices, error, message", [
    ([0, 4, 5], ValueError, r"embedding: indices must be in \[0, 5\) for a weight of shape "
                            r"\(5, 2\), got values from 0 to 5"),
    ([[-1, 2]], ValueError, r"indices must be in \[0, 5\) .* got values from -1 to 2"),
    ([0.0, 1.0], TypeError, "embedding: input must hold integer indices, got dtype float32"),
    ([True], TypeError, "got dtype bool"),
])
def test_bad_indices_are_refused_and_change_nothing(indices, error, message):
    emb = nn.Embedding(5, 2)
    before = emb.weight.data.copy()
    idx = np.array(indices, dtype=np.float32 if isinstance(indices[0], float) else None)
    with pytest.raises(error, match=message):
        emb(tg.from_numpy(idx))
    np.testing.assert_array_equal(emb.weight.data, before)
    np.testing.assert_array_equal(idx, np.array(indices, dtype=idx.dtype))
    assert emb.weight.grad is None


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match=r"Embedding: padding_idx must be in \[-3, 3\), got 3"):
        nn.Embedding(3, 2, padding_idx=3)
    with pytest.raises(ValueError, match="padding_idx must be an integer >= -3, got -4"):
        nn.Embedding(3, 2, padding_idx=-4)
    with pytest.raises(ValueError, match="embedding_dim must be an integer >= 1"):
        nn.Embedding(3, 0)
    with pytest.raises(ValueError, match=r"F.embedding|embedding: padding_idx must be an integer "
                                         r"in \[-3, 3\), got 5"):
        F.embedding([0], tg.zeros(3, 2), padding_idx=5)
    with pytest.raises(ValueError, match=r"weight must be 2-D .* got shape \(3,\)"):
        F.embedding([0], tg.zeros(3))
    with pytest.raises(TypeError, match="expected a Tensor of indices, got list"):
        nn.Embedding(3, 2)([0, 1])
