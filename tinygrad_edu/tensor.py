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
  output back to the leaves, keeping pending gradients in a dict and adding them up out of place.
"""
import contextlib
import threading

import numpy as np

from .backend import check_device, get_xp, to_device


class _Modes(threading.local):
    """The modes of the calling thread (as PyTorch's grad mode is per thread): two threads can
    train two models, or one evaluate under no_grad while the other trains."""

    def __init__(self):
        self.enabled = True   # record ops on the tape
        self.anomaly = False  # check every output and gradient for NaN/inf (see detect_anomaly)
        self.trace = False    # print every step of backpropagation (backward(trace=True))
        self.saved = []       # previous values, pushed by each __enter__ of a _SetMode


_GradMode = _Modes()


class _SetMode(contextlib.ContextDecorator):
    """Set one mode on ``__enter__``, restore it on ``__exit__``. The previous value is pushed on
    a per-thread stack, not kept on the instance, so managers nest and one instance can be
    re-entered (a decorated recursive function)."""
    mode, value = "enabled", False

    def __enter__(self):
        _GradMode.saved.append(getattr(_GradMode, self.mode))
        setattr(_GradMode, self.mode, self.value)

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


class detect_anomaly(_SetMode):
    """Anomaly mode: every op's output and every gradient is checked for NaN/inf, and an error
    names the op and the line of *your* code that created it. Slow; for debugging."""
    mode, value = "anomaly", True


def _creation_site():
    """The innermost stack frame outside this package: where the user called the op."""
    import os
    import traceback
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    for frame in reversed(traceback.extract_stack()[:-2]):
        if not os.path.abspath(frame.filename).startswith(package):
            return f'{frame.filename}:{frame.lineno}, in {frame.name}: "{frame.line}"'
    return "(inside tinygrad_edu)"


def _check_finite(array, what, ctx):
    xp = get_xp(array)
    if array.dtype.kind == "f" and not bool(xp.isfinite(array).all()):
        bad = "NaN" if bool(xp.isnan(array).any()) else "inf"
        where = getattr(ctx, "created_at", None)
        where = (f"the op was created at {where}" if where else "where the op was created is "
                 "unknown: run the forward pass under detect_anomaly() too")
        raise FloatingPointError(f"anomaly: {what} of {type(ctx).__name__} contains {bad}; "
                                 + where)


class Function:
    """One differentiable op. Subclass it and write two methods:

    * ``forward(ctx, *arrays, **params)`` -> array. Receives the inputs' raw arrays and any
      non-tensor parameters (axis, shape, ...). It may store on ``ctx`` whatever backward needs.
    * ``backward(ctx, gy, y)`` -> one gradient Tensor (or None) per input. ``gy`` is dL/dy,
      ``y`` the op's output, ``ctx.inputs`` the input Tensors. Use Tensor ops here, so that the
      backward pass is itself differentiable.

    Call it with ``MyOp.apply(*tensors, **params)``. An instance is a node of the tape.
    """
    __slots__ = ("inputs", "versions", "__dict__")
    is_view = False        # True when forward may return a view of its first input's array
    differentiable = True  # False for ops with an array-level backward (no second derivative)

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
        if _GradMode.anomaly:
            ctx.created_at = _creation_site()
            _check_finite(out, "the output", ctx)
        y = Tensor._wrap(out)
        # (list comprehensions rather than generators here: on a few inputs they are twice as fast)
        if _GradMode.enabled and any([t.requires_grad for t in inputs]):
            y.requires_grad = True
            ctx.inputs = inputs
            ctx.versions = tuple([t._version[0] for t in inputs])
            y._ctx = ctx
        if cls.is_view:  # a view shares its base's memory, so it shares its version counter too
            y._version = inputs[0]._version
        return y

    def free(ctx):
        """Drop everything the node holds (inputs and saved arrays)."""
        ctx.inputs = ctx.versions = None
        ctx.__dict__.clear()

    def __repr__(self):
        return f"<{type(self).__name__}>"


def _forward_result(cls, out):
    """Check what a (custom) ``forward`` returned: one NumPy or CuPy array."""
    if isinstance(out, np.generic):
        return np.asarray(out)
    if hasattr(out, "__cuda_array_interface__") and not isinstance(out, Tensor):
        return out
    hint = " (return its .data)" if isinstance(out, Tensor) else ""
    raise TypeError(f"{cls.__name__}.forward returned a {type(out).__name__}{hint}; forward "
                    "must return one NumPy or CuPy array")


def _as_array(data, dtype, device, copy):
    """The array a new Tensor holds: NumPy/CuPy arrays keep their dtype; Python floats become
    float32, ints int64; only real numbers and bools (complex, strings, objects are refused)."""
    if dtype is not None:
        dtype = np.dtype(dtype)
        if dtype.kind not in "fiub":
            raise TypeError(f"a Tensor's dtype must be a real number type or bool, not {dtype}")
    if isinstance(data, Tensor):
        data = data.data
    if hasattr(data, "__cuda_array_interface__"):  # CuPy's, or another library's GPU array
        xp = get_xp(data)
        data = xp.array(data, dtype=dtype, copy=True) if copy else xp.asarray(data)
    elif isinstance(data, np.ndarray):
        data = np.array(data, dtype=dtype, copy=True) if copy else data
    else:
        python_data = not isinstance(data, np.generic)
        try:
            data = np.asarray(data, dtype=dtype)
        except (TypeError, ValueError) as e:
            raise TypeError(f"cannot make a Tensor from {type(data).__name__} {data!r:.60}: "
                            f"{e}") from e
        if dtype is None and python_data:  # Python numbers: float32 / int64 by default
            if data.dtype.kind == "f":
                data = data.astype(np.float32)
            elif data.dtype.kind in "iu":
                data = data.astype(np.int64)
    if data.dtype.kind not in "fiub":
        raise TypeError(f"cannot make a Tensor from an array of dtype {data.dtype}")
    if dtype is not None and data.dtype != dtype:
        data = data.astype(dtype)
    return data if device is None else to_device(data, device)


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new Tensor holding a copy of ``data`` (``torch.tensor``); the same rules as ``Tensor``."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)


def from_numpy(array):
    """A Tensor sharing memory with a NumPy array (``torch.from_numpy``): a change to one is
    seen in the other, an optimizer step included."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor._wrap(_as_array(array, None, None, copy=False))


def from_dlpack(obj):
    """A Tensor sharing memory with any DLPack producer (a NumPy, CuPy or PyTorch tensor)."""
    device_type = obj.__dlpack_device__()[0]
    xp = np if device_type == 1 else get_xp("cuda")  # 1 is DLPack's kDLCPU
    return Tensor._wrap(_as_array(xp.from_dlpack(obj), None, None, copy=False))


class Tensor:
    """An n-dimensional array that remembers how it was computed.

    ``Tensor(data, requires_grad=False, dtype=None, device=None, name=None)``

    Conversion rules (also in the README): NumPy/CuPy arrays keep their dtype; Python floats and
    float lists become float32, Python ints int64, bools bool. ``device`` defaults to where the
    data already lives ("cpu" for Python data). The data is always copied, as ``torch.tensor``
    does, so the caller's array never changes behind their back; :func:`from_numpy` shares it.
    """
    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_version", "name", "__weakref__")
    __array_ufunc__ = None  # make `np.float64(2) * t` call Tensor.__rmul__, not NumPy

    def __init__(self, data, requires_grad=False, dtype=None, device=None, name=None):
        data = _as_array(data, dtype, device, copy=True)
        if requires_grad and data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, not {data.dtype}")
        self.data, self.grad, self.requires_grad = data, None, bool(requires_grad)
        self._ctx, self._version, self.name = None, [0], name

    @staticmethod
    def _wrap(array, requires_grad=False):
        """Fast path for ops: wrap an array that is already right (no checks, no copy)."""
        if isinstance(array, np.generic):  # NumPy ufuncs turn 0-d arrays into scalars
            array = np.asarray(array)
        t = Tensor.__new__(Tensor)
        t.data, t.grad, t.requires_grad, t._ctx, t._version, t.name = \
            array, None, requires_grad, None, [0], None
        return t

    # ---- properties -----------------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    device = property(lambda self: "cpu" if isinstance(self.data, np.ndarray) else "cuda")
    is_leaf = property(lambda self: self._ctx is None)
    grad_fn = property(lambda self: self._ctx)

    def size(self, dim=None):
        """The shape (PyTorch's ``x.size()``), or the extent of one axis: ``x.size(0)``."""
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self):
        """The number of elements."""
        return self.data.size

    def dim(self):
        return self.data.ndim

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

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def __dlpack__(self, **kwargs):
        """Export without a copy (``np.from_dlpack(t)``, ``torch.from_dlpack(t)``, CuPy)."""
        if self.requires_grad:
            raise RuntimeError("can't export a tensor that requires grad through DLPack; "
                               "use t.detach()")
        return self.data.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.data.__dlpack_device__()

    def tolist(self):
        return self.numpy().tolist()

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
    def _inplace(self, what, fn):
        """Change .data in place and bump the version counter that backward checks."""
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
        return self._inplace("copy_", lambda d: d.__setitem__(Ellipsis, to_device(src, self.device)))

    # ---- autograd ---------------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=None, create_graph=False, trace=False):
        """Accumulate d(self)/d(leaf) into the ``.grad`` of every leaf that requires grad.

        ``gradient`` is dL/d(self); it may be omitted only for a one-element tensor.
        The graph is freed afterwards unless ``retain_graph=True``. ``trace=True`` prints each
        step: the node, the gradient it receives and what it sends to each input.
        """
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad and has no grad_fn")
        previous, _GradMode.trace = _GradMode.trace, trace or _GradMode.trace
        try:
            _backprop([self], [gradient], retain_graph, create_graph, capture=None)
        finally:
            _GradMode.trace = previous

    __hash__ = object.__hash__  # comparison ops are elementwise, identity stays the hash

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


def _toposort(roots):
    """Tensors that require grad, each after all its inputs (iterative DFS, no recursion limit)."""
    order, seen = [], set()
    stack = [(t, False) for t in roots]
    while stack:
        t, inputs_done = stack.pop()
        if inputs_done:
            order.append(t)
            continue
        if id(t) in seen or not t.requires_grad:
            continue
        seen.add(id(t))
        stack.append((t, True))
        ctx = t._ctx
        if ctx is not None and ctx.inputs is not None:
            stack += [(x, False) for x in ctx.inputs]  # seen ones are skipped when popped
    return order


def _backprop(roots, root_grads, retain_graph, create_graph, capture):
    """The backward engine, shared by ``Tensor.backward`` and :func:`grad`.

    With ``capture=None`` gradients of leaves are accumulated into ``.grad``; otherwise
    ``capture`` is a dict {id(tensor): None} that receives the total gradient of those tensors.
    """
    if retain_graph is None:
        retain_graph = create_graph
    grads = {}
    for y, g in zip(roots, root_grads):
        g = _root_gradient(y, g)
        grads[id(y)] = grads[id(y)] + g if id(y) in grads else g
    order = _toposort(roots)
    unreached = []  # nodes no gradient reached: freed at the end
    handed_out = {id(g) for g in grads.values()}
    with enable_grad() if create_graph else no_grad():
        while order:
            # popping (not iterating) drops the list's reference, so when the graph is freed
            # each activation is released as soon as backward has passed it, as in PyTorch
            t = order.pop()
            g = grads.pop(id(t), None)
            if g is None:
                unreached.append(t)
                continue
            if capture is not None and id(t) in capture:
                capture[id(t)] = g
            ctx = t._ctx
            if ctx is None:  # a leaf
                if capture is None:
                    if t.grad is None:  # each leaf gets a gradient of its own, memory too:
                        # copy one handed out already, or a view (of a broadcast, of the caller's
                        # gradient, ...); under create_graph the copy stays on the tape
                        if id(g) in handed_out or g.data.base is not None:
                            g = g + 0 if create_graph else Tensor._wrap(g.data.copy())
                        t.grad = g
                        handed_out.add(id(t.grad))
                    else:
                        t.grad = t.grad + g
                continue
            if ctx.inputs is None:
                raise RuntimeError(
                    f"backward through {type(ctx).__name__} a second time: its saved tensors were "
                    "freed by the first backward; pass retain_graph=True to the first call")
            if create_graph and not ctx.differentiable:
                raise RuntimeError(f"{type(ctx).__name__} is once-differentiable: its backward is "
                                   "not recorded, so create_graph=True cannot go through it")
            for i, (x, v) in enumerate(zip(ctx.inputs, ctx.versions)):
                if x._version[0] != v:
                    raise RuntimeError(
                        f"input {i} (shape {x.shape}) of {type(ctx).__name__} was modified in "
                        f"place after the forward pass (version {v} -> {x._version[0]}), so its "
                        "gradient would be wrong")
            gxs = _unchecked_backward(ctx, g, t) if _GradMode.anomaly else ctx.backward(g, t)
            if not isinstance(gxs, tuple):
                gxs = (gxs,)
            if _GradMode.trace or _GradMode.anomaly:
                _inspect_step(ctx, t, g, gxs)
            for i, (x, gx) in enumerate(zip(ctx.inputs, gxs)):
                if gx is None or not x.requires_grad:
                    continue
                if gx.shape != x.shape or gx.dtype != x.dtype:
                    raise RuntimeError(
                        f"{type(ctx).__name__}.backward returned a gradient of shape {gx.shape} "
                        f"and dtype {gx.dtype} for input {i} of shape {x.shape}, dtype {x.dtype}")
                k = id(x)
                grads[k] = grads[k] + gx if k in grads else gx
            if not retain_graph:
                ctx.free()
    if not retain_graph:  # also free nodes that no gradient reached
        for t in unreached:
            if t._ctx is not None and t._ctx.inputs is not None:
                t._ctx.free()


def _unchecked_backward(ctx, gy, y):
    """``ctx.backward`` with anomaly mode's per-op checks off: the gradients it returns are
    checked instead (``_inspect_step``), so an error names this node and where it was created,
    not a Div inside its backward and the line that called backward()."""
    _GradMode.anomaly = False
    try:
        return ctx.backward(gy, y)
    finally:
        _GradMode.anomaly = True


def _inspect_step(ctx, y, gy, gxs):
    """Backward trace and anomaly checks for one node."""
    if _GradMode.anomaly:
        for i, gx in enumerate(gxs):
            if gx is not None:
                _check_finite(gx.data, f"the gradient for input {i}", ctx)
    if _GradMode.trace:
        from .viz import trace_line
        print(trace_line(ctx, y, gy, gxs))


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Gradients of ``outputs`` with respect to ``inputs``, as a tuple; ``.grad`` is untouched.

    Theano's ``T.grad`` and PyTorch's ``torch.autograd.grad``. With ``create_graph=True`` the
    returned gradients are themselves on the tape, so they can be differentiated again.
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
    capture = {id(x): None for x in inputs}
    _backprop(outputs, grad_outputs, retain_graph, create_graph, capture)
    result = tuple(capture[id(x)] for x in inputs)
    if not allow_unused and any(g is None for g in result):
        i = next(i for i, g in enumerate(result) if g is None)
        raise ValueError(f"grad(): input {i} (shape {inputs[i].shape}) was not used to compute "
                         "the outputs; pass allow_unused=True to get None for it")
    return result
