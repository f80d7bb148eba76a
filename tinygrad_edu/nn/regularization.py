"""Weight penalties added to the loss, Lasagne's ``lasagne.regularization``.

They are built from Tensor ops, so they are differentiated with the loss::

    loss = F.cross_entropy(model(x), y) + 1e-4 * l2_penalty([layer.weight for layer in layers])
    loss.backward()
"""
from ..tensor import Tensor


def _penalty(tensors, reduction, term, name):
    if reduction not in ("mean", "sum"):
        raise ValueError(f"{name}: reduction must be 'mean' or 'sum', got {reduction!r}")
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if not tensors:
        raise ValueError(f"{name}: no tensors given")
    total = None
    for w in tensors:
        t = term(w)
        t = t.mean() if reduction == "mean" else t.sum()
        total = t if total is None else total + t
    return total


def l1_penalty(tensors, reduction="mean"):
    """``sum over tensors W of mean(|W|)`` (``reduction="sum"``: of sum(|W|)), a 0-d Tensor.

    The Theano tutorials add ``l1 * mean|W| + l2 * mean W^2`` to the loss, which is
    ``l1 * l1_penalty(Ws) + l2 * l2_penalty(Ws)``; ``lasagne.regularization.l1`` sums instead
    (``reduction="sum"``). The gradient of |w| at 0 is 0.
    """
    return _penalty(tensors, reduction, lambda w: w.abs(), "l1_penalty")


def l2_penalty(tensors, reduction="mean"):
    """``sum over tensors W of mean(W^2)`` (``reduction="sum"``: of sum(W^2), as
    ``lasagne.regularization.l2``), a 0-d Tensor. There is no factor 1/2: the gradient of
    ``c * l2_penalty(W, "sum")`` is ``2 c W``, so it matches an optimizer's
    ``weight_decay=2c`` (see :class:`tinygrad_edu.optim.SGD`).
    """
    return _penalty(tensors, reduction, lambda w: w * w, "l2_penalty")


__all__ = ["l1_penalty", "l2_penalty"]
