"""Tensor constructors and the random number generator.

Defaults follow PyTorch: float32, on the CPU. ``manual_seed(n)`` makes every random result
(``randn``, ``rand``, dropout masks, initializers) reproducible, on both devices.
"""
import numpy as np

from .backend import check_device, get_xp
from .tensor import Tensor

_seed = None
_generators = {}  # device -> random generator of that device's array module


def manual_seed(seed):
    """Seed the generators of every device."""
    global _seed
    _seed = int(seed)
    _generators.clear()


def generator(device="cpu"):
    """The random generator of a device (NumPy's or CuPy's ``default_rng``)."""
    device = check_device(device)
    if device not in _generators:
        _generators[device] = get_xp(device).random.default_rng(_seed)
    return _generators[device]


def _shape(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def _make(array, requires_grad, name=None):
    return Tensor(array, requires_grad=requires_grad, name=name)


def zeros(*shape, dtype=np.float32, device="cpu", requires_grad=False):
    return _make(get_xp(device).zeros(_shape(shape), dtype=dtype), requires_grad)


def ones(*shape, dtype=np.float32, device="cpu", requires_grad=False):
    return _make(get_xp(device).ones(_shape(shape), dtype=dtype), requires_grad)


def full(shape, fill_value, dtype=np.float32, device="cpu", requires_grad=False):
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return _make(get_xp(device).full(shape, fill_value, dtype=dtype), requires_grad)


def eye(n, m=None, dtype=np.float32, device="cpu", requires_grad=False):
    return _make(get_xp(device).eye(n, m, dtype=dtype), requires_grad)


def arange(start, stop=None, step=1, dtype=None, device="cpu", requires_grad=False):
    """Like ``np.arange``; int64 for integer arguments, float32 otherwise."""
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        is_int = all(isinstance(v, (int, np.integer)) for v in (start, stop, step))
        dtype = np.int64 if is_int else np.float32
    return _make(get_xp(device).arange(start, stop, step, dtype=dtype), requires_grad)


def randn(*shape, dtype=np.float32, device="cpu", requires_grad=False):
    """Standard normal samples."""
    a = generator(device).standard_normal(_shape(shape), dtype=np.float64).astype(dtype)
    return _make(a, requires_grad)


def rand(*shape, dtype=np.float32, device="cpu", requires_grad=False):
    """Uniform samples in [0, 1)."""
    a = generator(device).random(_shape(shape), dtype=np.float64).astype(dtype)
    return _make(a, requires_grad)


def _like(fn):
    def like(t, *args, dtype=None, device=None, requires_grad=False):
        return fn(t.shape, *args, dtype=dtype or t.dtype, device=device or t.device,
                  requires_grad=requires_grad)
    like.__name__ = fn.__name__ + "_like"
    like.__doc__ = f"``{fn.__name__}`` with the shape, dtype and device of a given tensor."
    return like


zeros_like, ones_like, full_like = _like(zeros), _like(ones), _like(full)
randn_like, rand_like = _like(randn), _like(rand)
