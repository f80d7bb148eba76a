"""``tg.compile``: record a training step once, then replay it as a flat program of array calls.

What ``theano.function`` did for a symbolic graph, done here for an eager engine, in the way of
tinygrad's TinyJit and Chainer's ``static_graph``:

1. **Record.** The first call with inputs of given shapes, dtypes and devices runs the function
   eagerly, as always, with a :class:`_Recorder` listening. Every op (``Function.apply``), every
   node's backward, every leaf's new ``.grad``, every optimizer step and every array call
   outside Function (:func:`~tinygrad_edu.tensor.array_call`: dropout's random mask, batch
   norm's running statistics) becomes one :class:`_Step` of a :class:`Program`. Arrays are
   named by *slots*: the recorder maps each array it has seen made to the slot of the step
   that made it; an array made before the call (a parameter's ``.data``) is read from its
   Tensor when the step runs, so in-place updates and ``load_state_dict`` are seen.
2. **Fuse.** Runs of consecutive elementwise ops (bias add, ReLU, dropout's mask and scale, the
   ReLU gradient) whose intermediate results nothing else reads become one generated kernel
   (``ops/fusion.py``): one pass over memory instead of one per op.
3. **Replay.** Later calls with the same kind of inputs run the steps on the new arrays: no
   Tensors, no tape, no checks, grad mode off. Random steps draw afresh; the optimizer's
   ``step`` runs its Python (so a learning-rate schedule and Adam's step count stay live); the
   returned values are new Tensors (without a tape) on the replayed arrays.

What is frozen: everything the function decided in Python while it recorded. An ``if`` on a
tensor's value, a loop whose length depends on the data, a Python number taken with
``.item()`` and used again: the replay repeats what the recording did. See docs/compile.md.
"""
import collections
import functools
import sys

import numpy as np

from .tensor import Tensor, _GradMode, is_grad_enabled

CACHE_SIZE = 8  # programs kept per compiled function (one per kind of inputs), least recent out


class CompileError(RuntimeError):
    """The function did something that a replay could not repeat."""


# ---- the program: a list of steps over a list of slots -----------------------------------------
# A step reads its arrays through *refs*: an int is a slot of the environment (an array made by
# an earlier step, or an input); anything else has a ``.data`` read when the step runs (a Tensor
# from outside the call, such as a parameter, or a _Const).

class _Const:
    """An array that is the same in every replay (a 0-d constant, the ones of loss.backward())."""
    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data


def _fetch(env, refs):
    return [env[r] if type(r) is int else r.data for r in refs]


class _Step:
    kind = "?"
    out = None

    def reads(self):
        return [r for r in self.refs if type(r) is int]


class _Op(_Step):
    """A Function's forward: ``out = cls().forward(*arrays, **params)``."""
    kind = "op"

    def __init__(self, cls, refs, params, array_params, out):
        self.cls, self.refs, self.params, self.array_params, self.out = \
            cls, refs, params, array_params, out
        self.saved = []        # (attribute of ctx, slot): arrays forward saved that others read
        self.ctx_slot = None   # set when a node's backward runs as a whole (see _Backward)

    def reads(self):
        return super().reads() + [r for r in self.array_params.values() if type(r) is int]

    def run(self, env):
        ctx = self.cls()
        params = self.params
        if self.array_params:
            params = dict(params)
            for k, r in self.array_params.items():
                a = env[r] if type(r) is int else r.data
                if type(k) is tuple:  # item i of a tuple parameter (an index x[rows, labels])
                    k, i = k
                    params[k] = params[k][:i] + (a,) + params[k][i + 1:]
                else:
                    params[k] = a
        env[self.out] = ctx.forward(*_fetch(env, self.refs), **params)
        for name, slot in self.saved:
            env[slot] = getattr(ctx, name)
        if self.ctx_slot is not None:
            env[self.ctx_slot] = ctx

    def describe(self):
        extra = [f"{k}={_short(v)}" for k, v in self.params.items()]
        extra += [f"{_param_name(k)}=%{r}" if type(r) is int else f"{_param_name(k)}=const"
                  for k, r in self.array_params.items()]
        return self.cls.__name__, ", ".join(extra)


def _param_name(k):
    return f"{k[0]}[{k[1]}]" if type(k) is tuple else k


class _Backward(_Step):
    """A node's backward run as a whole: for ops whose backward computes on arrays (Linear,
    Conv2d, the fused softmax cross-entropy). Its ctx is the one the replayed forward made."""
    kind = "backward"

    def __init__(self, cls, ctx_slot, refs, flags, gy, y, outs):
        self.name, self.ctx_slot, self.refs, self.flags = cls.__name__, ctx_slot, refs, flags
        self.gy, self.y, self.outs = gy, y, outs
        self.on_arrays = hasattr(cls, "backward_arrays")  # no Tensors needed (ops/nn_ops.py)

    def reads(self):
        return super().reads() + [s for s in (self.ctx_slot, self.gy, self.y) if type(s) is int]

    def run(self, env):
        ctx = env[self.ctx_slot]
        if self.on_arrays:
            gy = env[self.gy] if type(self.gy) is int else self.gy.data
            gxs = ctx.backward_arrays(gy, _fetch(env, self.refs), self.flags)
            for slot, gx in zip(self.outs, gxs):
                if slot is not None:
                    env[slot] = gx
            return
        inputs = []
        for a, flag in zip(_fetch(env, self.refs), self.flags):
            t = Tensor._wrap(a)
            t.requires_grad = flag
            inputs.append(t)
        ctx.inputs = tuple(inputs)
        gy, y = _fetch(env, (self.gy, self.y))
        gxs = ctx.backward(Tensor._wrap(gy), Tensor._wrap(y))
        gxs = gxs if isinstance(gxs, tuple) else (gxs,)
        for slot, gx in zip(self.outs, gxs):
            if slot is not None:
                env[slot] = gx.data

    def describe(self):
        return f"backward {self.name}", ""


class _Call(_Step):
    """``out = fn(*arrays, **params)``: an array_call (random draws, buffer updates)."""
    kind = "call"

    def __init__(self, fn, refs, params, out):
        self.fn, self.refs, self.params, self.out = fn, refs, params, out

    def run(self, env):
        env[self.out] = self.fn(*_fetch(env, self.refs), **self.params)

    def describe(self):
        name = getattr(self.fn, "__name__", type(self.fn).__name__)
        return name, ", ".join(f"{k}={_short(v)}" for k, v in self.params.items())


class _Commit(_Step):
    """A leaf's new ``.grad``, decided as eager mode decides it, when the step runs: the old
    ``.grad`` plus the gradient if there is one (gradients accumulate across calls), else the
    gradient itself, or a copy of it (``copy``: it is shared or a view). ``input``: the leaf
    is the call's argument number ``input`` (a saliency map's image), a new Tensor each call."""
    kind = "grad"

    def __init__(self, leaf, ref, copy, out, input=None):
        self.leaf, self.refs, self.copy, self.out, self.input = leaf, [ref], copy, out, input

    def run(self, env):
        g = env[self.refs[0]] if type(self.refs[0]) is int else self.refs[0].data
        old = self.leaf.grad
        if old is not None:
            g = old.data + g
        elif self.copy:
            g = g.copy()
        self.leaf.grad = Tensor._wrap(g)
        env[self.out] = g

    def describe(self):
        return f".grad of {_leaf_name(self.leaf)}", ""


class _Effect(_Step):
    """Python that runs on every replay: an optimizer's ``zero_grad`` or ``step``, gradient
    clipping. ``binds``: (parameter, ref or None) pairs, each parameter's ``.grad`` as the step
    saw it; ``regrads``: (parameter, slot) pairs for the ``.grad`` arrays after it (clipping
    may make new ones), which later steps read."""
    kind = "effect"

    def __init__(self, fn, label, binds, regrads=()):
        self.fn, self.label, self.binds, self.regrads = fn, label, binds, list(regrads)
        self.refs = [r for _, r in binds if r is not None]

    def run(self, env):
        for p, r in self.binds:
            p.grad = None if r is None else Tensor._wrap(env[r] if type(r) is int else r.data)
        self.fn()
        for p, out in self.regrads:
            env[out] = p.grad.data

    def describe(self):
        return self.label, ""


def _short(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    text = repr(v)
    return text if len(text) <= 30 else text[:27] + "..."


def _leaf_name(t):
    return t.name or f"tensor{tuple(t.shape)}"


class Program:
    """What one recording produced: the steps, the slots of the inputs, what to return."""

    def __init__(self, steps, n_slots, inputs, outputs, key):
        self.steps, self.n_slots, self.inputs, self.outputs, self.key = \
            steps, n_slots, inputs, outputs, key
        self.frees = _last_uses(steps, n_slots, inputs, outputs)
        self.plan = list(zip(steps, self.frees))  # what run() walks
        self.argument_grads = [s for s in steps if s.kind == "grad" and s.input is not None]
        self.replays = 0

    def run(self, arrays, tensors):
        """Run the steps on the input arrays (of the argument Tensors ``tensors``, None for a
        plain array); returns the outputs (new Tensors)."""
        env = [None] * self.n_slots
        for slot, a in zip(self.inputs, arrays):
            env[slot] = a
        for step in self.argument_grads:  # the gradient of an argument goes to this call's
            step.leaf = tensors[step.input]
        mode = _GradMode.enabled
        _GradMode.enabled = False  # the replay records nothing
        try:
            for step, frees in self.plan:
                step.run(env)
                for s in frees:
                    env[s] = None
        finally:
            _GradMode.enabled = mode
        self.replays += 1
        return _rebuild(self.outputs, env)

    def explain(self):
        """The program as text, one step per line (``%n`` are slots, ``[fused]`` kernels)."""
        lines = [f"program for {_key_text(self.key)}: {len(self.steps)} steps "
                 f"({sum(s.kind == 'fused' for s in self.steps)} fused kernels), "
                 f"replayed {self.replays} times"]
        lines.append("  inputs: " + ", ".join(f"%{s}" for s in self.inputs))
        for i, step in enumerate(self.steps):
            name, extra = step.describe()
            args = ", ".join(f"%{r}" if type(r) is int else _ref_name(r) for r in step.refs)
            outs = [step.out] if step.out is not None else []
            outs += [s for _, s in [*getattr(step, "saved", ()), *getattr(step, "regrads", ())]]
            outs += [s for s in getattr(step, "outs", ()) if s is not None]
            lhs = ", ".join(f"%{s}" for s in outs)
            call = f"{name}({args}{', ' if args and extra else ''}{extra})"
            lines.append(f"  {i:3d}  {lhs + ' = ' if lhs else ''}{call}")
        lines.append("  returns: " + _outputs_text(self.outputs))
        return "\n".join(lines)


def _ref_name(r):
    if isinstance(r, Tensor):
        return _leaf_name(r)
    return f"const{tuple(r.data.shape)}"


def _last_uses(steps, n_slots, inputs, outputs):
    """For each step, the slots no later step reads: the replay drops them right after it, so
    activations are freed as soon as the backward pass has used them, as in eager mode."""
    kept = set(_output_slots(outputs))
    last = {}
    for i, step in enumerate(steps):
        for s in step.reads():
            last[s] = i
        made = [step.out] + [s for _, s in getattr(step, "saved", ())] + \
            [s for _, s in getattr(step, "regrads", ())] + \
            list(getattr(step, "outs", ())) + [getattr(step, "ctx_slot", None)]
        for s in made:
            if type(s) is int and s not in last:
                last[s] = i  # made and (so far) never read
    frees = [[] for _ in steps]
    for s, i in last.items():
        if s not in kept:
            frees[i].append(s)
    return [tuple(f) for f in frees]


# ---- outputs: Tensors (or lists, tuples, dicts of them) ------------------------------------------
def _flatten_outputs(value, slot_of):
    if value is None:
        return None
    if isinstance(value, Tensor):
        s = slot_of(value)
        return ("slot", s) if type(s) is int else ("tensor", value)
    if isinstance(value, (tuple, list)):
        return (type(value), [_flatten_outputs(v, slot_of) for v in value])
    if isinstance(value, dict):
        return (dict, {k: _flatten_outputs(v, slot_of) for k, v in value.items()})
    raise CompileError(
        f"tg.compile: the function returned a {type(value).__name__}; return Tensors (or "
        "tuples, lists or dicts of them). A Python number computed while recording (e.g. by "
        ".item()) would be returned unchanged by every replay: return the Tensor and call "
        ".item() on the result")


def _output_slots(spec):
    if spec is None:
        return []
    kind, v = spec
    if kind == "slot":
        return [v]
    if kind == "tensor":
        return []
    items = v.values() if kind is dict else v
    return [s for item in items for s in _output_slots(item)]


def _rebuild(spec, env):
    if spec is None:
        return None
    kind, v = spec
    if kind == "slot":
        return Tensor._wrap(env[v])
    if kind == "tensor":
        return v
    if kind is dict:
        return {k: _rebuild(item, env) for k, item in v.items()}
    return kind(_rebuild(item, env) for item in v)


def _outputs_text(spec):
    if spec is None:
        return "None"
    kind, v = spec
    if kind == "slot":
        return f"%{v}"
    if kind == "tensor":
        return _leaf_name(v)
    if kind is dict:
        return "{" + ", ".join(f"{k!r}: {_outputs_text(i)}" for k, i in v.items()) + "}"
    return "(" + ", ".join(_outputs_text(i) for i in v) + ")"


# ---- recording ------------------------------------------------------------------------------
def _is_array(a):
    return isinstance(a, np.ndarray) or hasattr(a, "__cuda_array_interface__")


class _Recorder:
    """Listens to one eager call (installed as ``_GradMode.recorder``) and writes its Program.

    ``slots`` maps id(array) -> slot for every array a step made (the arrays are kept alive
    while recording, so an id is never reused). ``raw`` holds the arrays wrapped into Tensors
    by engine code outside any step (``Tensor._wrap`` of an array computed with NumPy): used
    inside a node's backward, they make that node's backward run as a whole; used anywhere
    else they cannot be replayed, which is an error that names the line."""

    def __init__(self):
        self.steps, self.slots, self.keep, self.raw = [], {}, [], {}
        self.consts = {}       # id(array) -> _Const: 0-d numbers and loss.backward()'s ones
        self.op_of = {}        # id(ctx) -> its _Op
        self.taint = None      # while a node's backward records: the first raw array it used
        self.in_backward = False
        self.paused = 0
        self.arguments = {}    # id(Tensor argument) -> its number among the call's arrays

    def new_slot(self, array):
        slot = len(self.keep)
        self.keep.append(array)
        self.slots[id(array)] = slot
        return slot

    def ref(self, array, tensor=None, user=""):
        slot = self.slots.get(id(array))
        if slot is not None:
            return slot
        if id(array) in self.consts:
            return self.consts[id(array)]
        if id(array) in self.raw:
            where = self.raw[id(array)][1]
            if self.in_backward:
                self.taint = self.taint or where
                return _Const(array)
            raise CompileError(
                f"tg.compile: {user} uses an array of shape {tuple(array.shape)} that was "
                f"computed outside the engine's ops (at {where}); a replay would reuse the "
                "recorded values. Compute it with Tensor ops, or with tg.array_call")
        return tensor if tensor is not None else _Const(array)

    # the hooks the engine calls (tensor.py, optim/optimizer.py)
    def op(self, ctx, inputs, params, y):
        if self.paused:
            return
        name = type(ctx).__name__
        refs = [self.ref(t.data, t, name) for t in inputs]
        plain, arrays = {}, {}
        for k, v in params.items():
            if _is_array(v):
                arrays[k] = self.ref(v, None, f"{name}'s {k}")
            elif type(v) is tuple and any(_is_array(e) for e in v):  # x[rows, labels]
                for i, e in enumerate(v):
                    if _is_array(e):
                        arrays[(k, i)] = self.ref(e, None, f"{name}'s {k}")
                plain[k] = tuple(None if _is_array(e) else e for e in v)
            else:
                plain[k] = v
        self.raw.pop(id(y.data), None)
        step = _Op(type(ctx), refs, plain, arrays, None)
        known = {id(t.data) for t in inputs} | {id(v) for v in params.values()} | \
            {id(e) for v in params.values() if type(v) is tuple for e in v}
        step.out = self.new_slot(y.data)
        for attr, value in vars(ctx).items() if hasattr(ctx, "__dict__") else ():
            if _is_array(value) and id(value) not in known and id(value) != id(y.data):
                step.saved.append((attr, self.new_slot(value)))
        self.op_of[id(ctx)] = step
        self.steps.append(step)

    def call(self, fn, arrays, params, out):
        if self.paused:
            return
        refs = [self.ref(a, None, getattr(fn, "__name__", "array_call")) for a in arrays]
        self.raw.pop(id(out), None)
        self.steps.append(_Call(fn, refs, dict(params), self.new_slot(out)))

    def inplace(self, what, t):
        if not self.paused:
            raise CompileError(
                f"tg.compile: {what} on a tensor of shape {t.shape} inside the compiled "
                "function changes it outside the engine's ops, so a replay would not repeat "
                "it; use out-of-place ops, or tg.array_call")

    def start_backward(self, root_grads, create_graph):
        if create_graph and not self.paused:
            raise CompileError("tg.compile: backward(create_graph=True) cannot be compiled; "
                               "call the function without tg.compile")
        for g in root_grads:  # loss.backward()'s ones: a constant
            if self.raw.pop(id(g.data), None) is not None:
                self.consts[id(g.data)] = _Const(g.data)

    def backward(self, ctx, gy, y, call):
        if self.paused:
            return call(ctx, gy, y)
        op = self.op_of.get(id(ctx))
        if op is None:
            raise CompileError(f"tg.compile: backward reached a {type(ctx).__name__} that was "
                               "computed before the compiled function was called; compute "
                               "everything the loss depends on inside it")
        start, self.taint, self.in_backward = len(self.steps), None, True
        try:
            gxs = call(ctx, gy, y)
        finally:
            self.in_backward = False
        if self.taint is None and all(gx is None or id(gx.data) in self.slots for gx in gxs):
            return gxs  # its ops were recorded one by one
        del self.steps[start:]  # it computed on arrays: run it whole
        if op.ctx_slot is None:
            op.ctx_slot = self.new_slot(ctx)
        flags = [t.requires_grad for t in ctx.inputs]
        # y: the op's own output slot (the tape may hold a shell of y, see tensor._shell)
        gy = self.ref(gy.data, gy, f"the backward of {type(ctx).__name__}")
        outs = [None if gx is None else self.new_slot(gx.data) for gx in gxs]
        self.steps.append(_Backward(type(ctx), op.ctx_slot, list(op.refs), flags,
                                    gy, op.out, outs))
        return gxs

    def commit(self, found, taken, create_graph, commit_now):
        for t, g in found:
            # (when t has a .grad now, a replay may find none: copy then, to be safe)
            copy = t.grad is not None or id(g) in taken or g.data.base is not None
            ref = self.ref(g.data, g, "a gradient")
            self.paused += 1
            try:
                commit_now([(t, g)], taken, create_graph)
            finally:
                self.paused -= 1
            slot = self.slots.get(id(t.grad.data))
            self.steps.append(_Commit(t, ref, copy, self.new_slot(t.grad.data)
                                      if slot is None else slot, self.arguments.get(id(t))))

    def effect(self, fn, label, params, regrads=False):
        """Run ``fn`` (an optimizer's zero_grad or step) now and on every replay. ``regrads``:
        ``fn`` may put new ``.grad`` arrays in place (clipping), which later steps must read."""
        if self.paused:
            return fn()
        binds = []
        for p in params:
            ref = None
            if p.grad is not None:
                ref = self.ref(p.grad.data, None, f"{label} (the .grad of {_leaf_name(p)})")
                if type(ref) is not int:
                    raise CompileError(
                        f"tg.compile: {label} reads a .grad of {_leaf_name(p)} that was not "
                        "computed by the compiled function's backward (set by NumPy code?)")
            binds.append((p, ref))
        self.paused += 1
        try:
            result = fn()
        finally:
            self.paused -= 1
        regrads = [(p, self.new_slot(p.grad.data)) for p in params
                   if regrads and p.grad is not None]  # even where this call changed nothing
        self.steps.append(_Effect(fn, label, binds, regrads))
        return result

    # Tensor._wrap while recording: note the arrays engine code wraps outside any step
    def install(self):
        original = Tensor.__dict__["_wrap"].__func__
        recorder = self

        def _wrap(array):
            if id(array) not in recorder.slots and not recorder.paused:
                if array.ndim == 0:  # a number made into a tensor (x * 2.0): a constant
                    recorder.consts[id(array)] = _Const(array)
                else:
                    frame = sys._getframe(1)
                    where = f"{frame.f_code.co_filename}:{frame.f_lineno}"
                    recorder.raw[id(array)] = (array, where)
            return original(array)

        self.original_wrap = original
        Tensor._wrap = staticmethod(_wrap)
        _GradMode.recorder = self

    def uninstall(self):
        _GradMode.recorder = None
        Tensor._wrap = staticmethod(self.original_wrap)


# ---- the decorator --------------------------------------------------------------------------
def _signature(args, kwargs):
    """(the cache key of a call, the input arrays in order, their Tensors or None)."""
    key, arrays, tensors = [is_grad_enabled()], [], []

    def visit(v):
        if isinstance(v, Tensor):
            arrays.append(v.data)
            tensors.append(v)
            return ("T", v.shape, str(v.dtype), v.device, v.requires_grad)
        if _is_array(v):
            arrays.append(v)
            tensors.append(None)
            return ("A", tuple(v.shape), str(v.dtype), type(v).__module__)
        if isinstance(v, (tuple, list)):
            return (type(v).__name__, tuple(visit(x) for x in v))
        if isinstance(v, dict):
            return ("dict", tuple((k, visit(x)) for k, x in sorted(v.items())))
        try:
            hash(v)
            return ("V", v)
        except TypeError:
            return ("O", id(v))
    key.append(tuple(visit(a) for a in args))
    key.append(tuple((k, visit(v)) for k, v in sorted(kwargs.items())))
    return tuple(key), arrays, tensors


def _key_text(key):
    shapes = []

    def visit(k):
        if isinstance(k, tuple) and k and k[0] in ("T", "A"):
            shapes.append(f"{k[2]}{list(k[1])}")
        elif isinstance(k, tuple):
            for x in k:
                visit(x)
    visit(key[1:])
    return "(" + ", ".join(shapes) + ")"


class CompiledFunction:
    """What :func:`compile` returns: call it like the function. ``programs`` holds the
    recorded programs by input kind; ``explain()`` prints them."""

    def __init__(self, fn, cache_size=CACHE_SIZE, fuse=True):
        functools.update_wrapper(self, fn)
        self.fn, self.cache_size, self.fuse = fn, cache_size, fuse
        self.programs = collections.OrderedDict()
        self.recordings = 0

    def __call__(self, *args, **kwargs):
        key, arrays, tensors = _signature(args, kwargs)
        program = self.programs.get(key)
        if program is not None:
            self.programs.move_to_end(key)
            return program.run(arrays, tensors)
        if _GradMode.recorder is not None:
            raise CompileError("tg.compile: a compiled function called while another one "
                               "records; compile the outer one only")
        result, program = _record(self.fn, args, kwargs, arrays, tensors, key, self.fuse)
        self.recordings += 1
        self.programs[key] = program
        if len(self.programs) > self.cache_size:
            self.programs.popitem(last=False)
        return result

    def explain(self, file=None):
        """Print every recorded program (the eager tape as a compiled graph)."""
        text = "\n\n".join(p.explain() for p in self.programs.values()) or \
            f"{self.__name__}: nothing recorded yet (call it once)"
        print(text, file=file)

    def __repr__(self):
        return f"<compiled {self.__name__}: {len(self.programs)} programs>"


def _record(fn, args, kwargs, arrays, tensors, key, fuse):
    rec = _Recorder()
    inputs = [rec.new_slot(a) for a in arrays]
    rec.arguments = {id(t): i for i, t in enumerate(tensors) if t is not None}
    rec.install()
    try:
        result = fn(*args, **kwargs)
        outputs = _flatten_outputs(result, lambda t: rec.ref(t.data, t, "the result"))
    finally:
        rec.uninstall()
    steps = _fold_constants(rec.steps, rec.keep)
    if fuse:
        from .ops.fusion import fuse_steps
        steps = fuse_steps(steps, set(_output_slots(outputs)), rec)
    return result, Program(steps, len(rec.keep), inputs, outputs, key)


def _fold_constants(steps, keep):
    """Drop the ops whose inputs are all constants (the 1/N of a mean's backward): their
    recorded result is the constant; the steps that read it read it as one."""
    folded, out = {}, []

    def fold(r):
        return folded.get(r, r) if type(r) is int else r
    for step in steps:
        step.refs = [fold(r) for r in step.refs]
        if step.kind == "op":
            step.array_params = {k: fold(r) for k, r in step.array_params.items()}
            if (all(isinstance(r, _Const) for r in step.refs + list(step.array_params.values()))
                    and not step.saved and step.ctx_slot is None):
                folded[step.out] = _Const(keep[step.out])
                continue
        elif step.kind == "backward":
            step.gy = fold(step.gy)
        elif step.kind == "effect":
            step.binds = [(p, None if r is None else fold(r)) for p, r in step.binds]
        out.append(step)
    return out


def compile(fn=None, *, cache_size=CACHE_SIZE, fuse=True):
    """Record ``fn`` on its first call, replay it on later calls with the same kind of inputs.

    Use it as ``@tg.compile`` or ``tg.compile(fn)``. ``fn`` may run a forward pass, a
    ``backward()`` and an optimizer ``zero_grad``/``step``, built from engine ops; it returns
    Tensors (or tuples, lists, dicts of them, or None). A call whose Tensor and array
    arguments have shapes, dtypes or devices (or whose other arguments have values) not seen
    before records a new program; ``cache_size`` programs are kept. ``fuse=False`` keeps
    every elementwise op as its own step.

    Python control flow is frozen at recording; see docs/compile.md for what goes wrong when
    it is not. The replayed values are bit-identical to an eager call's.
    """
    if fn is None:
        return lambda f: CompiledFunction(f, cache_size, fuse)
    return CompiledFunction(fn, cache_size, fuse)
