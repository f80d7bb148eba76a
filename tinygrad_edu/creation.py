"""Tensor constructors (from data: ``tensor``, ``from_numpy``, ``from_dlpack``; by shape and
value: ``zeros``, ``randn``, ...) and the random number generators.

Defaults follow PyTorch: float32, on the CPU. ``manual_seed(n)`` makes every random result
(``randn``, ``rand``, dropout masks, initializers, and the shuffling of a ``DataLoader`` that has
no seed of its own) reproducible, on both devices. ``get_rng_state()`` and ``set_rng_state()``
save and restore where those generators are, so an interrupted run can continue exactly:

    state = tg.get_rng_state()          # plain dicts, ints and arrays: tg.save can store it
    ...
    tg.set_rng_state(state)             # the same random numbers again, from here on
"""
import copy
import operator

import numpy as np

from .backend import as_array, check_device, get_xp
from .tensor import Tensor, array_call

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


# ---- saving and restoring the generators ---------------------------------------------------------
# NumPy's state is ``bit_generator.state``: a dict of str, ints (PCG64's are 128-bit, which JSON,
# and so tg.save, stores exactly) and, for MT19937, an array. CuPy's cuRAND generators expose no
# state; their per-thread states live in the device array ``bit_generator._state``, which is
# copied to the host. That is CuPy's private attribute, so it is checked for, not assumed.

def _state_of(device, g):
    if device == "cpu":
        return copy.deepcopy(g.bit_generator.state)
    states = getattr(g.bit_generator, "_state", None)
    if states is None:
        raise NotImplementedError("get_rng_state: this CuPy version does not expose the state of "
                                  f"its {type(g.bit_generator).__name__} generator")
    return {"bit_generator": type(g.bit_generator).__name__, "state": states.get()}


def _generator_from(device, state):
    """A new generator of ``device`` in ``state``; raises ValueError/TypeError on a bad state."""
    if not isinstance(state, dict) or not isinstance(state.get("bit_generator"), str):
        raise ValueError(f"set_rng_state: the {device} state must be a dict with a "
                         f"'bit_generator' name, got {str(state)[:60]}")
    xp = get_xp(device)
    kind = getattr(xp.random, state["bit_generator"], None)
    if not (isinstance(kind, type) and issubclass(kind, xp.random.BitGenerator)):
        raise ValueError(f"set_rng_state: {xp.__name__}.random has no bit generator "
                         f"{state['bit_generator']!r}")
    if device == "cpu":
        bits = kind()
        try:
            bits.state = state  # NumPy checks the dict's values, not that its keys are there
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"set_rng_state: not a valid {state['bit_generator']} state "
                             f"({type(e).__name__}: {e})") from None
        return np.random.Generator(bits)
    bits = kind(0)
    saved = state.get("state")
    if getattr(bits, "_state", None) is None or getattr(saved, "shape", None) != bits._state.shape:
        raise ValueError(f"set_rng_state: the saved {state['bit_generator']} state does not fit "
                         "this GPU's generator (another GPU model or CuPy version?)")
    bits._state[...] = xp.asarray(saved)
    return xp.random.Generator(bits)


def get_rng_state():
    """Where every random generator of the engine is: ``{"seed": the last manual_seed (or None),
    "generators": {device: state}}``, for the devices whose generator has been used (the others
    start from the seed when first used, before and after a restore alike)."""
    return {"seed": _seed,
            "generators": {d: _state_of(d, g) for d, g in _generators.items()}}


def set_rng_state(state):
    """Put the generators back where :func:`get_rng_state` found them (after ``tg.load`` too).
    The whole state is checked first; a bad one raises ValueError and changes nothing."""
    global _seed
    seed, generators = _parse_rng_state(state)
    _seed = seed
    _generators.clear()
    _generators.update(generators)


def _parse_rng_state(state):
    """(seed, {device: new generator}) for a state of get_rng_state; changes nothing."""
    if not isinstance(state, dict) or set(state) != {"seed", "generators"}:
        raise ValueError("set_rng_state: expected the dict of get_rng_state(), with keys 'seed' "
                         f"and 'generators', got {str(state)[:80]}")
    seed, saved = state["seed"], state["generators"]
    if seed is not None:
        try:
            seed = operator.index(seed)
        except TypeError:
            raise ValueError(f"set_rng_state: seed must be an int or None, got {seed!r}") from None
    if not isinstance(saved, dict):
        raise ValueError(f"set_rng_state: 'generators' must be a dict device -> state, got "
                         f"{type(saved).__name__}")
    return seed, {check_device(d): _generator_from(check_device(d), s) for d, s in saved.items()}


# ---- tensors from data ----------------------------------------------------------------------
def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new Tensor holding a copy of ``data`` (``torch.tensor``); the same rules as ``Tensor``."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)


def from_numpy(array):
    """A Tensor sharing memory with a NumPy array (``torch.from_numpy``): a change to one is
    seen in the other, an optimizer step included."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor._wrap(as_array(array, None, None, copy=False))


def from_dlpack(obj):
    """A Tensor sharing memory with any DLPack producer (a NumPy, CuPy or PyTorch tensor)."""
    device_type = obj.__dlpack_device__()[0]
    xp = np if device_type == 1 else get_xp("cuda")  # 1 is DLPack's kDLCPU
    return Tensor._wrap(as_array(xp.from_dlpack(obj), None, None, copy=False))


def _shape(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def _make(array, requires_grad):
    """Wrap an array made here (nobody else holds it), without the copy ``Tensor()`` makes."""
    if array.dtype.kind not in "fiub":
        raise TypeError(f"cannot make a Tensor from an array of dtype {array.dtype}")
    t = Tensor._wrap(array)
    return t.requires_grad_() if requires_grad else t


# Each constructor makes its array through array_call, so that inside a function compiled by
# tg.compile every replay makes it again: a fresh random draw, fresh zeros (never an array that an
# earlier call's result still holds).
def _zeros(shape, dtype, device):  # (calloc: pages of zeros, nothing written; np.full writes)
    return get_xp(device).zeros(shape, dtype=dtype)


def _filled(shape, value, dtype, device):
    return get_xp(device).full(shape, value, dtype=dtype)


def _eye(n, m, dtype, device):
    return get_xp(device).eye(n, m, dtype=dtype)


def _arange(start, stop, step, dtype, device):
    return get_xp(device).arange(start, stop, step, dtype=dtype)


def _normal(shape, dtype, device):
    return generator(device).standard_normal(shape, dtype=np.float64).astype(dtype)


def _uniform(shape, dtype, device):
    return generator(device).random(shape, dtype=np.float64).astype(dtype)


def zeros(*shape, dtype=np.float32, device="cpu", requires_grad=False):
    return _make(array_call(_zeros, shape=_shape(shape), dtype=dtype, device=device),
                 requires_grad)


def ones(*shape, dtype=np.float32, device="cpu", requires_grad=False):
    return full(_shape(shape), 1, dtype, device, requires_grad)


def full(shape, fill_value, dtype=np.float32, device="cpu", requires_grad=False):
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return _make(array_call(_filled, shape=shape, value=fill_value, dtype=dtype, device=device),
                 requires_grad)


def eye(n, m=None, dtype=np.float32, device="cpu", requires_grad=False):
    return _make(array_call(_eye, n=n, m=m, dtype=dtype, device=device), requires_grad)


def arange(start, stop=None, step=1, dtype=None, device="cpu", requires_grad=False):
    """Like ``np.arange``; int64 for integer arguments, float32 otherwise."""
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        is_int = all(isinstance(v, (int, np.integer)) for v in (start, stop, step))
        dtype = np.int64 if is_int else np.float32
    return _make(array_call(_arange, start=start, stop=stop, step=step, dtype=dtype,
                            device=device), requires_grad)


def randn(*shape, dtype=np.float32, device="cpu", requires_grad=False):
    """Standard normal samples."""
    return _make(array_call(_normal, shape=_shape(shape), dtype=dtype, device=device),
                 requires_grad)


def rand(*shape, dtype=np.float32, device="cpu", requires_grad=False):
    """Uniform samples in [0, 1)."""
    return _make(array_call(_uniform, shape=_shape(shape), dtype=dtype, device=device),
                 requires_grad)


def _like(fn):
    def like(t, *args, dtype=None, device=None, requires_grad=False):
        return fn(t.shape, *args, dtype=dtype or t.dtype, device=device or t.device,
                  requires_grad=requires_grad)
    like.__name__ = fn.__name__ + "_like"
    like.__doc__ = f"``{fn.__name__}`` with the shape, dtype and device of a given tensor."
    return like


zeros_like, ones_like, full_like = _like(zeros), _like(ones), _like(full)
randn_like, rand_like = _like(randn), _like(rand)
