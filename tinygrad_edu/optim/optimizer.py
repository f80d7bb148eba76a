"""The optimizer base class: parameter groups, lazy per-parameter state, state_dict.

A subclass writes two small methods:

* ``init_state(p, group)`` -> dict of arrays (and numbers) it keeps for parameter ``p``, created
  on the parameter's device the first time ``p`` has a gradient;
* ``update(p, g, state, group)`` -> changes ``p`` (an array, the parameter's ``.data``) in place
  from its gradient ``g`` (an array) with a few lines of ``xp`` math.

Everything else (validating parameters, skipping those without a gradient, ``zero_grad``,
saving and loading the state) lives here. The update runs on raw arrays, so it records nothing
on the tape; it bumps each parameter's version counter, so a backward pass through a graph that
used the old values raises instead of giving a wrong gradient.

Hyperparameters are turned into Python floats before use: under NumPy 2 a float64 NumPy scalar
(``np.float64(0.1)``) times a float32 array gives float64, a Python float keeps float32.
"""
from ..backend import get_xp, to_device
from ..tensor import Tensor, enable_grad


class Optimizer:
    """Base class. ``params`` is an iterable of Tensors, or of dicts ``{"params": [...],
    **options}`` (parameter groups, each with its own hyperparameters; missing ones come from
    ``defaults``)."""

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

    def init_state(self, p, group):
        return {}

    def update(self, p, g, state, group):
        raise NotImplementedError

    # ---- parameter groups ---------------------------------------------------------------------
    def add_param_group(self, group):
        """Add ``{"params": [...], **options}``; options default to the constructor's values."""
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
            if not p.requires_grad:
                raise ValueError(f"{what} (shape {p.shape}) does not require grad")
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
        """Forget every parameter's gradient (``.grad = None``, or zeros with set_to_none=False)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:  # a new array: a leaf's grad may share memory with another one's
                    p.grad = Tensor._wrap(get_xp(p.data).zeros_like(p.data))

    def step(self, closure=None):
        """Update every parameter that has a gradient. ``closure``, if given, recomputes the loss
        (zero_grad, forward, backward) and its return value is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.data
                if g.shape != p.shape or g.dtype != p.dtype or type(g) is not type(p.data):
                    raise ValueError(
                        f"{type(self).__name__}.step: parameter of shape {p.shape}, dtype "
                        f"{p.dtype} on {p.device} has a gradient of shape {tuple(g.shape)}, dtype "
                        f"{g.dtype} on {p.grad.device}")
                if p not in self.state:  # lazily, on the parameter's device
                    self.state[p] = self.init_state(p.data, group)
                self.update(p.data, g, self.state[p], group)
                p._version[0] += 1
        return loss

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

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and per-parameter state saved by :meth:`state_dict`.

        Everything is checked first (number of groups and parameters, hyperparameter names,
        state shapes), so a mismatch raises ValueError and leaves the optimizer unchanged.
        Arrays are copied to each parameter's device and dtype; keys may be ints or strings
        (a file format may have turned them into strings).
        """
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(f"{name}: expected a dict with keys 'state' and 'param_groups'")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}: the state dict has {len(saved_groups)} parameter groups, "
                             f"this optimizer has {len(self.param_groups)}")
        params, new_groups = [], []
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}: group {i} has {len(saved['params'])} parameters in the "
                                 f"state dict and {len(group['params'])} in this optimizer")
            keys, ours = set(saved) - {"params"}, set(group) - {"params"}
            if keys != ours:
                raise ValueError(f"{name}: group {i} has hyperparameters {sorted(keys)} in the "
                                 f"state dict but {sorted(ours)} here (another optimizer's state?)")
            new = {k: _like(group[k], saved[k]) for k in keys}
            self.check_hyperparameters(new)
            new_groups.append(new)
            params += [(int(j), p) for j, p in zip(saved["params"], group["params"])]
        by_index = dict(params)
        new_state = {}
        for j, values in state_dict["state"].items():
            p = by_index.get(int(j))
            if p is None:
                raise ValueError(f"{name}: state for parameter {j}, which no group lists")
            entry = {}
            for k, v in values.items():
                if hasattr(v, "shape") and getattr(v, "ndim", 0) > 0:
                    if tuple(v.shape) != p.shape:
                        raise ValueError(f"{name}: state {k!r} of parameter {j} has shape "
                                         f"{tuple(v.shape)}, the parameter has shape {p.shape}")
                    v = to_device(v, p.device).astype(p.dtype, copy=True)
                elif hasattr(v, "shape"):  # a 0-d array: a number that went through a file
                    v = v.item()
                entry[k] = v
            new_state[p] = entry
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


def _like(current, loaded):
    """A loaded hyperparameter in the type of the current one (a file format may turn tuples
    into lists and numbers into 0-d arrays)."""
    if hasattr(loaded, "shape") and loaded.ndim == 0:
        loaded = loaded.item()
    if isinstance(current, tuple):
        return tuple(_like(c, x) for c, x in zip(current, loaded))
    return loaded
