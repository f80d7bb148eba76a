"""``Module`` and ``Parameter``: the bookkeeping behind every layer.

A module is an object whose attributes hold its pieces: ``Parameter`` s (tensors to train),
buffers (tensors to save but not train, e.g. BatchNorm's running statistics, registered with
:meth:`Module.register_buffer`) and other modules. Nothing is registered in a side table:
``parameters()``, ``state_dict()`` and friends walk the attributes in the order they were
assigned (``self.__dict__`` keeps insertion order), looking inside lists, tuples and dicts too::

    class MLP(Module):
        def __init__(self):
            super().__init__()
            self.layers = [Linear(784, 100), Linear(100, 10)]
            self.scale = Parameter([1.0])

    [name for name, _ in MLP().named_parameters()]
    # ['layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias', 'scale']

So the order of parameters, of ``state_dict()`` keys, and hence of an optimizer's state, is
fixed by the source code, never by a set or by ids.

Names. A parameter's (or buffer's) ``.name`` is filled in with its dotted path when it is
assigned to a module attribute and again whenever a module lists it (``named_parameters()``,
``parameters()``, ``state_dict()``...). A path found from an enclosing module extends the name
(``weight`` -> ``0.weight`` -> ``features.0.weight``), so a parameter ends up named after its
path from the outermost module it was put into. A name you set yourself that is not the tail of
the path is kept. Expression printers (``tg.pp``) show these names.
"""
from collections import OrderedDict, namedtuple

import numpy as np

from ..backend import as_array, check_device, get_xp, to_device
from ..tensor import Tensor, no_grad


class Parameter(Tensor):
    """A Tensor that a Module trains: ``requires_grad=True`` by default, found by ``parameters()``.

    ``Parameter(data, requires_grad=True, dtype=None, device=None, name=None)``. Ops on a Parameter
    return plain Tensors.

    From an array (NumPy or CuPy) it makes its own copy, as ``Tensor`` does, so training never
    writes into the caller's array. From a Tensor it shares that tensor's data and version
    counter, as ``torch.nn.Parameter(tensor)`` does: an optimizer step on the Parameter changes
    the tensor too (unless ``dtype`` or ``device`` asks for a conversion, which copies). To wrap
    a fresh array without a copy: ``Parameter(tg.from_numpy(array))``.
    """
    __slots__ = ()

    def __init__(self, data, requires_grad=True, dtype=None, device=None, name=None):
        if not isinstance(data, Tensor):  # Tensor(...) copies arrays and converts Python data
            super().__init__(data, requires_grad=requires_grad, dtype=dtype, device=device,
                             name=name)
            return
        array = as_array(data.data, dtype, device, copy=False)  # shared unless converted
        # Tensor.__init__ checks the dtype and fills every slot; an empty stand-in of the same
        # dtype spares it copying the array only for the copy to be dropped here
        super().__init__(get_xp(array).empty(0, dtype=array.dtype), requires_grad=requires_grad,
                         name=name)
        self.data = array
        if array is data.data:  # one storage, one version counter (as Tensor.detach)
            self._version = data._version

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


def _adopt_name(t, path):
    """Name a tensor after its path, unless it has a name of its own (see the module docstring)."""
    if t.name is None or path.endswith("." + t.name):
        t.name = path


def _walk_value(path, value, memo, recurse=True):
    """(path, kind, object) for the parameters, buffers and modules in an attribute value, in order,
    looking inside lists, tuples, dicts and (once each, via ``memo``; if ``recurse``) modules."""
    if isinstance(value, Parameter):
        yield path, "parameter", value
    elif isinstance(value, Module):
        if id(value) not in memo:
            memo.add(id(value))
            yield path, "module", value
            if recurse:
                yield from value._walk(path + ".", memo)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _walk_value(f"{path}.{i}", v, memo, recurse)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _walk_value(f"{path}.{k}", v, memo, recurse)


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of layers and models. Subclasses assign pieces in ``__init__`` (after
    ``super().__init__()``) and write ``forward``; calling the module calls ``forward``."""
    training = True  # a class default, so a subclass that forgets super().__init__() still works

    def __init__(self):
        self.training = True

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward() method")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def __setattr__(self, key, value):
        object.__setattr__(self, key, value)
        if isinstance(value, (Parameter, Module, list, tuple, dict)):
            for path, kind, obj in _walk_value(key, value, {id(self)}):
                if kind != "module":
                    _adopt_name(obj, path)
        elif isinstance(value, Tensor) and key in self._buffer_names():
            _adopt_name(value, key)

    # ---- finding the pieces -------------------------------------------------------------------
    def _buffer_names(self):
        return self.__dict__.get("_buffers", ())

    def register_buffer(self, name, tensor):
        """Make ``self.<name> = tensor`` a buffer: a Tensor (or None) that ``state_dict()``,
        ``to()`` and ``load_state_dict()`` include but ``parameters()`` does not."""
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"register_buffer: name must be a non-empty string without '.', "
                             f"got {name!r}")
        if tensor is not None and (not isinstance(tensor, Tensor) or isinstance(tensor, Parameter)):
            raise TypeError(f"register_buffer({name!r}): expected a Tensor that is not a "
                            f"Parameter, got {type(tensor).__name__}")
        if name in self.__dict__ and name not in self._buffer_names():
            raise KeyError(f"register_buffer: attribute {name!r} already exists")
        object.__setattr__(self, "_buffers", self._buffer_names() + (name,))
        setattr(self, name, tensor)

    def _walk(self, prefix, memo, recurse=True):
        buffers = self._buffer_names()
        for key, value in self.__dict__.items():
            if key == "_buffers":
                continue
            if key in buffers and not isinstance(value, Parameter):
                if isinstance(value, Tensor):
                    yield prefix + key, "buffer", value
                continue
            yield from _walk_value(prefix + key, value, memo, recurse)

    def _named(self, kind):
        """(name, tensor) pairs of one kind, each tensor once, named on the way."""
        seen = set()
        for path, k, obj in self._walk("", {id(self)}):
            if k == kind and id(obj) not in seen:
                seen.add(id(obj))
                _adopt_name(obj, path)
                yield path, obj

    def named_parameters(self):
        """(dotted name, Parameter) for every parameter, in attribute order, each once."""
        return self._named("parameter")

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self):
        return self._named("buffer")

    def buffers(self):
        return [b for _, b in self.named_buffers()]

    def named_children(self):
        """The modules held directly by this one (possibly inside lists and dicts)."""
        for path, kind, obj in self._walk("", {id(self)}, recurse=False):
            if kind == "module":
                yield path, obj

    def children(self):
        return [m for _, m in self.named_children()]

    def named_modules(self):
        """This module (named "") and every module inside it, depth first, each once."""
        yield "", self
        for path, kind, obj in self._walk("", {id(self)}):
            if kind == "module":
                yield path, obj

    def modules(self):
        return [m for _, m in self.named_modules()]

    def num_parameters(self, trainable_only=False):
        """How many numbers the parameters hold."""
        return sum(p.data.size for p in self.parameters() if p.requires_grad or not trainable_only)

    def apply(self, fn):
        """Call ``fn(module)`` on every submodule and then on this one (e.g. to initialize)."""
        for m in reversed(self.modules()):
            fn(m)
        return self

    # ---- modes, gradients, devices -----------------------------------------------------------
    def train(self, mode=True):
        """Set ``training`` on this module and every submodule (Dropout, BatchNorm read it)."""
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` on every parameter and return self (PyTorch's).

        ``model.features.requires_grad_(False)`` freezes the body for fine-tuning: backward gives
        frozen parameters no gradient (their ``.grad`` stays None), the ops skip computing one
        (``Conv2d``, ``Linear``, ``MatMul``... look at ``ctx.inputs[i].requires_grad``), a
        frozen body fed data that needs no gradient records no graph at all, and an optimizer
        that holds frozen parameters leaves them as they are. BatchNorm's running statistics
        are buffers, not parameters: in training mode they still move (``.eval()`` stops them).
        Only floating-point parameters can require grad; that is checked for all before any
        flag changes (a TypeError naming the parameters).
        """
        flag = bool(requires_grad)
        named = list(self.named_parameters())
        bad = [f"{n} ({p.dtype})" for n, p in named if flag and p.dtype.kind != "f"]
        if bad:
            raise TypeError(f"{type(self).__name__}.requires_grad_: only floating-point "
                            f"parameters can require gradients, not {', '.join(bad)}")
        for _, p in named:
            p.requires_grad = flag
        return self

    def zero_grad(self):
        """Forget every parameter's gradient (``.grad = None``)."""
        for p in self.parameters():
            p.grad = None

    def _tensors(self):
        """(name, tensor) for parameters and buffers, in attribute order, each tensor once."""
        seen, out = set(), []
        for path, kind, obj in self._walk("", {id(self)}):
            if kind in ("parameter", "buffer") and id(obj) not in seen:
                seen.add(id(obj))
                _adopt_name(obj, path)
                out.append((path, obj))
        return out

    def to(self, device):
        """Move parameters, buffers and gradients to ``device`` in place and return self. The
        tensor objects stay the same, so create the optimizer before or after, as you like (but
        its state, if it already has some, stays where it was)."""
        device = check_device(device)
        get_xp(device)  # without CuPy or a GPU, fail here (even for a module without tensors)
        for _, t in self._tensors():
            t.data = to_device(t.data, device)
            if t.grad is not None:
                t.grad.data = to_device(t.grad.data, device)
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    # ---- saving and loading ------------------------------------------------------------------
    def state_dict(self):
        """OrderedDict name -> copy of the array of every parameter and buffer (on the module's
        device), in attribute order. A tensor shared by two modules appears once."""
        return OrderedDict((name, t.data.copy()) for name, t in self._tensors())

    def _validate_state_dict(self, state_dict, strict=True):
        """Check ``state_dict`` against this module, changing nothing; raise as
        :meth:`load_state_dict` would. Returns ``([(tensor, array to load)], (missing_keys,
        unexpected_keys))``."""
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"{type(self).__name__}.load_state_dict: expected a dict of arrays, "
                            f"got {type(state_dict).__name__}")
        own = OrderedDict(self._tensors())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems, updates = [], []
        for name, t in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            value = value.data if isinstance(value, Tensor) else value
            problem = _load_problem(value, t)
            if problem:
                problems.append(f"  {name}: {problem}")
            else:
                updates.append((t, value))
        if strict:
            problems += [f"  missing key: {k}" for k in missing]
            problems += [f"  unexpected key: {k}" for k in unexpected]
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: nothing was loaded because "
                             "of:\n" + "\n".join(problems))
        return updates, IncompatibleKeys(missing, unexpected)

    def load_state_dict(self, state_dict, strict=True):
        """Copy the arrays of ``state_dict`` into this module's parameters and buffers, in place.

        Everything is checked first, by :meth:`_validate_state_dict`: with ``strict=True``
        missing and unexpected keys are errors; for every key that matches, the value must be an
        array (NumPy, CuPy or a Tensor) of the tensor's shape and of a dtype that converts
        without losing meaning:

        * into a floating tensor, only a real floating array (a float64 file into a float32
          model is rounded to float32); never an integer, bool, complex (that would drop the
          imaginary part), string or object array;
        * into an integer buffer (BatchNorm's ``num_batches_tracked``), only integers whose
          values fit the buffer's dtype; into a bool buffer, only bools.

        The ValueError names every offending key, and then nothing was changed. Values are copied
        to each tensor's device and dtype; the Parameter objects stay, so an optimizer built on
        them keeps working. Each changed tensor's version is bumped, so a graph built with the
        old values refuses to backpropagate. Returns ``(missing_keys, unexpected_keys)``.
        """
        updates, result = self._validate_state_dict(state_dict, strict)
        # convert everything before changing anything, so a failed conversion changes nothing
        arrays = [to_device(v, t.device).astype(t.dtype, copy=False) for t, v in updates]
        with no_grad():
            for (t, _), a in zip(updates, arrays):
                t.copy_(a)
        return result

    # ---- printing ----------------------------------------------------------------------------
    def extra_repr(self):
        """The part inside the parentheses of this module's repr (its settings)."""
        return ""

    def __repr__(self):
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        if self.extra_repr():  # PyTorch puts a container's own settings on a line of their own
            lines.append("  " + self.extra_repr())
        for name, m in children:
            lines.append(f"  ({name}): " + repr(m).replace("\n", "\n  "))
        return "\n".join(lines) + "\n)"


def _load_problem(value, t):
    """Why array ``value`` cannot be loaded into tensor ``t``, or None if it can."""
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        return f"expected an array, got {type(value).__name__}"
    if tuple(value.shape) != t.shape:
        return f"shape {tuple(value.shape)} in the state dict, {t.shape} in the module"
    src, dst = np.dtype(value.dtype), t.dtype
    if src.kind == "c":
        return (f"complex dtype {src} cannot be loaded into {dst} (the imaginary part would be "
                "lost)")
    if src.kind not in "biuf":
        return f"dtype {src} is not a number type; cannot load it into {dst}"
    if dst.kind == "f" and src.kind != "f":
        return f"dtype {src} in the state dict, {dst} in the module (only floats load into floats)"
    if dst.kind in "iu":
        if src.kind not in "iu":
            return f"dtype {src} in the state dict, integer {dst} in the module"
        if not np.can_cast(src, dst) and value.size:
            info, low, high = np.iinfo(dst), int(value.min()), int(value.max())
            if low < info.min or high > info.max:
                return f"values in [{low}, {high}] do not fit the module's {dst}"
    if dst.kind == "b" and src.kind != "b":
        return f"dtype {src} in the state dict, bool in the module"
    return None
