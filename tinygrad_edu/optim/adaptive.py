"""Adaptive learning rates: each parameter element gets its own step size from its gradient history.

Formulas and defaults are PyTorch's (``torch.optim``); each docstring says where epsilon goes and
how Lasagne (``lasagne/updates.py``) and the Theano tutorials differ. In all of them g is the
gradient after coupled weight decay, ``g = g + weight_decay * p`` (an L2 penalty
(weight_decay/2) |p|^2 added to the loss), and squares, roots and divisions are elementwise.
"""
import math

from ..backend import get_xp
from .optimizer import Optimizer


class _Adaptive(Optimizer):
    state_counters = ("step",)

    def check_hyperparameters(self, group):
        super().check_hyperparameters(group)
        self.require(group, "eps", lambda e: e >= 0, ">= 0")
        self.require(group, "weight_decay", lambda w: w >= 0, ">= 0")
        for name in ("alpha", "rho"):
            self.require(group, name, lambda r: 0 <= r <= 1, "in [0, 1]")

    @staticmethod
    def decayed(p, g, group):
        wd = float(group["weight_decay"])
        return g + wd * p if wd else g


class RMSprop(_Adaptive):
    """``RMSprop(params, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
    centered=False, eps_inside_sqrt=False)``

    Divide the gradient by a running root mean square of recent gradients (Tieleman & Hinton,
    Coursera lecture 6.5, 2012)::

        v = alpha * v + (1 - alpha) * g^2
        s = v                       (centered: a = alpha * a + (1 - alpha) * g;  s = v - a^2)
        d = sqrt(s) + eps           (PyTorch, the default: eps OUTSIDE the root)
        d = sqrt(s + eps)           (eps_inside_sqrt=True: Lasagne and the Theano tutorial)
        p = p - lr * g / d          (momentum: b = momentum * b + g / d;  p = p - lr * b)

    Where eps goes matters when v is tiny: outside, a step is at most about lr * g / eps; inside,
    sqrt(eps) bounds the divisor, so steps stay near lr * g / sqrt(eps) (1e-3 for eps = 1e-6).
    To reproduce the Theano tutorial's "modern net" (``RMSprop(cost, params, lr=0.001, rho=0.9,
    epsilon=1e-6)``) use ``RMSprop(params, lr=0.001, alpha=0.9, eps=1e-6, eps_inside_sqrt=True)``;
    ``lasagne.updates.rmsprop`` is the same rule with defaults lr=1.0, rho=0.9, epsilon=1e-6.
    """

    state_arrays = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, params, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, eps_inside_sqrt=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered,
                                      eps_inside_sqrt=eps_inside_sqrt))

    def check_hyperparameters(self, group):
        super().check_hyperparameters(group)
        self.require(group, "momentum", lambda m: m >= 0, ">= 0")

    def required_state(self, group):
        names = ["step", "square_avg"]
        if group["momentum"]:
            names.append("momentum_buffer")
        if group["centered"]:
            names.append("grad_avg")
        return names

    def init_state(self, p, group):
        xp = get_xp(p)
        state = {"step": 0, "square_avg": xp.zeros_like(p)}
        if group["momentum"]:
            state["momentum_buffer"] = xp.zeros_like(p)
        if group["centered"]:
            state["grad_avg"] = xp.zeros_like(p)
        return state

    def update(self, p, g, state, group):
        xp = get_xp(p)
        lr, alpha, eps = float(group["lr"]), float(group["alpha"]), float(group["eps"])
        g = self.decayed(p, g, group)
        state["step"] += 1
        v = state["square_avg"]
        v *= alpha
        v += (1.0 - alpha) * g * g
        s = v
        if group["centered"]:
            a = state["grad_avg"]
            a *= alpha
            a += (1.0 - alpha) * g
            s = v - a * a
        d = xp.sqrt(s + eps) if group["eps_inside_sqrt"] else xp.sqrt(s) + eps
        if group["momentum"]:
            b = state["momentum_buffer"]
            b *= float(group["momentum"])
            b += g / d
            p -= lr * b
        else:
            p -= lr * g / d


class Adam(_Adaptive):
    """``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False)``

    Momentum on the gradient and on its square, both bias-corrected for their start at zero
    (Kingma & Ba, "Adam", ICLR 2015, Algorithm 1); t counts this parameter's steps from 1::

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        v_max = max(v_max, v);  v = v_max                      (amsgrad: Reddi et al., ICLR 2018)
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    eps is added OUTSIDE the root, to the bias-corrected sqrt(v) (PyTorch). ``lasagne.updates.adam``
    (same defaults) adds it to the uncorrected root, ``p -= lr sqrt(1 - beta2^t) / (1 - beta1^t)
    * m / (sqrt(v) + eps)`` (the paper's "efficient version"), which is this rule with eps
    replaced by eps / sqrt(1 - beta2^t): the two differ only while v is tiny, in the first steps.
    ``weight_decay`` here is an L2 penalty added to g; see :class:`AdamW` for the decoupled kind.
    """

    state_arrays = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad))

    def check_hyperparameters(self, group):
        super().check_hyperparameters(group)
        self.require(group, "betas", lambda b: len(b) == 2 and all(0 <= x < 1 for x in b),
                     "two numbers in [0, 1)")

    def required_state(self, group):
        names = ["step", "exp_avg", "exp_avg_sq"]
        return names + ["max_exp_avg_sq"] if group["amsgrad"] else names

    def init_state(self, p, group):
        xp = get_xp(p)
        state = {"step": 0, "exp_avg": xp.zeros_like(p), "exp_avg_sq": xp.zeros_like(p)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = xp.zeros_like(p)
        return state

    def update(self, p, g, state, group):
        xp = get_xp(p)
        lr, eps = float(group["lr"]), float(group["eps"])
        beta1, beta2 = (float(b) for b in group["betas"])
        g = self.decayed(p, g, group)
        state["step"] += 1
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1.0 - beta1) * g
        v *= beta2
        v += (1.0 - beta2) * g * g
        if group["amsgrad"]:
            v = xp.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        d = xp.sqrt(v) / math.sqrt(1.0 - beta2 ** t) + eps
        p -= lr / (1.0 - beta1 ** t) * m / d


class AdamW(Adam):
    """``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False)``

    Adam with decoupled weight decay (Loshchilov & Hutter, ICLR 2019): first ``p = p - lr *
    weight_decay * p``, then the Adam step with the plain gradient. Unlike an L2 term in g, the
    decay is not divided by sqrt(v), so every weight shrinks at the same relative rate.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)

    @staticmethod
    def decayed(p, g, group):
        p *= 1.0 - float(group["lr"]) * float(group["weight_decay"])
        return g


class Adagrad(_Adaptive):
    """``Adagrad(params, lr=0.01, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
    eps=1e-10)``

    Divide by the root of the sum of all squared gradients so far (Duchi et al., JMLR 2011)::

        s = s + g^2                                (s starts at initial_accumulator_value)
        p = p - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)

    eps is OUTSIDE the root (PyTorch). ``lasagne.updates.adagrad`` puts it inside,
    ``p -= lr * g / sqrt(s + eps)``, with defaults lr=1.0, epsilon=1e-6 and no lr_decay.
    """

    state_arrays = ("sum",)

    def __init__(self, params, lr=0.01, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps))

    def check_hyperparameters(self, group):
        super().check_hyperparameters(group)
        self.require(group, "lr_decay", lambda d: d >= 0, ">= 0")
        self.require(group, "initial_accumulator_value", lambda v: v >= 0, ">= 0")

    def required_state(self, group):
        return ("step", "sum")

    def init_state(self, p, group):
        return {"step": 0,
                "sum": get_xp(p).full_like(p, float(group["initial_accumulator_value"]))}

    def update(self, p, g, state, group):
        xp = get_xp(p)
        g = self.decayed(p, g, group)
        state["step"] += 1
        lr = float(group["lr"]) / (1.0 + (state["step"] - 1) * float(group["lr_decay"]))
        s = state["sum"]
        s += g * g
        p -= lr * g / (xp.sqrt(s) + float(group["eps"]))


class Adadelta(_Adaptive):
    """``Adadelta(params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0)``

    Running averages of squared gradients and of squared updates; their ratio is the step size,
    so the update has the units of p (Zeiler, "ADADELTA", 2012, Algorithm 1)::

        v = rho * v + (1 - rho) * g^2
        delta = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta^2
        p = p - lr * delta

    eps is INSIDE both roots, in PyTorch, Lasagne and the paper. ``lasagne.updates.adadelta`` is
    the same rule with defaults lr=1.0, rho=0.95, epsilon=1e-6.
    """

    state_arrays = ("square_avg", "acc_delta")

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay))

    def required_state(self, group):
        return ("step", "square_avg", "acc_delta")

    def init_state(self, p, group):
        xp = get_xp(p)
        return {"step": 0, "square_avg": xp.zeros_like(p), "acc_delta": xp.zeros_like(p)}

    def update(self, p, g, state, group):
        xp = get_xp(p)
        rho, eps = float(group["rho"]), float(group["eps"])
        g = self.decayed(p, g, group)
        state["step"] += 1
        v, u = state["square_avg"], state["acc_delta"]
        v *= rho
        v += (1.0 - rho) * g * g
        delta = xp.sqrt(u + eps) / xp.sqrt(v + eps) * g
        u *= rho
        u += (1.0 - rho) * delta * delta
        p -= float(group["lr"]) * delta
