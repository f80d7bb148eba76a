"""The autograd core: Tensor, Function (one node of the tape) and the backward engine.

Reading guide
-------------
* A :class:`Tensor` wraps an array (``.data``, NumPy or CuPy) and, when it was produced by a
  differentiable op, the node that produced it (``._ctx``, a :class:`Function` instance).
* A node holds its *inputs* (Tensors), never its output, so edges only point backwards and a graph
  dies by reference counting as soon as nobody holds its final tensor.
* ``Function.forward`` computes on arrays; ``Function.backward`` computes on Tensors. Because the
  backward pass is built from ordinary ops, recording it (``create_graph=True``) gives second
  derivatives for free.
* :func:`_backprop` sorts the graph topologically (without recursion), then walks it from the
  output back to the leaves, keeping pending gradients in a dict (keyed by each tensor's node)
  and adding them up out of place. Leaves' gradients are written to ``.grad`` only at the end,
  so a backward that fails half way changes no ``.grad``.
* Debugging (anomaly mode, the backward trace) lives in ``debug.py``; the engine only calls the
  hooks it installs (``_GradMode.hooks``), in ``Function.apply`` and after each node's backward.
"""
import contextlib
import threading

import numpy as np

from .backend import as_array, get_xp, to_device


class _Modes(threading.local):
    """The modes of the calling thread (as PyTorch's grad mode is per thread): two threads can
    train two models, or one evaluate under no_grad while the other trains."""

    def __init__(self):
        self.enabled = True  # record ops on the tape
        self.hooks = ()      # debugging hooks: objects with forward(ctx, y) and
        #                      backward(ctx, y, gy, gxs) methods (see debug.py)
        self.saved = []      # previous values, pushed by each __enter__ of a _SetMode
        self.recorder = None  # tg.compile's recorder while it records a call (compiler.py)


_GradMode = _Modes()


class _SetMode(contextlib.ContextDecorator):
    """Set one mode on ``__enter__``, restore it on ``__exit__``. The previous value is pushed on
    a per-thread stack, not kept on the instance, so managers nest and one instance can be
    re-entered (a decorated recursive function)."""
    mode, value = "enabled", False

    def _new(self, old):
        return self.value

    def __enter__(self):
        old = getattr(_GradMode, self.mode)
        _GradMode.saved.append(old)
        setattr(_GradMode, self.mode, self._new(old))

    def __exit__(self, *exc):
        setattr(_GradMode, self.mode, _GradMode.saved.pop())


class no_grad(_SetMode):
    """Context manager and decorator: ops inside record nothing on the tape."""


class inference_mode(no_grad):
    """PyTorch's name for a stricter ``no_grad``; here the two are the same."""


class enable_grad(_SetMode):
    """Turn recording back on inside a ``no_grad`` block (used for ``create_graph=True``)."""
    value = True


class set_grad_enabled(_SetMode):
    """``set_grad_enabled(False)`` as a context manager or decorator: grad mode on or off."""

    def __init__(self, mode):
        self.value = bool(mode)


def is_grad_enabled():
    return _GradMode.enabled


class add_hook(_SetMode):
    """Install a debugging hook (see debug.py) for the block."""
    mode = "hooks"

    def __init__(self, hook):
        self.hook = hook

    def _new(self, old):
        return old if self.hook in old else old + (self.hook,)


NAMED_HOOKS = {"trace": None}  # the hook backward(trace=True) installs, set by debug.py


class Function:
    """One differentiable op. Subclass it and write two methods:

    * ``forward(ctx, *arrays, **params)`` -> array. Receives the inputs' raw arrays and any
      non-tensor parameters (axis, shape, ...). It may store on ``ctx`` whatever backward needs.
    * ``backward(ctx, gy, y)`` -> one gradient Tensor (or None) per input. ``gy`` is dL/dy,
      ``y`` the op's output, ``ctx.inputs`` the input Tensors. Use Tensor ops here, so that the
      backward pass is itself differentiable.

    Call it with ``MyOp.apply(*tensors, **params)``. An instance is a node of the tape (and,
    under no_grad too, the place where forward keeps its notes).
    """
    __slots__ = ("inputs", "versions")  # subclasses add a __dict__ for what forward saves
    is_view = False        # True when forward may return a view of its first input's array
    differentiable = True  # False for ops with an array-level backward (no second derivative)
    # Memory: what backward reads. ``keeps``: the inputs whose *values* it reads ("all", or a
    # tuple of indices); ``needs_output``: whether it reads y's values. A (not tiny) input that
    # is kept by no one is replaced on the node by a shell (see _shell): its array can be freed.
    keeps = "all"
    needs_output = True
    # True for an op whose forward is elementwise arithmetic that tg.compile may fuse with its
    # neighbours (ops/fusion.py runs this forward on symbolic arrays to build the kernel)
    elementwise = False

    def forward(ctx, *arrays, **params):
        raise NotImplementedError

    def backward(ctx, gy, y):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **params):
        ctx = cls()
        arrays = [t.data for t in inputs]
        if len(arrays) > 1 and any([type(a) is not type(arrays[0]) for a in arrays]):
            devices = [t.device for t in inputs]  # (types also differ for np.memmap and kin)
            if any([d != devices[0] for d in devices]):
                raise ValueError(f"{cls.__name__}: inputs are on different devices ("
                                 + ", ".join(devices) + "); move them to one with .to(device)")
        try:
            out = ctx.forward(*arrays, **params)
        except (ValueError, IndexError) as e:  # say which op and which shapes, not just NumPy's
            shapes = ", ".join(str(t.shape) for t in inputs)  # words; `from e` keeps the line of
            raise type(e)(f"{cls.__name__} with input shapes {shapes}: {e}") from e  # forward
        if type(out) is not np.ndarray:
            out = _forward_result(cls, out)
        y = Tensor._wrap(out)
        if _GradMode.recorder is not None:  # tg.compile is recording: note this op
            _GradMode.recorder.op(ctx, inputs, params, y)
        # (list comprehensions rather than generators here: on a few inputs they are twice as fast)
        if _GradMode.enabled and any([t.requires_grad for t in inputs]):
            y.requires_grad = True
            if cls.keeps != "all":
                inputs = _shed(inputs, cls.keeps)
            ctx.inputs = inputs
            ctx.versions = tuple([t._version[0] for t in inputs])
            y._ctx = ctx
        if cls.is_view:  # a view shares its base's memory, so it shares its version counter too
            y._version = inputs[0]._version
        if _GradMode.hooks:
            for hook in _GradMode.hooks:
                hook.forward(ctx, y)
        return y

    def free(ctx):
        """Drop everything the node holds (inputs and saved arrays)."""
        ctx.inputs = ctx.versions = None
        ctx.__dict__.clear()

    def __repr__(self):
        return f"<{type(self).__name__}>"


def _shed(inputs, keeps):
    """The inputs a node records: each one that its backward does not read (not in ``keeps``),
    that is computed (a leaf is held by its owner anyway) and not needed by its own producer's
    backward either, as a shell."""
    for i, t in enumerate(inputs):
        if (t._ctx is not None and i not in keeps and not t._ctx.needs_output
                and t.data.size >= SHELL_MIN_SIZE):
            inputs = inputs[:i] + (_shell(t),) + inputs[i + 1:]
    return inputs


def _shell(t):
    """A stand-in for a computed tensor whose values no backward reads: the same node, shape,
    dtype and device, but its data a read-only broadcast NaN (one element of memory; NaN so
    that a backward which reads it after all gives NaN gradients, which gradcheck catches)."""
    data = t.data
    if type(data) is np.ndarray:  # (the direct constructor: 10x faster than np.broadcast_to)
        if data.dtype not in _NAN:
            _NAN[data.dtype] = np.full(1, np.nan, data.dtype)
            _NAN[data.dtype].flags.writeable = False
        data = np.ndarray(data.shape, data.dtype, _NAN[data.dtype], 0, (0,) * data.ndim)
    else:
        xp = get_xp(data)
        data = xp.broadcast_to(xp.array(np.nan, dtype=data.dtype), data.shape)
    s = Tensor._wrap(data)
    s.requires_grad, s._ctx, s.name = t.requires_grad, t._ctx, t.name
    return s


_NAN = {}  # dtype -> a read-only 1-element NaN array that shells view
SHELL_MIN_SIZE = 4096  # smaller arrays are kept: a shell would cost more time than it saves


def _key(t):
    """A tensor's identity in the graph: its node (a shell and its tensor share it), or itself
    for a leaf."""
    return id(t) if t._ctx is None else id(t._ctx)


def _forward_result(cls, out):
    """Check what a (custom) ``forward`` returned: one NumPy or CuPy array."""
    if isinstance(out, np.generic):
        return np.asarray(out)
    if hasattr(out, "__cuda_array_interface__") and not isinstance(out, Tensor):
        return out
    hint = " (return its .data)" if isinstance(out, Tensor) else ""
    raise TypeError(f"{cls.__name__}.forward returned a {type(out).__name__}{hint}; forward "
                    "must return one NumPy or CuPy array")


class Tensor:
    """An n-dimensional array that remembers how it was computed.

    ``Tensor(data, requires_grad=False, dtype=None, device=None, name=None)``

    Conversion rules (also in the README): NumPy/CuPy arrays keep their dtype; Python floats and
    float lists become float32, Python ints int64, bools bool. ``device`` defaults to where the
    data already lives ("cpu" for Python data). The data is always copied, as ``torch.tensor``
    does, so the caller's array never changes behind their back; ``tg.from_numpy`` shares it.
    """
    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_version", "name", "__weakref__")
    __array_ufunc__ = None  # make `np.float64(2) * t` call Tensor.__rmul__, not NumPy

    def __init__(self, data, requires_grad=False, dtype=None, device=None, name=None):
        data = as_array(data.data if isinstance(data, Tensor) else data, dtype, device, copy=True)
        if requires_grad and data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, not {data.dtype}")
        self.data, self.grad, self.requires_grad = data, None, bool(requires_grad)
        self._ctx, self._version, self.name = None, [0], name

    @staticmethod
    def _wrap(array):
        """Fast path for ops: wrap an array that is already right (no checks, no copy)."""
        if isinstance(array, np.generic):  # NumPy ufuncs turn 0-d arrays into scalars
            array = np.asarray(array)
        t = Tensor.__new__(Tensor)
        t.data, t.grad, t.requires_grad, t._ctx, t._version, t.name = \
            array, None, False, None, [0], None
        return t

    # ---- properties -----------------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    device = property(lambda self: "cpu" if isinstance(self.data, np.ndarray) else "cuda")
    is_leaf = property(lambda self: self._ctx is None)
    grad_fn = property(lambda self: self._ctx)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = np.array2string(to_device(self.data, "cpu"), separator=", ", precision=4,
                               prefix="Tensor(")
        extra = ""
        if self.dtype != np.float32:
            extra += f", dtype={self.dtype}"
        if self.device != "cpu":
            extra += f", device='{self.device}'"
        if self._ctx is not None:
            extra += f", grad_fn={type(self._ctx).__name__}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        if self.name:
            extra += f", name={self.name!r}"
        return f"Tensor({body}{extra})"

    def item(self):
        """The value of a one-element tensor as a Python number (copies from the GPU)."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.item()

    def numpy(self):
        """The data as a NumPy array (on the CPU, the array itself, not a copy)."""
        return to_device(self.data, "cpu")

    def detach(self):
        """A tensor sharing this one's data, cut from the tape."""
        t = Tensor._wrap(self.data)
        t._version = self._version
        return t

    def requires_grad_(self, flag=True):
        if flag and self.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, not {self.dtype}")
        self.requires_grad = flag
        return self

    # ---- in-place changes -------------------------------------------------------------------
    def _inplace(self, what, fn, recorded=False):
        """Change .data in place and bump the version counter that backward checks.
        ``recorded``: ``fn`` goes through array_call, so tg.compile can repeat it."""
        if _GradMode.recorder is not None and not recorded:
            _GradMode.recorder.inplace(what, self)
        if self.requires_grad and _GradMode.enabled:
            raise RuntimeError(f"{what}: in-place change of a tensor that requires grad; "
                               "use the out-of-place op, or wrap it in tg.no_grad()")
        try:
            fn(self.data)
        except (ValueError, IndexError) as e:  # name the op, as Function.apply does
            raise type(e)(f"{what} on a tensor of shape {self.shape}: {e}") from e
        self._version[0] += 1
        return self

    def _operand(self, other):
        if not isinstance(other, Tensor):
            return other
        if other.device != self.device:
            raise ValueError(f"tensors on different devices ({self.device}, {other.device})")
        return other.data

    def __iadd__(self, o):
        return self._inplace("+=", lambda d: d.__iadd__(self._operand(o)))

    def __isub__(self, o):
        return self._inplace("-=", lambda d: d.__isub__(self._operand(o)))

    def __imul__(self, o):
        return self._inplace("*=", lambda d: d.__imul__(self._operand(o)))

    def __itruediv__(self, o):
        return self._inplace("/=", lambda d: d.__itruediv__(self._operand(o)))

    def __setitem__(self, index, value):
        index = index.data if isinstance(index, Tensor) else index
        self._inplace("__setitem__", lambda d: d.__setitem__(index, self._operand(value)))

    def zero_(self):
        return self._inplace("zero_", lambda d: d.fill(0))

    def fill_(self, value):
        return self._inplace("fill_", lambda d: d.fill(value))

    def copy_(self, src):
        src = src.data if isinstance(src, Tensor) else src
        if tuple(src.shape) != self.shape:
            raise ValueError(f"copy_: source shape {tuple(src.shape)} != destination {self.shape}")
        return self._inplace("copy_", lambda d: array_call(_copy_into, d, src, device=self.device),
                             recorded=True)

    # ---- autograd ---------------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=None, create_graph=False, trace=False):
        """Accumulate d(self)/d(leaf) into the ``.grad`` of every leaf that requires grad.

        ``gradient`` is dL/d(self); it may be omitted only for a one-element tensor.
        The graph is freed afterwards unless ``retain_graph=True``. ``trace=True`` prints each
        step: the node, the gradient it receives and what it sends to each input. If backward
        fails, no ``.grad`` changes.
        """
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad and has no grad_fn")
        g = _root_gradient(self, gradient)
        with add_hook(NAMED_HOOKS["trace"]) if trace else contextlib.nullcontext():
            found = _backprop([self], [g], retain_graph, create_graph, targets=None)
        _commit_leaf_grads(found, taken={id(g)}, create_graph=create_graph)

    def __bool__(self):
        # without this every Tensor is truthy, so `if a < b:` and `t in [u, v]` silently lie
        if self.data.size != 1:
            raise RuntimeError(f"the truth value of a tensor of shape {self.shape} is ambiguous; "
                               "use .any() / .all() on .numpy(), or compare one element")
        return bool(self.data)


def _root_gradient(y, g):
    if g is None:
        if y.data.size != 1:
            raise RuntimeError(f"backward(): gradient can be omitted only for a one-element output, "
                               f"this one has shape {y.shape}; pass gradient=")
        return Tensor._wrap(get_xp(y.data).ones_like(y.data))
    g = g if isinstance(g, Tensor) else Tensor(g, dtype=y.dtype, device=y.device)
    if g.shape != y.shape or g.dtype != y.dtype or g.device != y.device:
        raise ValueError(f"backward(): gradient has shape {g.shape}, dtype {g.dtype} on {g.device}; "
                         f"output has shape {y.shape}, dtype {y.dtype} on {y.device}")
    return g


def graph_order(roots, grad_only=True):
    """The tensors reachable from ``roots`` through the tape, each once, every one after all
    its inputs (an explicit stack, so no recursion limit). ``grad_only``: only those that
    require grad, which is what backward visits; viz draws them all."""
    order, seen = [], set()
    stack = [(t, False) for t in reversed(roots)]
    while stack:
        t, inputs_done = stack.pop()
        if inputs_done:
            order.append(t)
            continue
        if _key(t) in seen or (grad_only and not t.requires_grad):
            continue
        seen.add(_key(t))
        stack.append((t, True))
        ctx = t._ctx
        if ctx is not None and ctx.inputs is not None:
            stack += [(x, False) for x in reversed(ctx.inputs)]  # seen ones skipped when popped
    return order


def _between(order, targets):
    """For grad(): the ids of the tensors of ``order`` on a path to one of ``targets``, and of
    those whose backward must run (an input on such a path); the rest of the graph is not
    walked. Inputs come first in ``order``, so one pass decides."""
    on_path, run = set(), set()
    for t in order:
        ctx = t._ctx
        if ctx is not None and (ctx.inputs is None  # freed: backward must say so
                                or any([_key(x) in on_path for x in ctx.inputs])):
            run.add(_key(t))
        if _key(t) in targets or _key(t) in run:
            on_path.add(_key(t))
    return on_path, run


def _check_node(ctx, create_graph):
    """Can backward go through this node? Freed, once-differentiable, inputs changed in place."""
    name = type(ctx).__name__
    if ctx.inputs is None:
        why = getattr(ctx, "failed_with", None)
        if why:
            raise RuntimeError(f"backward through {name}: the graph is unusable because an "
                               f"earlier backward through it failed ({why}) after freeing part "
                               "of it; run the forward pass again")
        raise RuntimeError(f"backward through {name} a second time: its saved tensors were "
                           "freed by the first backward; pass retain_graph=True to the first call")
    if create_graph and not ctx.differentiable:
        raise RuntimeError(f"{name} is once-differentiable: its backward is not recorded, so "
                           "create_graph=True cannot go through it")
    for i, (x, v) in enumerate(zip(ctx.inputs, ctx.versions)):
        if x._version[0] != v:
            raise RuntimeError(f"input {i} (shape {x.shape}) of {name} was modified in place "
                               f"after the forward pass (version {v} -> {x._version[0]}), so its "
                               "gradient would be wrong")


def _call_backward(ctx, gy, y):
    """``ctx.backward`` as a tuple. Debugging hooks are off inside it (the ops a backward runs
    are the engine's, not yours) and then see the gradients it returned."""
    if _GradMode.recorder is not None:  # tg.compile records this node's backward
        return _GradMode.recorder.backward(ctx, gy, y, _call_backward_now)
    return _call_backward_now(ctx, gy, y)


def _call_backward_now(ctx, gy, y):
    hooks = _GradMode.hooks
    if not hooks:
        gxs = ctx.backward(gy, y)
        return gxs if isinstance(gxs, tuple) else (gxs,)
    _GradMode.hooks = ()
    try:
        gxs = ctx.backward(gy, y)
    finally:
        _GradMode.hooks = hooks
    gxs = gxs if isinstance(gxs, tuple) else (gxs,)
    for hook in hooks:
        hook.backward(ctx, y, gy, gxs)
    return gxs


def _bad_gradient(ctx, i, x, gx):
    raise RuntimeError(f"{type(ctx).__name__}.backward returned a gradient of shape {gx.shape} "
                       f"and dtype {gx.dtype} for input {i} of shape {x.shape}, dtype {x.dtype}")


def _backprop(roots, root_grads, retain_graph, create_graph, targets):
    """The backward engine, shared by ``Tensor.backward`` and :func:`grad`. Returns the list of
    (tensor, total gradient) for the leaves (``targets=None``) or for ``targets`` (a set of ids).
    """
    retain_graph = create_graph if retain_graph is None else retain_graph
    if _GradMode.recorder is not None:
        _GradMode.recorder.start_backward(root_grads, create_graph)
    pending = {}  # _key(tensor) -> the sum of the gradients it has received so far
    for y, g in zip(roots, root_grads):
        pending[_key(y)] = pending[_key(y)] + g if _key(y) in pending else g
    order = graph_order(roots)
    on_path = run = None
    if targets is not None:  # grad(): walk only the part of the graph between outputs and targets
        on_path, run = _between(order, targets)
        order = [t for t in order if _key(t) in on_path]
    found, unreached, freed = [], [], []
    try:
        with enable_grad() if create_graph else no_grad():
            while order:
                t = order.pop()  # popping drops the list's reference: activations are released
                g = pending.pop(_key(t), None)  # as soon as backward has passed them, as in PyTorch
                if g is None:
                    unreached.append(t)
                    continue
                if (t._ctx is None) if targets is None else (_key(t) in targets):
                    found.append((t, g))
                ctx = t._ctx
                if ctx is None or (run is not None and _key(t) not in run):
                    continue
                _check_node(ctx, create_graph)
                for i, (x, gx) in enumerate(zip(ctx.inputs, _call_backward(ctx, g, t))):
                    if gx is None or not x.requires_grad or (run is not None
                                                             and _key(x) not in on_path):
                        continue
                    if gx.shape != x.shape or gx.dtype != x.dtype:
                        _bad_gradient(ctx, i, x, gx)
                    pending[_key(x)] = pending[_key(x)] + gx if _key(x) in pending else gx
                if not retain_graph:
                    ctx.free()
                    freed.append(ctx)
    except BaseException as e:
        for ctx in freed:  # so that a retry says why the graph is gone
            ctx.failed_with = f"{type(e).__name__}: {e}"
        raise
    if not retain_graph:  # also free the nodes that no gradient reached
        for t in unreached:
            if t._ctx is not None and t._ctx.inputs is not None:
                t._ctx.free()
    return found


def _commit_leaf_grads(found, taken, create_graph):
    """Add each leaf's gradient to its ``.grad``, out of place. The leaf rule: a leaf's first
    ``.grad`` is a Tensor of its own. A gradient is kept as it is only when it is provably
    fresh: it owns its memory (not a view of a broadcast, a reshape, ...) and no other leaf,
    nor the caller (``taken``: ids of the gradients passed in), holds the same object (Add
    hands one gradient to both inputs). Otherwise it is copied (under create_graph, by an op,
    so the copy stays on the tape)."""
    if _GradMode.recorder is not None:  # tg.compile records each leaf's new .grad
        return _GradMode.recorder.commit(found, taken, create_graph, _commit_leaf_grads_now)
    _commit_leaf_grads_now(found, taken, create_graph)


def _commit_leaf_grads_now(found, taken, create_graph):
    for t, g in found:
        if t.grad is not None:
            t.grad = t.grad + g
            continue
        if id(g) in taken or g.data.base is not None:
            g = g + 0 if create_graph else Tensor._wrap(g.data.copy())
        taken.add(id(g))
        t.grad = g


def _copy_into(dest, src, device):
    dest[...] = to_device(src, device)
    return dest


def array_call(fn, *arrays, **params):
    """``fn(*arrays, **params)`` -> an array, for array work done outside any Function: a random
    draw (dropout's mask), an in-place update of a buffer (batch norm's running statistics).
    Eagerly it is just the call; while :func:`tinygrad_edu.compile` records, the call is noted
    too, so that every replay repeats it (a fresh mask, an updated buffer)."""
    out = fn(*arrays, **params)
    if _GradMode.recorder is not None:
        _GradMode.recorder.call(fn, arrays, params, out)
    return out


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Gradients of ``outputs`` with respect to ``inputs``, as a tuple; ``.grad`` is untouched.

    Theano's ``T.grad`` and PyTorch's ``torch.autograd.grad``. With ``create_graph=True`` the
    returned gradients are themselves on the tape, so they can be differentiated again. Only
    the part of the graph between ``outputs`` and ``inputs`` is walked.
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad(): {len(outputs)} outputs but {len(grad_outputs)} grad_outputs")
    for i, x in enumerate(inputs):
        if not x.requires_grad:
            raise ValueError(f"grad(): input {i} (shape {x.shape}) does not require grad")
    for y in outputs:
        if not y.requires_grad:
            raise RuntimeError(f"grad(): output of shape {y.shape} does not depend on any "
                               "tensor that requires grad")
    root_grads = [_root_gradient(y, g) for y, g in zip(outputs, grad_outputs)]
    found = _backprop(outputs, root_grads, retain_graph, create_graph, {_key(x) for x in inputs})
    found = {_key(t): g for t, g in found}
    result = tuple(found.get(_key(x)) for x in inputs)
    if not allow_unused and any(g is None for g in result):
        i = next(i for i, g in enumerate(result) if g is None)
        raise ValueError(f"grad(): input {i} (shape {inputs[i].shape}) was not used to compute "
                         "the outputs; pass allow_unused=True to get None for it")
    return result
