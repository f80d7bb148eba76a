"""Elementwise fusion for tg.compile: a run of elementwise ops becomes one generated kernel.

Eagerly, ``relu(x)`` then dropout's ``* scale`` and ``* keep`` are three passes over memory, each
writing a full array that the next one reads back. Fused, one loop reads x and the mask once
and writes y once. How (``fuse_steps``):

1. Find runs of consecutive recorded ops whose class says ``elementwise = True`` and whose
   intermediate results are read by nothing outside the run.
2. Run each op's own ``forward`` on :class:`Sym` values instead of arrays: ``a + b`` on two
   Syms makes a node ``("add", a, b)``, so the ops' code is reused, not rewritten.
3. Write the nodes as the body of a loop nest (Numba on the CPU) or of a CuPy ElementwiseKernel
   (GPU), with the broadcasting of every input fixed from the recorded shapes.

Exactness: only ops whose IEEE 754 result is fully determined are fusable: + - * /, sqrt,
negation, maximum/minimum, comparisons, selects. Each result is rounded to its dtype right
away, as NumPy does (a float32 op computed in float64 and rounded once gives the same bits
for these operations). exp, log and tanh are left out: NumPy's vectorized exp and Numba's
libm exp differ in the last bit. The fused kernel is also checked once, on the recorded
arrays, against the eager result; if a bit differs the run stays unfused.
"""
import numpy as np

from ..backend import get_xp


class Sym:
    """A symbolic array: an op of the fused kernel (or an input of it), with its dtype and shape."""
    __array_ufunc__ = None  # np.float32(2) * sym calls Sym.__rmul__

    def __init__(self, op, args, dtype, shape):
        self.op, self.args, self.dtype, self.shape = op, args, np.dtype(dtype), tuple(shape)

    ndim = property(lambda self: len(self.shape))

    def _binary(self, op, other, swap=False):
        other = _value(other)
        if isinstance(other, Sym):
            dtype, shape = np.result_type(self.dtype, other.dtype), \
                np.broadcast_shapes(self.shape, other.shape)
        elif isinstance(other, (bool, int, float, np.number, np.bool_)):
            dtype, shape = np.result_type(self.dtype, other), self.shape
            other = Sym("const", (other,), dtype, ())
        else:
            raise NotFusable(f"operand of type {type(other).__name__}")
        if op in ("gt", "ge", "lt", "le", "eq", "ne"):
            dtype = np.dtype(bool)
        a, b = (other, self) if swap else (self, other)
        return Sym(op, (a, b), dtype, shape)

    __add__ = lambda s, o: s._binary("add", o)
    __radd__ = lambda s, o: s._binary("add", o, True)
    __sub__ = lambda s, o: s._binary("sub", o)
    __rsub__ = lambda s, o: s._binary("sub", o, True)
    __mul__ = lambda s, o: s._binary("mul", o)
    __rmul__ = lambda s, o: s._binary("mul", o, True)
    __truediv__ = lambda s, o: s._binary("div", o)
    __rtruediv__ = lambda s, o: s._binary("div", o, True)
    __gt__ = lambda s, o: s._binary("gt", o)
    __ge__ = lambda s, o: s._binary("ge", o)
    __lt__ = lambda s, o: s._binary("lt", o)
    __le__ = lambda s, o: s._binary("le", o)
    __iadd__, __isub__, __imul__, __itruediv__ = __add__, __sub__, __mul__, __truediv__

    def __neg__(self):
        return Sym("neg", (self,), self.dtype, self.shape)

    def astype(self, dtype):
        return Sym("cast", (self,), dtype, self.shape)


class NotFusable(Exception):
    pass


class SymModule:
    """The few ``xp`` functions that fusable forwards and update rules call, for get_xp(sym)."""

    @staticmethod
    def maximum(a, b, out=None):
        return _store(_select_op("maximum", _value(a), _value(b)), out)

    @staticmethod
    def minimum(a, b, out=None):
        return _store(_select_op("minimum", _value(a), _value(b)), out)

    @staticmethod
    def sqrt(a, out=None):
        a = _value(a)
        return _store(Sym("sqrt", (a,), a.dtype, a.shape), out)

    @staticmethod
    def where(c, a, b):
        c, a, b = _value(c), _value(a), _value(b)
        a, b = (x if isinstance(x, Sym) else Sym("const", (x,), c.dtype, ()) for x in (a, b))
        return Sym("where", (c, a, b), np.result_type(a.dtype, b.dtype),
                   np.broadcast_shapes(c.shape, a.shape, b.shape))

    @staticmethod
    def array(a, copy=True):  # SGD's first momentum buffer: a new state array
        return Var(_value(a))


def _store(value, out):
    """``out=``: the Var that an in-place NumPy call would write."""
    if out is None:
        return value
    if not isinstance(out, Var):
        raise NotFusable("out= that is not a state array")
    out.value = value
    return out


def _select_op(op, a, b):
    if not isinstance(a, Sym):
        a, b = b, a
    return a._binary(op, b)


Sym.symbolic_xp = SymModule  # what get_xp(sym) returns


# ---- finding the runs -----------------------------------------------------------------------
def _is_candidate(step):
    return (step.kind == "op" and getattr(step.cls, "elementwise", False) and not step.saved
            and step.ctx_slot is None)


def fuse_steps(steps, kept, rec):
    """The steps with each fusable run replaced by one _Fused step (``kept``: slots returned)."""
    steps = _hoist_calls(steps)
    readers = {}
    for i, step in enumerate(steps):
        for s in step.reads():
            readers.setdefault(s, set()).add(i)
    out, i = [], 0
    while i < len(steps):
        if not _is_candidate(steps[i]):
            out.append(steps[i])
            i += 1
            continue
        j = i
        while j < len(steps) and _is_candidate(steps[j]):
            j += 1
        out += _fuse_block(steps, i, j, readers, kept, rec)
        i = j
    return out


def _hoist_calls(steps):
    """Move each array_call (dropout's mask draw) up past the fusable ops before it that it
    does not read, so that relu and the dropout after it become neighbours. Random draws keep
    their order among themselves (they only pass ops, never each other)."""
    steps = list(steps)
    for i in range(len(steps)):
        if steps[i].kind != "call":
            continue
        reads, k = set(steps[i].reads()), i
        while k > 0 and _is_candidate(steps[k - 1]) and steps[k - 1].out not in reads:
            steps[k - 1], steps[k] = steps[k], steps[k - 1]
            k -= 1
    return steps


def _fuse_block(steps, i, j, readers, kept, rec):
    """Split steps[i:j] (all candidates) into groups, right to left: a step joins the group of
    the steps after it when only they read its result."""
    groups, group = [], [j - 1]
    for k in range(j - 2, i - 1, -1):
        s = steps[k].out
        if s not in kept and readers.get(s, set()) <= set(group):
            group.insert(0, k)
        else:
            groups.insert(0, group)
            group = [k]
    groups.insert(0, group)
    result = []
    for g in groups:
        members = [steps[k] for k in g]
        fused = _try_fuse(members, rec) if len(members) > 1 else None
        result += [fused] if fused is not None else members
    return result


def _array_of(ref, rec):
    return rec.keep[ref] if type(ref) is int else ref.data


def _try_fuse(members, rec):
    leaves, values = {}, {}

    def sym_of(ref):
        key = ref if type(ref) is int else id(ref)
        if type(ref) is int and ref in values:
            return values[ref]
        if key not in leaves:
            a = _array_of(ref, rec)
            leaves[key] = (ref, Sym("leaf", (len(leaves),), a.dtype, a.shape))
        return leaves[key][1]

    try:
        for m in members:
            args = [sym_of(r) for r in m.refs]
            params = dict(m.params, **{k: sym_of(r) for k, r in m.array_params.items()})
            y = m.cls.forward(_Scratch(), *args, **params)
            final = rec.keep[m.out]
            if not isinstance(y, Sym) or y.dtype != final.dtype or y.shape != final.shape:
                return None
            values[m.out] = y
    except NotFusable:
        return None
    if y.ndim == 0:
        return None
    refs = [ref for ref, _ in leaves.values()]
    sample = _array_of(refs[0], rec)
    kernel = make_kernel(y, [s for _, s in leaves.values()], get_xp(sample) is np)
    step = _Fused(kernel, refs, members[-1].out, y.shape, y.dtype,
                  [f"{m.cls.__name__}" for m in members])
    # compile it now, and check it once against what eager mode computed (when every input is
    # still as it was: a parameter read through its Tensor may have been updated since)
    got = kernel([_array_of(r, rec) for r in refs], y.shape, y.dtype)
    if all(type(r) is int for r in refs) and not _same_bits(got, rec.keep[members[-1].out]):
        return None
    return step


def _same_bits(a, b):
    """The same bits, except in NaNs: the sign of a NaN (inf - inf gives -NaN on x86, NumPy's
    SIMD loops may give +NaN) carries no meaning, and the next op treats both alike."""
    a, b = (np.asarray(get_xp(x).asnumpy(x) if get_xp(x) is not np else x) for x in (a, b))
    return a.shape == b.shape and same_bits_but_nan_signs(a, b)


def same_bits_but_nan_signs(a, b):
    nan = np.isnan(a)
    return bool((nan == np.isnan(b)).all()) and a[~nan].tobytes() == b[~nan].tobytes()


class _Scratch:
    """A ctx for running a forward on Syms (what it saves is thrown away)."""


class _Fused:
    kind = "fused"

    def __init__(self, kernel, refs, out, shape, dtype, members):
        self.kernel, self.refs, self.out, self.shape, self.dtype, self.members = \
            kernel, refs, out, shape, dtype, members

    def reads(self):
        return [r for r in self.refs if type(r) is int]

    def run(self, env):
        env[self.out] = self.kernel([env[r] if type(r) is int else r.data for r in self.refs],
                                    self.shape, self.dtype)

    def describe(self):
        return "[fused] " + " -> ".join(self.members), ""


# ---- code generation ------------------------------------------------------------------------
def _order(ys):
    """The non-leaf nodes under ys, each after its arguments (explicit stack)."""
    order, seen, stack = [], set(), [(y, False) for y in reversed(ys)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen or node.op == "leaf":
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack += [(a, False) for a in reversed(node.args) if isinstance(a, Sym)]
    return order


_C_OPS = {"add": "{} + {}", "sub": "{} - {}", "mul": "{} * {}", "div": "{} / {}",
          "gt": "{} > {}", "ge": "{} >= {}", "lt": "{} < {}", "le": "{} <= {}",
          "eq": "{} == {}", "ne": "{} != {}", "neg": "-{}"}


def _expressions(ys, leaf_names, cast, sqrt, select):
    """(lines of (name, expression), the names of ys, the constants' values in order): the
    body of the loop. Constants become arguments c0, c1, ... (so an optimizer's changing
    learning rate reuses the kernel); each float result is rounded to its dtype by ``cast``."""
    names, lines, consts = {}, [], []

    def name(n):
        if n.op == "leaf":
            return leaf_names[n.args[0]]
        return names[id(n)]

    for n in _order(ys):
        if n.op == "const":
            names[id(n)] = cast(f"c{len(consts)}", n.dtype)
            consts.append(n.args[0])
            continue
        a = [name(x) for x in n.args]
        if n.op in _C_OPS:  # operands in the dtype NumPy computes in (a comparison's too)
            like = n.dtype if n.dtype != bool else np.result_type(*(v.dtype for v in n.args))
            e = _C_OPS[n.op].format(*(cast(x, like) for x in a))
        elif n.op == "sqrt":
            e = sqrt(a[0])
        elif n.op == "cast":
            e = a[0]
        elif n.op in ("maximum", "minimum"):  # NumPy's: a NaN in either gives NaN; a tie
            pick = ">" if n.op == "maximum" else "<"  # gives b, as NumPy's SIMD loops do
            e = select(f"({a[0]} {pick} {a[1]} or {a[0]} != {a[0]})", a[0], a[1])
        elif n.op == "where":
            e = select(a[0], a[1], a[2])
        else:
            raise NotFusable(n.op)
        names[id(n)] = f"t{len(lines)}"
        lines.append((names[id(n)], cast(e, n.dtype)))
    return lines, [name(y) for y in ys], consts


_NUMBA = {}  # source -> jitted kernels
_NAMES = {}  # dtype -> its name (dtype.name is slow, and this runs on every optimizer step)


def numba_kernel(ys, leaves, shape):
    """(jitted kernel(o0, o1, ..., a0, a1, ..., c0, c1, ...), constants, source): one loop nest
    over ``shape`` computing every y of ``ys`` into o0, o1, ... from the leaves' arrays a0, ...
    Each leaf's broadcasting (a size-1 or missing axis) is fixed from its shape."""
    n = len(shape)
    index, prologue = [], []
    for leaf in leaves:
        k, offset = leaf.args[0], n - leaf.ndim
        idx = ["0" if d == 1 and shape[offset + j] != 1 else f"i{offset + j}"
               for j, d in enumerate(leaf.shape)]
        if idx:
            index.append(f"a{k}[{', '.join(idx)}]")
        else:  # a 0-d input: read once, before the loop (a parallel loop cannot index it)
            prologue.append(f"    s{k} = a{k}[()]")
            index.append(f"s{k}")

    def cast(e, dtype):
        name = _NAMES.get(dtype) or _NAMES.setdefault(dtype, np.dtype(dtype).name)
        return e if name == "bool" else f"np.{name}({e})"

    lines, results, consts = _expressions(ys, index, cast, lambda a: f"np.sqrt({a})",
                                          lambda c, a, b: f"({a} if {c} else {b})")
    args = [f"o{k}" for k in range(len(ys))] + [f"a{leaf.args[0]}" for leaf in leaves] + \
        [f"c{k}" for k in range(len(consts))]
    src = [f"def kernel({', '.join(args)}):"] + prologue
    for d in range(n):
        loop = "prange" if d == 0 else "range"  # threads share the outer loop (if parallel)
        src.append("    " * (d + 1) + f"for i{d} in {loop}(o0.shape[{d}]):")
    body = "    " * (n + 1)
    src += [f"{body}{name} = {e}" for name, e in lines]
    src += [f"{body}o{k}[{', '.join(f'i{d}' for d in range(n))}] = {r}"
            for k, r in enumerate(results)]
    source = "\n".join(src)
    if source not in _NUMBA:
        from . import cpu_kernels  # noqa: F401  (sets Numba's OpenMP threads to sleep when idle)
        import numba
        scope = {"np": np, "prange": numba.prange}
        exec(source, scope)  # our own generated code, from the recorded ops only
        # error_model="numpy": x / 0 is inf, as in NumPy (Python's model would raise, and its
        # check keeps the loop from being vectorized); the parallel variant for big arrays
        _NUMBA[source] = (numba.njit(error_model="numpy")(scope["kernel"]),
                          numba.njit(error_model="numpy", parallel=True)(scope["kernel"]))
    serial, parallel = _NUMBA[source]

    def kernel(*args):
        return (parallel if args[0].size >= PARALLEL_MIN_SIZE else serial)(*args)
    return kernel, consts, source


PARALLEL_MIN_SIZE = 1 << 15  # below this, starting the threads costs more than they save


def make_kernel(y, leaves, cpu):
    """A function (arrays, shape, dtype) -> the result array, for the expression y."""
    if not cpu:
        return _cupy_kernel(y, leaves)
    jitted, consts, source = numba_kernel([y], leaves, y.shape)

    def run(arrays, shape, dtype):
        out = np.empty(shape, dtype)
        jitted(out, *arrays, *consts)
        return out
    run.source = source
    return run


# ---- an optimizer's update rule as one kernel -------------------------------------------------
class Var:
    """A symbolic array that in-place ops change, as they change an array: ``v *= a`` points
    ``v.value`` to a new node, and everything holding this Var (the state dict, an alias
    ``s = v``) sees the new value, as everything holding the array would."""
    __array_ufunc__ = None
    symbolic_xp = None  # set below: get_xp(var) is SymModule

    def __init__(self, value):
        self.value = value

    dtype = property(lambda self: self.value.dtype)
    shape = property(lambda self: self.value.shape)
    ndim = property(lambda self: self.value.ndim)

    def astype(self, dtype):
        return self.value.astype(dtype)


def _var_methods():
    def binary(name):
        return lambda self, o: getattr(self.value, name)(_value(o))

    def inplace(name):
        def f(self, o):
            self.value = getattr(self.value, name)(_value(o))
            if self.value.dtype != self.dtype:
                self.value = self.value.astype(self.dtype)
            return self
        return f
    for op in ("add", "sub", "mul", "truediv"):
        for name in (f"__{op}__", f"__r{op}__", ):
            setattr(Var, name, binary(name))
        setattr(Var, f"__i{op}__", inplace(f"__{op}__"))
    for name in ("__gt__", "__ge__", "__lt__", "__le__"):
        setattr(Var, name, binary(name))
    Var.__neg__ = lambda self: -self.value


_var_methods()
Var.symbolic_xp = SymModule


def _value(x):
    return x.value if isinstance(x, Var) else x


def fused_update(rule, p, g, state, group):
    """Run ``rule(p, g, state, group)`` (an optimizer's update) on Vars, then its arithmetic as
    one Numba kernel over the flat arrays: one pass over memory instead of one per operation.
    The rule's Python runs as always (Adam's step count, the learning rate of this step), so
    only the array work is fused. Returns False, with nothing changed, when the rule does
    anything the kernel cannot do; then the caller runs it as it is."""
    arrays = {"p": p, "g": g}
    arrays.update({k: v for k, v in state.items() if isinstance(v, np.ndarray)})
    if any(a.shape != p.shape or a.dtype != p.dtype or not a.flags.c_contiguous
           for a in arrays.values()):
        return False
    leaves = {k: Sym("leaf", (i,), a.dtype, (a.size,)) for i, (k, a) in enumerate(arrays.items())}
    P, G = Var(leaves["p"]), Var(leaves["g"])
    traced = {k: Var(leaves[k]) if k in leaves else v for k, v in state.items()}
    try:
        rule(P, G, traced, group)
    except (NotFusable, TypeError, AttributeError):
        return False
    if any(k in leaves and not isinstance(traced[k], Var) for k in state):
        return False  # the rule replaced a state array by something else
    written = [(P, p, "p")] + [(traced[k], state[k], k) for k in arrays if k not in "pg"]
    written = [(v, a) for v, a, k in written if v.value is not leaves[k]]  # changed ones
    new = [k for k, v in traced.items() if k not in state and isinstance(v, Var)]
    outs = [a.reshape(-1) for _, a in written] + [np.empty(p.size, p.dtype) for _ in new]
    values = [v.value for v, _ in written] + [traced[k].value for k in new]
    if not values:
        return True
    try:
        kernel, consts, _ = numba_kernel(values, list(leaves.values()), (p.size,))
    except NotFusable:
        return False
    kernel(*outs, *(a.reshape(-1) for a in arrays.values()), *consts)
    for k, v in traced.items():  # the rule's counters (step) and new state arrays
        if k in new:
            state[k] = outs[len(written) + new.index(k)].reshape(p.shape)
        elif not isinstance(v, Var):
            state[k] = v
    return True


def _cupy_kernel(y, leaves):
    """The same loop body as a CuPy ElementwiseKernel (which does the broadcasting itself)."""
    import cupy
    ctype = {"float32": "float", "float64": "double", "bool": "bool", "int64": "long long"}

    def cast(e, dtype):
        return f"(({ctype[np.dtype(dtype).name]})({e}))"

    names = [f"a{leaf.args[0]}" for leaf in leaves]
    lines, (result,), consts = _expressions([y], names, cast, lambda a: f"sqrt({a})",
                                            lambda c, a, b: f"(({c}) ? ({a}) : ({b}))")
    params = ", ".join([f"{leaf.dtype.name} {n}" for leaf, n in zip(leaves, names)]
                       + [f"float64 c{k}" for k in range(len(consts))])
    body = " ".join(f"{ctype[y.dtype.name]} {k} = {e};" for k, e in lines) + f" out = {result};"
    # --fmad=false: NVRTC would otherwise contract a * b + c into one FMA, rounding once where
    # the unfused ops round twice, and the replay would not be bit-identical
    kernel = cupy.ElementwiseKernel(params, f"{y.dtype.name} out", body, "tg_fused",
                                    options=("--fmad=false",))

    def run(arrays, shape, dtype):
        out = cupy.empty(shape, dtype)
        kernel(*arrays, *(float(c) for c in consts), out)
        return out
    run.source = body
    return run
