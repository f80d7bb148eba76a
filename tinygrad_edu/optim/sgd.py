"""Stochastic gradient descent, with momentum and Nesterov momentum."""
from ..backend import get_xp
from .optimizer import Optimizer, _required


class SGD(Optimizer):
    """``SGD(params, lr, momentum=0, nesterov=False, weight_decay=0, dampening=0)``

    PyTorch's formulas (``torch.optim.SGD``), with g the gradient, p the parameter, v the velocity::

        g = g + weight_decay * p                     (L2 penalty (weight_decay/2) * |p|^2)
        v = g                                        (first step)
        v = momentum * v + (1 - dampening) * g       (later steps)
        g = g + momentum * v   if nesterov   else   v
        p = p - lr * g

    Lasagne (``lasagne.updates.momentum`` / ``nesterov_momentum``) and the Theano tutorials fold
    the learning rate into the velocity instead::

        v = momentum * v - lr * g;   p = p + v                  (momentum)
        v = momentum * v - lr * g;   p = p + momentum * v - lr * g   (Nesterov)

    With a constant lr the two are the same algorithm: Lasagne's v is -lr times PyTorch's v, so
    the parameters follow the same path (PyTorch's first v = g matches Lasagne's v starting at 0).
    They differ only when lr changes during training: PyTorch's new lr applies at once to the
    whole velocity, Lasagne's only to new gradients. Nesterov needs momentum > 0, dampening = 0.
    Reference: Sutskever et al., "On the importance of initialization and momentum", ICML 2013.
    """

    state_arrays = ("momentum_buffer",)  # made on the first step with momentum, so not required

    def __init__(self, params, lr=_required, momentum=0.0, nesterov=False, weight_decay=0.0,
                 dampening=0.0):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params, defaults)

    def check_hyperparameters(self, group):
        super().check_hyperparameters(group)
        self.require(group, "momentum", lambda m: m >= 0, ">= 0")
        self.require(group, "weight_decay", lambda w: w >= 0, ">= 0")
        self.require(group, "dampening", lambda d: 0 <= d <= 1, "in [0, 1]")
        if group.get("nesterov") and (group.get("momentum", 0) <= 0
                                      or group.get("dampening", 0) != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")

    def update(self, p, g, state, group):
        lr, mu, wd = float(group["lr"]), float(group["momentum"]), float(group["weight_decay"])
        if wd:
            g = g + wd * p
        if mu:
            v = state.get("momentum_buffer")  # made on the first step with momentum
            if v is None:
                v = state["momentum_buffer"] = get_xp(p).array(g, copy=True)
            else:
                v *= mu
                v += (1.0 - float(group["dampening"])) * g
            g = g + mu * v if group["nesterov"] else v
        p -= lr * g
