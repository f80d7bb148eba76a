"""conv2d's two backward passes and its chunked forward: the array version that training uses
(a few images at a time) against the Tensor-op version recorded under create_graph=True (the
straightforward im2col formulas, also the one gradcheck and gradgradcheck go through), and the
chunked forward against a NumPy reference, for chunk sizes from one image to the batch."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_edu as tg
from tinygrad_edu.nn import functional as F
from tinygrad_edu.ops import nn_ops

from refs import conv2d as conv2d_ref


@st.composite
def conv_cases(draw):
    n, c, f = draw(st.integers(1, 5)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, padding = draw(st.integers(1, 2)), draw(st.integers(0, 2))
    h, w = draw(st.integers(kh, 7)), draw(st.integers(kw, 7))
    chunk = draw(st.sampled_from([1, 64, 1 << 30]))        # bytes: one image per slice .. all
    return n, c, f, (kh, kw), (h, w), stride, padding, chunk, draw(st.booleans())


@settings(deadline=None, max_examples=40)
@given(conv_cases())
def test_the_array_backward_matches_the_recorded_one(case):
    n, c, f, k, hw, stride, padding, chunk, with_bias = case
    rng = np.random.default_rng(n * 100 + c * 10 + f)
    x = tg.Tensor(rng.standard_normal((n, c, *hw)), requires_grad=True)
    w = tg.Tensor(rng.standard_normal((f, c, *k)), requires_grad=True)
    b = tg.Tensor(rng.standard_normal(f), requires_grad=True) if with_bias else None
    old, nn_ops.CHUNK_BYTES = nn_ops.CHUNK_BYTES, chunk
    try:
        y = F.conv2d(x, w, b, stride=stride, padding=padding)
        np.testing.assert_allclose(y.numpy(), conv2d_ref(x.numpy(), w.numpy(),
                                                         None if b is None else b.numpy(),
                                                         stride, padding), rtol=1e-10,
                                   atol=1e-10)
        gy = tg.Tensor(rng.standard_normal(y.shape))
        inputs = [x, w] + ([b] if b is not None else [])
        fast = tg.grad(y, inputs, gy, retain_graph=True)               # array version
        recorded = tg.grad(y, inputs, gy, create_graph=True)          # Tensor-op version
    finally:
        nn_ops.CHUNK_BYTES = old
    assert recorded[0].requires_grad and recorded[1].requires_grad    # on the tape (gx via w)
    for a, r in zip(fast, recorded):
        assert not a.requires_grad
        np.testing.assert_allclose(a.numpy(), r.numpy(), rtol=1e-10, atol=1e-10)


def test_the_chunks_cover_the_batch_once_and_respect_the_budget():
    x = np.zeros((10, 3, 8, 8), np.float32)
    w = np.zeros((4, 3, 3, 3), np.float32)
    per_image = 8 * 8 * 27 * 4
    old, nn_ops.CHUNK_BYTES = nn_ops.CHUNK_BYTES, 3 * per_image
    try:
        chunks = nn_ops._chunks(x, w, (8, 8))
    finally:
        nn_ops.CHUNK_BYTES = old
    assert [(s.start, s.stop) for s in chunks] == [(0, 3), (3, 6), (6, 9), (9, 10)]


@pytest.mark.parametrize("needs", [(True, False), (False, True), (True, True)])
def test_only_the_needed_gradients_are_computed(needs):
    rng = np.random.default_rng(0)
    x = tg.Tensor(rng.standard_normal((2, 2, 5, 5)), requires_grad=needs[0])
    w = tg.Tensor(rng.standard_normal((3, 2, 3, 3)), requires_grad=needs[1])
    F.conv2d(x, w).sum().backward()
    assert (x.grad is not None) == needs[0] and (w.grad is not None) == needs[1]
