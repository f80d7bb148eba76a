"""Gradient clipping, PyTorch's ``torch.nn.utils``. (Weight penalties are in
:mod:`tinygrad_edu.nn.regularization`.)

Clipping acts on the ``.grad`` of parameters between ``backward()`` and ``optimizer.step()``;
it replaces each ``.grad`` by a new tensor instead of scaling it in place, so nothing that
shares memory with a gradient changes::

    loss.backward()
    clip_grad_norm_(model.parameters(), max_norm=5.0)
    optimizer.step()
"""
import functools
import math

from ..backend import get_xp
from ..tensor import Tensor, _GradMode


def _params(parameters):
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def _norm(arrays, norm_type):
    """The norm of all arrays taken together, as a Python float."""
    if norm_type == math.inf:
        return max(float(get_xp(a).abs(a).max()) if a.size else 0.0 for a in arrays)
    if norm_type == 2.0:  # the common case without abs() and power
        return math.sqrt(sum(float(get_xp(a).vdot(a.ravel(), a.ravel())) for a in arrays))
    total = sum(float((get_xp(a).abs(a) ** norm_type).sum()) for a in arrays)
    return total ** (1.0 / norm_type)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Rescale all gradients together so that their joint norm is at most ``max_norm``.

    The total norm is ``(sum over parameters and elements of |g|^norm_type)^(1/norm_type)``, the
    norm of all gradients concatenated into one vector (``norm_type=math.inf``: the largest |g|).
    When it exceeds max_norm every gradient is multiplied by ``max_norm / (total + 1e-6)``, so the
    direction of the update is kept (Pascanu et al., "On the difficulty of training recurrent
    neural networks", 2013). Returns the total norm before clipping, a Python float.
    Parameters without a gradient are skipped. An inf gradient makes the scale 0, so finite
    gradients become 0 and infinite ones NaN (as in PyTorch); a NaN one leaves all gradients as
    they are. Pass ``error_if_nonfinite=True`` to raise instead.
    ``lasagne.updates.total_norm_constraint`` does the same with epsilon 1e-7.
    Inside a function compiled by ``tg.compile`` the clipping runs again in every replay (the
    norm is computed afresh; the returned float is the recorded call's).
    """
    max_norm, norm_type = float(max_norm), float(norm_type)
    if max_norm < 0 or norm_type <= 0:
        raise ValueError(f"clip_grad_norm_: need max_norm >= 0 and norm_type > 0, got "
                         f"{max_norm}, {norm_type}")
    params = _params(parameters)
    clip = functools.partial(_clip_norm, params, max_norm, norm_type, error_if_nonfinite)
    return _run(clip, "clip_grad_norm_", params)


def _clip_norm(params, max_norm, norm_type, error_if_nonfinite):
    params = [p for p in params if p.grad is not None]
    if not params:
        return 0.0
    total = _norm([p.grad.data for p in params], norm_type)
    if not math.isfinite(total) and error_if_nonfinite:
        raise RuntimeError(f"clip_grad_norm_: the total norm of the gradients is {total}; "
                           "pass error_if_nonfinite=False to clip anyway")
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for p in params:
            p.grad = Tensor._wrap(p.grad.data * scale)  # a Python float keeps float32
    return total


def clip_grad_value_(parameters, clip_value):
    """Clip every gradient element into ``[-clip_value, clip_value]`` (new gradient arrays)."""
    clip_value = float(clip_value)
    if clip_value < 0:
        raise ValueError(f"clip_grad_value_: clip_value must be >= 0, got {clip_value}")
    params = _params(parameters)
    _run(functools.partial(_clip_value, params, clip_value), "clip_grad_value_", params)


def _clip_value(params, clip_value):
    for p in params:
        if p.grad is not None:
            p.grad = Tensor._wrap(get_xp(p.grad.data).clip(p.grad.data, -clip_value, clip_value))


def _run(fn, label, params):
    """``fn()``; while tg.compile records, noted as an effect that every replay runs again."""
    if _GradMode.recorder is not None:
        return _GradMode.recorder.effect(fn, label, params, regrads=True)
    return fn()


__all__ = ["clip_grad_norm_", "clip_grad_value_"]
