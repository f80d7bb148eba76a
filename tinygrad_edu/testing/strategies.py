"""Hypothesis strategies for testing ops: shapes, broadcastable shapes, matmul shapes, and arrays
or Tensors whose values stay in a safe domain for the op under test.

A gradient check compares backward() with central differences, which are only meaningful where
the function is smooth: log and sqrt need positive inputs, exp a bounded one, relu and abs inputs
away from 0, and max/min/maximum inputs without ties. ``domain`` picks such a range:

=================  ==============================  ===============================
domain             values                          for
=================  ==============================  ===============================
"real"             [-3, 3]                         most ops
"positive"         [0.5, 3]                        log, sqrt, the base of pow
"nonzero"          [-3, -0.1] or [0.1, 3]          abs, relu, a denominator
"away_from_zero"   same as "nonzero"
"bounded_exp"      [-4, 4]                         exp, anything exponential
"distinct"         pairwise >= 0.05 apart          max, min, maximum, argmax, sort
=================  ==============================  ===============================

Example::

    from hypothesis import given
    import tinygrad_edu as tg
    from tinygrad_edu.testing import strategies as tst

    @given(tst.tensors(shape=tst.shapes(max_dims=3, max_side=3), domain="positive"))
    def test_log_gradient(x):
        assert tg.gradcheck(tg.log, [x])

    @given(tst.broadcastable_shapes(n=2).flatmap(tst.separated_arrays))
    def test_maximum_gradient(arrays):
        a, b = (tg.Tensor(v, requires_grad=True) for v in arrays)
        assert tg.gradcheck(tg.maximum, [a, b])

Hypothesis is a test dependency only (``pip install 'tinygrad_edu[test]'``); importing
``tinygrad_edu`` never imports it, this module does.
"""
import math

import numpy as np

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("tinygrad_edu.testing.strategies needs Hypothesis, which is not installed: "
                      "pip install 'tinygrad_edu[test]' (or pip install hypothesis)") from e

from ..tensor import Tensor

DOMAINS = {
    "real": ((-3.0, 3.0),),
    "positive": ((0.5, 3.0),),
    "nonzero": ((-3.0, -0.1), (0.1, 3.0)),
    "away_from_zero": ((-3.0, -0.1), (0.1, 3.0)),
    "bounded_exp": ((-4.0, 4.0),),
}
DISTINCT_SPACING = 0.1  # grid step of "distinct" values; jitter keeps neighbours >= half apart

__all__ = ["DOMAINS", "elements", "scalars", "shapes", "broadcastable_shapes", "matmul_shapes",
           "arrays", "separated_arrays", "distinct_arrays", "tensors", "classification"]


def _intervals(domain):
    if isinstance(domain, str):
        if domain not in DOMAINS:
            raise ValueError(f"unknown domain {domain!r}: expected one of {sorted(DOMAINS)} "
                             "or a sequence of (low, high) intervals")
        return DOMAINS[domain]
    return tuple((float(lo), float(hi)) for lo, hi in domain)


def elements(domain="real"):
    """Python floats from a named domain (see the table above) or from a union of intervals,
    e.g. ``[(-3, -1.1), (-0.9, 0.9), (1.1, 3)]`` to stay away from clip's bounds at +-1."""
    return st.one_of([st.floats(lo, hi, allow_nan=False, allow_infinity=False,
                                allow_subnormal=False) for lo, hi in _intervals(domain)])


def scalars(domain="real"):
    """A Python float from ``domain``: the scalar operand of ``t * 2.5`` or ``2.5 ** t``."""
    return elements(domain)


def shapes(min_dims=0, max_dims=4, min_side=1, max_side=5):
    """Array shapes, 0-d ``()`` included by default."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcastable_shapes(n=2, min_dims=0, max_dims=4, min_side=1, max_side=5):
    """A tuple of ``n`` shapes that broadcast together (NumPy's rules); their common shape is
    ``np.broadcast_shapes(*shapes)``."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=n, min_dims=min_dims, max_dims=max_dims, min_side=min_side,
        max_side=max_side).map(lambda b: b.input_shapes)


def matmul_shapes(max_batch_dims=2, max_side=4):
    """A pair of shapes that ``a @ b`` accepts: 1-D operands, 2-D and batched ones with
    broadcasting batch dims (the gufunc signature ``(m?,n),(n,p?)->(m?,p?)``)."""
    return hnp.mutually_broadcastable_shapes(
        signature=np.matmul.signature, max_dims=max_batch_dims,
        max_side=max_side).map(lambda b: b.input_shapes)


def _default_elements(dtype, domain):
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind in "iu":
        return st.integers(0 if dtype.kind == "u" else -5, 5)
    return elements(domain)


def arrays(shape, dtype=np.float64, elements=None, domain="real"):
    """NumPy arrays of ``shape`` (a tuple or a strategy) with values from ``domain``, or from
    the ``elements`` strategy when given. ``domain="distinct"`` gives well separated values.

    Floats are drawn in float64 and then converted, so a domain bound like 0.1 needs no exact
    float32 spelling."""
    dtype = np.dtype(dtype)
    if domain == "distinct" and elements is None:
        return distinct_arrays(shape, dtype)
    if elements is None:
        elements = _default_elements(dtype, domain)
    if dtype.kind == "f" and dtype != np.float64:
        return hnp.arrays(np.float64, shape, elements=elements).map(lambda a: a.astype(dtype))
    return hnp.arrays(dtype, shape, elements=elements)


@st.composite
def separated_arrays(draw, shapes, dtype=np.float64, spacing=DISTINCT_SPACING, jitter=0.25):
    """A tuple of arrays, one per shape in ``shapes``, whose values are ALL pairwise at least
    ``(1 - 2 jitter) * spacing`` apart, also across arrays: a random permutation of a grid with
    step ``spacing`` centred on 0, plus a jitter of up to ``jitter * spacing`` per value.

    Use it for max, min, maximum and argmax: without ties or near-ties the gradient is unique
    and a perturbation of 1e-6 never swaps the winner, so a check cannot be flaky.
    """
    if not 0 <= jitter < 0.5:
        raise ValueError(f"separated_arrays: jitter must be in [0, 0.5), got {jitter}")
    shapes = [tuple(s) for s in shapes]
    sizes = [math.prod(s) for s in shapes]
    n = sum(sizes)
    order = np.asarray(draw(st.permutations(range(n))), dtype=np.float64)
    noise = draw(hnp.arrays(np.float64, n, elements=st.floats(-jitter, jitter)))
    values = (order - (n - 1) / 2 + noise) * spacing
    out, start = [], 0
    for shape, size in zip(shapes, sizes):
        out.append(values[start:start + size].reshape(shape).astype(dtype))
        start += size
    return tuple(out)


def distinct_arrays(shape, dtype=np.float64, spacing=DISTINCT_SPACING):
    """One array of ``shape`` (a tuple or a strategy) with well separated values."""
    if isinstance(shape, st.SearchStrategy):
        return shape.flatmap(lambda s: distinct_arrays(s, dtype, spacing))
    return separated_arrays((shape,), dtype, spacing).map(lambda arrays: arrays[0])


@st.composite
def tensors(draw, shape=None, dtype=np.float64, requires_grad=True, domain="real",
            elements=None):
    """Tensors of ``shape`` (a tuple or a strategy; default :func:`shapes`) with values from
    ``domain`` (see the module docstring). ``requires_grad`` applies to float dtypes only.
    The default float64 is what :func:`tinygrad_edu.gradcheck` needs."""
    dtype = np.dtype(dtype)
    data = draw(arrays(shapes() if shape is None else shape, dtype, elements, domain))
    return Tensor(data, requires_grad=requires_grad and dtype.kind == "f")


@st.composite
def classification(draw, max_n=4, max_k=4, dtype=np.float64):
    """The inputs of a classification loss: ``(logits, labels)`` NumPy arrays, logits (N, K)
    from the "real" domain and int64 labels (N,) in [0, K), with 1 <= N <= max_n, 1 <= K <= max_k."""
    n, k = draw(st.integers(1, max_n)), draw(st.integers(1, max_k))
    logits = draw(arrays((n, k), dtype))
    return logits, draw(arrays((n,), np.int64, elements=st.integers(0, k - 1)))
