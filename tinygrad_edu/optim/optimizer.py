"""The optimizer base class: parameter groups, lazy per-parameter state, state_dict.

A subclass writes two small methods:

* ``init_state(p, group)`` -> dict of arrays (and numbers) it keeps for parameter ``p``, created
  on the parameter's device the first time ``p`` has a gradient;
* ``update(p, g, state, group)`` -> changes ``p`` (an array, the parameter's ``.data``) in place
  from its gradient ``g`` (an array) with a few lines of ``xp`` math;

and names what it keeps, so that state can be checked: ``state_arrays`` (arrays shaped like the
parameter), ``state_counters`` (ints >= 0, e.g. ``step``) and ``required_state(group)`` (the
names every parameter's state must have under a group's settings).

Everything else (validating parameters, skipping those without a gradient, frozen ones
included, ``zero_grad``, saving and loading the state) lives here. ``step`` and
``load_state_dict`` check everything they need before the first write, so when they raise,
every parameter and all optimizer state are exactly as before. The update runs on raw arrays,
so it records nothing on the tape; it bumps each parameter's version counter, so a backward
pass through a graph that used the old values raises instead of giving a wrong gradient.

Hyperparameters are turned into Python floats before use: under NumPy 2 a float64 NumPy scalar
(``np.float64(0.1)``) times a float32 array gives float64, a Python float keeps float32.
"""
import functools
import numbers

import numpy as np

from ..backend import device_of, get_xp, to_device
from ..tensor import Tensor, _GradMode, enable_grad


class Optimizer:
    """Base class. ``params`` is an iterable of Tensors, or of dicts ``{"params": [...],
    **options}`` (parameter groups, each with its own hyperparameters; missing ones come from
    ``defaults``)."""

    # The names of the per-parameter state a rule may keep. None (a rule that does not say):
    # loading checks only that arrays of more than 0 dimensions have the parameter's shape.
    state_arrays = None    # arrays with the parameter's shape, dtype and device
    state_counters = ()    # ints >= 0

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}  # parameter (a Tensor, hashed by identity) -> dict of its state
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors or of "
                            "dicts, not a single Tensor; pass [tensor]")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ---- hooks for subclasses -------------------------------------------------------------------
    def check_hyperparameters(self, group):
        """Raise ValueError for a bad value; subclasses extend this (and call super)."""
        self.require(group, "lr", lambda lr: lr >= 0, ">= 0")

    def require(self, group, name, ok, need):
        """Raise a clear ValueError unless ``ok(group[name])``."""
        if name not in group:
            return
        value = group[name]
        try:
            good = not isinstance(value, (str, bool)) and bool(ok(value))
        except TypeError:
            good = False
        if not good:
            raise ValueError(f"{type(self).__name__}: invalid {name} {value!r} (need {need})")

    def required_state(self, group):
        """The names each parameter's state must have under ``group``'s hyperparameters."""
        return ()

    def init_state(self, p, group):
        return {}

    def update(self, p, g, state, group):
        raise NotImplementedError

    # ---- parameter groups ---------------------------------------------------------------------
    def add_param_group(self, group):
        """Add ``{"params": [...], **options}``; options default to the constructor's values.

        Each parameter must be a floating-point leaf Tensor, in one group, once. It may be frozen
        (``requires_grad=False``), as in PyTorch, so ``SGD(model.parameters(), ...)`` works on a
        partly frozen model: a frozen parameter gets no gradient, and ``step`` skips every
        parameter whose ``.grad`` is None (weight decay and momentum do not move it either)."""
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{type(self).__name__}: a parameter group is a dict with a "
                            "'params' key")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            what = f"{type(self).__name__}: parameter {i} of group {len(self.param_groups)}"
            if not isinstance(p, Tensor):
                raise TypeError(f"{what} is a {type(p).__name__}, not a Tensor")
            if p.dtype.kind != "f":
                raise ValueError(f"{what} has dtype {p.dtype}; only floating-point tensors can "
                                 "be optimized")
            if not p.is_leaf:
                raise ValueError(f"{what} (shape {p.shape}) is not a leaf: it was computed by "
                                 f"{type(p.grad_fn).__name__}, so it has no .grad to follow")
            if id(p) in seen:
                raise ValueError(f"{what} (shape {p.shape}) appears more than once; each "
                                 "parameter may be in one group, once")
            seen.add(id(p))
        group = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}}
        missing = [k for k, v in group.items() if v is _required]
        if missing:
            raise ValueError(f"{type(self).__name__}: parameter group needs a value for {missing}")
        self.check_hyperparameters(group)
        group["params"] = params
        self.param_groups.append(group)

    # ---- the training step --------------------------------------------------------------------
    def zero_grad(self, set_to_none=True):
        """Forget every parameter's gradient (``.grad = None``, or zeros with set_to_none=False).

        A frozen parameter (``requires_grad=False``) always gets None, so ``step`` skips it.
        (PyTorch zeros its gradient with set_to_none=False, and then momentum and weight decay
        still move it; here a frozen parameter stays as it is.)"""
        if _GradMode.recorder is not None:  # tg.compile: do it again on every replay
            return _GradMode.recorder.effect(lambda: self._zero_grad(set_to_none),
                                             f"{type(self).__name__}.zero_grad", ())
        self._zero_grad(set_to_none)

    def _zero_grad(self, set_to_none):
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None or not p.requires_grad:
                    p.grad = None
                else:  # a new array: a leaf's grad may share memory with another one's
                    p.grad = Tensor._wrap(get_xp(p.data).zeros_like(p.data))

    def step(self, closure=None):
        """Update every parameter that has a gradient. ``closure``, if given, recomputes the loss
        (zero_grad, forward, backward) and its return value is returned.

        First every group's hyperparameters, every gradient (a Tensor with its parameter's
        shape, dtype and device) and every existing state (the names ``required_state`` asks
        for, arrays with the parameter's shape, dtype and device) are checked; a problem raises
        ValueError naming the parameter, before any parameter or state has changed.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        if _GradMode.recorder is not None:  # tg.compile: the update's Python runs in every
            params = [p for group in self.param_groups for p in group["params"]]  # replay
            _GradMode.recorder.effect(functools.partial(self._step, fused=True),
                                      f"{type(self).__name__}.step", params)
        else:
            self._step()
        return loss

    def _step(self, fused=False):
        """The update of every parameter with a gradient. ``fused`` (in tg.compile's replays):
        each rule's arithmetic as one generated kernel (ops/fusion.py), same bits."""
        for p, group in self._check_step():
            if p not in self.state:  # lazily, on the parameter's device
                self.state[p] = self.init_state(p.data, group)
            if not (fused and type(self) not in _NOT_FUSABLE and isinstance(p.data, np.ndarray)
                    and _fused_update(self, p, group)):
                self.update(p.data, p.grad.data, self.state[p], group)
            p._version[0] += 1

    def _check_step(self):
        """[(parameter, group)] for the parameters with a gradient, once all is found right."""
        name, todo = f"{type(self).__name__}.step", []
        for gi, group in enumerate(self.param_groups):
            missing = [k for k in self.defaults if k not in group]
            if missing:
                raise ValueError(f"{name}: group {gi} has no {missing}; nothing was changed")
            try:
                self.check_hyperparameters(group)
            except ValueError as e:  # e.g. a schedule or a hand edit left a bad value
                raise ValueError(f"{name}: group {gi}: {e}; nothing was changed") from None
            for i, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                what = _describe(p, i, gi)
                g = p.grad
                if not isinstance(g, Tensor):
                    raise ValueError(f"{name}: the .grad of {what} is a {type(g).__name__}, not "
                                     "a Tensor; nothing was changed")
                if g.shape != p.shape or g.dtype != p.dtype or g.device != p.device:
                    raise ValueError(
                        f"{name}: {what} of shape {p.shape}, dtype {p.dtype} on {p.device} has "
                        f"a gradient of shape {g.shape}, dtype {g.dtype} on {g.device}; nothing "
                        "was changed")
                if p in self.state:
                    problems = self._state_problems(self.state[p], p, group, exact=True)
                    if problems:
                        raise ValueError(f"{name}: the state of {what} " + "; ".join(problems)
                                         + "; nothing was changed")
                todo.append((p, group))
        return todo

    def _state_problems(self, entry, p, group, exact):
        """What is wrong with one parameter's state ``entry`` under ``group`` (a list of phrases).
        Arrays must have the parameter's shape and a floating dtype; with ``exact`` (a state in
        use, not one about to be converted) also its dtype and device."""
        if not isinstance(entry, dict):
            return [f"is a {type(entry).__name__}, not a dict"]
        problems = [f"has no {k!r}" for k in self.required_state(group) if k not in entry]
        for k, v in entry.items():
            is_array = hasattr(v, "shape") and hasattr(v, "dtype")
            if self.state_arrays is None:  # a rule that does not name its state
                if is_array and v.ndim > 0 and tuple(v.shape) != p.shape:
                    problems.append(f"{k!r} has shape {tuple(v.shape)}, the parameter has shape "
                                    f"{p.shape}")
            elif k in self.state_counters:
                if not _is_count(v):
                    problems.append(f"{k!r} is {v!r}, not an int >= 0")
            elif k not in self.state_arrays:
                known = sorted(self.state_arrays + self.state_counters)
                problems.append(f"has an unknown {k!r} ({type(self).__name__} keeps {known})")
            elif not is_array:
                problems.append(f"{k!r} is a {type(v).__name__}, not an array")
            elif tuple(v.shape) != p.shape:
                problems.append(f"{k!r} has shape {tuple(v.shape)}, the parameter has shape "
                                f"{p.shape}")
            elif v.dtype.kind != "f":
                problems.append(f"{k!r} has dtype {v.dtype}, not a floating one")
            elif exact and (v.dtype != p.dtype or device_of(v) != p.device):
                problems.append(f"{k!r} is {v.dtype} on {device_of(v)}, the parameter {p.dtype} "
                                f"on {p.device} (move the optimizer state with the model)")
        return problems

    # ---- saving and resuming ------------------------------------------------------------------
    def state_dict(self):
        """``{"state": {index: {name: array or number}}, "param_groups": [{hyperparameters,
        "params": [indices]}]}``. Parameters are numbered in group order, so the dict can be
        loaded into a fresh optimizer built over the same parameters. Arrays are copies."""
        state, groups, index = {}, [], 0
        for group in self.param_groups:
            indices = []
            for p in group["params"]:
                if p in self.state:
                    state[index] = {k: v.copy() if hasattr(v, "shape") else v
                                    for k, v in self.state[p].items()}
                indices.append(index)
                index += 1
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": indices})
        return {"state": state, "param_groups": groups}

    def _validate_state_dict(self, state_dict):
        """Check ``state_dict`` against this optimizer, changing nothing; raise ValueError naming
        each problem (see :meth:`load_state_dict`). Returns what loading applies: the new
        hyperparameters of each group and {parameter: state}, with arrays not yet converted."""
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(f"{name}: expected a dict with keys 'state' and 'param_groups'")
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(saved_groups, (list, tuple)) or not all(
                isinstance(g, dict) and isinstance(g.get("params"), (list, tuple))
                for g in saved_groups):
            raise ValueError(f"{name}: 'param_groups' must be a list of dicts, each with a "
                             "list 'params'")
        if not isinstance(saved_state, dict):
            raise ValueError(f"{name}: 'state' must be a dict, not {type(saved_state).__name__}")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}: the state dict has {len(saved_groups)} parameter groups, "
                             f"this optimizer has {len(self.param_groups)}")
        problems, new_groups, by_index = [], [], {}
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                problems.append(f"group {i} has {len(saved['params'])} parameters in the state "
                                f"dict and {len(group['params'])} in this optimizer")
                continue
            keys, ours = set(saved) - {"params"}, set(group) - {"params"}
            if keys != ours:
                problems.append(f"group {i} has hyperparameters {sorted(keys)} in the state dict "
                                f"but {sorted(ours)} here (another optimizer's state?)")
                continue
            new = {k: _like(group[k], saved[k]) for k in keys}
            try:
                self.check_hyperparameters(new)
            except ValueError as e:
                problems.append(f"group {i}: {e}")
            new_groups.append(new)
            for j, p in zip(saved["params"], group["params"]):
                index = _index(j)
                if index is None or index in by_index:
                    problems.append(f"group {i} lists parameter index {j!r}, which is "
                                    + ("not an int" if index is None else "listed twice"))
                else:
                    by_index[index] = (p, new)  # the new hyperparameters say what state it needs
        if problems:
            raise ValueError(f"{name}: nothing was loaded because of:\n  " + "\n  ".join(problems))
        new_state = {}
        for j, entry in saved_state.items():
            p, group = by_index.get(_index(j), (None, None))
            if p is None:
                problems.append(f"state for parameter {j!r}, which no group lists")
            elif p in new_state:
                problems.append(f"two states for parameter {_index(j)} (keys {j!r} and another)")
            else:
                found = self._state_problems(entry, p, group, exact=False)
                problems += [f"state of parameter {j!r} {x}" for x in found]
                if not found:
                    new_state[p] = {k: self._loaded_value(k, v, p) for k, v in entry.items()}
        if problems:
            raise ValueError(f"{name}: nothing was loaded because of:\n  " + "\n  ".join(problems))
        return new_groups, new_state

    def _loaded_value(self, key, v, p):
        """A state value as a file gave it back: counters and other numbers that went through a
        file as 0-d arrays become Python numbers; arrays stay arrays (0-d ones of a 0-d
        parameter too)."""
        if not hasattr(v, "shape"):
            return v
        if key in self.state_counters:
            return int(v)
        if self.state_arrays is not None and key in self.state_arrays:
            return v
        return v.item() if v.ndim == 0 and p.ndim > 0 else v

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and per-parameter state saved by :meth:`state_dict`.

        Everything is checked first, by :meth:`_validate_state_dict`: the number of groups and
        of parameters in each, hyperparameter names and values, parameter indices (ints, each
        listed once, every state for a listed one), and each state against its parameter: the
        names the rule needs under the loaded hyperparameters (Adam's ``exp_avg_sq``), no names
        it does not know, arrays of the parameter's shape with a floating dtype, counters that
        are ints >= 0. A problem raises ValueError naming the key; then nothing was changed.
        Arrays are copied to each parameter's device and dtype; keys may be ints or strings
        (a file format may have turned them into strings).
        """
        new_groups, new_state = self._validate_state_dict(state_dict)
        # convert (copy) every array before changing anything, so a failed copy changes nothing
        new_state = {p: {k: to_device(v, p.device).astype(p.dtype, copy=True)
                         if hasattr(v, "shape") else v for k, v in entry.items()}
                     for p, entry in new_state.items()}
        for group, new in zip(self.param_groups, new_groups):
            group.update(new)
        self.state = new_state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            options = ", ".join(f"{k}={v}" for k, v in group.items() if k != "params")
            lines.append(f"  group {i}: {len(group['params'])} parameters, {options}")
        return "\n".join(lines + [")"])


class _Required:
    """Marks a hyperparameter without a default (SGD's lr)."""

    def __repr__(self):
        return "<required>"


_required = _Required()


def _describe(p, i, group_index):
    name = f" ({p.name!r})" if p.name else ""
    return f"parameter {i} of group {group_index}{name}"


def _is_count(v):
    """An int >= 0: a Python or NumPy int, or a 0-d integer array (as a file gives it back)."""
    if hasattr(v, "dtype") and getattr(v, "ndim", 0) == 0 and v.dtype.kind in "iu":
        v = v.item()
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0


def _index(j):
    """A parameter index as an int (a file format may give "3" or a NumPy int), else None."""
    if isinstance(j, str) and j.isascii() and j.isdigit():
        return int(j)
    if isinstance(j, numbers.Integral) and not isinstance(j, bool):
        return int(j)
    return None


def _like(current, loaded):
    """A loaded hyperparameter in the type of the current one (a file format may turn tuples
    into lists and numbers into 0-d arrays)."""
    if hasattr(loaded, "shape") and loaded.ndim == 0:
        loaded = loaded.item()
    if isinstance(current, tuple) and isinstance(loaded, (list, tuple)):
        if len(loaded) != len(current):  # keep every element, so the check sees the length
            return tuple(loaded)
        return tuple(_like(c, x) for c, x in zip(current, loaded))
    return loaded



_NOT_FUSABLE = set()  # optimizer classes whose update rule the fusion could not trace


def _fused_update(optimizer, p, group):
    from ..ops.fusion import fused_update
    if fused_update(optimizer.update, p.data, p.grad.data, optimizer.state[p], group):
        return True
    _NOT_FUSABLE.add(type(optimizer))
    return False
