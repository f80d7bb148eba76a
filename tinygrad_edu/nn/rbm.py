"""Restricted Boltzmann machines, trained by contrastive divergence (the Theano tutorial's
``rbm.py``, deeplearning.net / lisa-lab/DeepLearningTutorials).

A Bernoulli-Bernoulli RBM has binary visible units v (n_visible) and hidden units h (n_hidden),
the energy E(v, h) = -v.b_v - h.b_h - v W h with W of shape (n_visible, n_hidden), and
p(v, h) = e^-E(v, h) / Z. Summing out h gives p(v) = e^-F(v) / Z with the free energy

    F(v) = -v.b_v - sum_j softplus(b_h_j + (v W)_j),        softplus(x) = log(1 + e^x),

and, given one layer, the units of the other are independent:

    p(h_j = 1 | v) = sigmoid(b_h_j + (v W)_j)          p(v_i = 1 | h) = sigmoid(b_v_i + (W h)_i)

Learning. The gradient of the negative log-likelihood of one example is

    d(-log p(v))/d(theta) = dF(v)/d(theta) - E_model[dF(v~)/d(theta)],

and contrastive divergence (CD-k, Hinton 2002) replaces the model expectation by the end v~ of
a k-step Gibbs chain started at the data (persistent CD, Tieleman 2008: at the chains of the
previous update). So :meth:`RBM.cd_loss`, mean_data F(v) - mean_chains F(v~) with v~ held
fixed, is a loss whose gradient is the CD update, and any optimizer of the engine can follow it.
"""
import numpy as np

from ..backend import device_of, get_xp
from ..creation import generator
from ..tensor import Function, Tensor, array_call, no_grad
from . import functional as F
from . import init
from .module import Module, Parameter


class Softplus(Function):
    """y = log(1 + e^x), computed as max(x, 0) + log(1 + e^-|x|), which never overflows;
    dy/dx = sigmoid(x). (Not yet among the engine's ops, so it lives here.)"""
    def forward(ctx, x):
        xp = get_xp(x)
        return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(ctx, gy, y):
        return gy * ctx.inputs[0].sigmoid()


def softplus(x):
    return Softplus.apply(x)


def bernoulli(probs):
    """Binary samples with P(1) = probs, as a float tensor of probs' dtype with no gradient,
    drawn from the random generator of probs' device (so ``tg.manual_seed`` fixes them)."""
    return Tensor._wrap(array_call(_bernoulli, probs.data))  # (fresh in every tg.compile replay)


def _bernoulli(p):
    u = generator(device_of(p)).random(p.shape, dtype=p.dtype)
    return (u < p).astype(p.dtype)


# ---- checking arguments (shared with autoencoder.py) ----------------------------------------
def check_data(where, x, n_features, like, what="visible data", unit_interval=True):
    """``x`` as a 2-D Tensor (N, n_features) of the dtype and device of tensor ``like``, or a
    ValueError/TypeError that says what is wrong. Array data is copied to that device and dtype;
    an integer or bool Tensor (binary images) is converted to the float dtype; a float Tensor of
    another dtype is refused, as by ``nn.functional``. ``unit_interval``: the values must lie
    in [0, 1]. Changes nothing."""
    if not isinstance(x, Tensor):
        if not hasattr(x, "shape") and not isinstance(x, (list, tuple)):
            raise TypeError(f"{where}: {what} must be a Tensor or an array, got "
                            f"{type(x).__name__}")
        x = Tensor(x, dtype=like.dtype, device=like.device)
    if x.device != like.device:
        raise ValueError(f"{where}: {what} is on {x.device}, the model on {like.device}; "
                         "move one with .to(device)")
    if x.ndim != 2 or x.shape[1] != n_features or x.shape[0] == 0:
        raise ValueError(f"{where}: expected {what} of shape (N, {n_features}) with N >= 1, "
                         f"got shape {x.shape}")
    if x.dtype.kind == "f" and x.dtype != like.dtype:
        raise TypeError(f"{where}: {what} is {x.dtype}, the model {like.dtype}; convert with "
                        ".to(dtype)")
    if x.dtype.kind != "f":
        x = Tensor._wrap(x.data.astype(like.dtype))
    if unit_interval:
        lo, hi = float(x.data.min()), float(x.data.max())
        if not (0.0 <= lo and hi <= 1.0):  # (NaN fails too)
            raise ValueError(f"{where}: {what} must be probabilities or binary values in [0, 1], "
                             f"got values from {lo:.4g} to {hi:.4g}")
    return x


def check_steps(where, k):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{where}: the number of Gibbs steps k must be an integer >= 1, "
                         f"got {k!r}")
    return int(k)


def check_size(where, name, n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{where}: {name} must be an integer >= 1, got {n!r}")
    return int(n)


def check_float_dtype(where, dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{where}: dtype must be float32 or float64, got {dtype}")
    return dtype


class RBM(Module):
    """Bernoulli-Bernoulli restricted Boltzmann machine.

    ``RBM(n_visible, n_hidden, dtype=float32, device="cpu")``

    Parameters, as in the Theano tutorial: ``W`` (n_visible, n_hidden), ``b_visible``
    (n_visible,), ``b_hidden`` (n_hidden,). The hidden conditional is ``nn.Linear(n_visible,
    n_hidden)`` with ``weight = W.T`` (PyTorch's (out, in) layout) followed by a sigmoid; the
    visible one is ``nn.Linear(n_hidden, n_visible)`` with ``weight = W``.

    Init (the tutorial's): W ~ U(-a, a) with a = 4 sqrt(6 / (n_visible + n_hidden)), drawn from
    ``creation.generator(device)`` (reproducible with ``tg.manual_seed``); biases 0.

    Visible data must be probabilities or binary values in [0, 1], of shape (N, n_visible):
    anything else raises a ValueError naming the method and the problem, before anything (the
    chains, the random generators) changes. Samples are float tensors of 0s and 1s, without
    gradient, from the generator of the parameters' device, so the same code runs on "cuda".
    """

    def __init__(self, n_visible, n_hidden, dtype=np.float32, device="cpu"):
        super().__init__()
        self.n_visible = check_size("RBM", "n_visible", n_visible)
        self.n_hidden = check_size("RBM", "n_hidden", n_hidden)
        dtype = check_float_dtype("RBM", dtype)
        xp = get_xp(device)
        self.W = Parameter(xp.zeros((self.n_visible, self.n_hidden), dtype=dtype))
        init.xavier_uniform_(self.W, gain=4.0)  # a = 4 sqrt(6 / (fan_in + fan_out))
        self.b_visible = Parameter(xp.zeros(self.n_visible, dtype=dtype))
        self.b_hidden = Parameter(xp.zeros(self.n_hidden, dtype=dtype))
        self.chains = None  # persistent chains (hidden states) kept by cd_loss(persistent=True)
        self.pl_bit = 0     # the bit pseudo_likelihood flips next

    def extra_repr(self):
        return f"n_visible={self.n_visible}, n_hidden={self.n_hidden}"

    def _visible(self, where, v):
        return check_data(f"RBM.{where}", v, self.n_visible, self.W)

    # ---- the model --------------------------------------------------------------------------
    def _free_energy(self, v):
        return -(v @ self.b_visible) - softplus(v @ self.W + self.b_hidden).sum(axis=1)

    def free_energy(self, v):
        """F(v) = -v.b_v - sum_j softplus(b_h_j + (v W)_j) for each row of v: shape (N,).
        Differentiable in the parameters (and in v)."""
        return self._free_energy(self._visible("free_energy", v))

    def _h_probs(self, v):
        return (v @ self.W + self.b_hidden).sigmoid()

    def _h(self, v):
        p = self._h_probs(v)
        return p, bernoulli(p)

    def _v(self, h):
        p = F.linear(h, self.W, self.b_visible).sigmoid()  # h W^T + b_v
        return p, bernoulli(p)

    def h_given_v(self, v):
        """(p(h = 1 | v), a sample of h): probabilities sigmoid(v W + b_h) of shape
        (N, n_hidden) (on the tape when grad mode is on) and binary samples of them."""
        return self._h(self._visible("h_given_v", v))

    def v_given_h(self, h):
        """(p(v = 1 | h), a sample of v): probabilities sigmoid(h W^T + b_v) of shape
        (N, n_visible) and binary samples of them."""
        h = check_data("RBM.v_given_h", h, self.n_hidden, self.W, what="hidden states")
        return self._v(h)

    def _gibbs(self, v, k):
        for _ in range(k):
            p, v = self._v(self._h(v)[1])
        return p, v

    def gibbs(self, v, k=1):
        """Run k >= 1 steps of block Gibbs sampling v -> h -> v from each row of v (no tape).
        Returns the final visible (probabilities, sample): the sample continues the chain (feed
        it back in), the probabilities (the tutorial's "mean field") are what one displays."""
        v, k = self._visible("gibbs", v), check_steps("RBM.gibbs", k)
        with no_grad():
            return self._gibbs(v, k)

    # ---- learning ---------------------------------------------------------------------------
    def _chain_state(self, persistent, n):
        """The hidden states to continue for PCD (checked, nothing changed), or None for CD."""
        if persistent is None or persistent is False:
            return None
        if persistent is True:
            if self.chains is None:  # the tutorial's start: one chain per example, h = 0
                # module state made with Tensor(), not an op: tg.compile reads it at each replay
                self.chains = Tensor(get_xp(self.W.data).zeros((n, self.n_hidden), self.W.dtype))
            if self.chains.device != self.W.device:  # the module was moved with .to(device)
                self.chains = self.chains.to(self.W.device)
            return self.chains
        if isinstance(persistent, Tensor):
            return check_data("RBM.cd_loss", persistent, self.n_hidden, self.W,
                              what="persistent chains (hidden states)")
        raise TypeError("RBM.cd_loss: persistent must be None (CD-k), True (PCD-k with the "
                        "chains in self.chains) or a Tensor of hidden states (n_chains, "
                        f"{self.n_hidden}) that it updates in place; got "
                        f"{type(persistent).__name__}")

    def cd_loss(self, v, k=1, persistent=None):
        """A scalar whose gradient is the CD-k (or PCD-k) update:

            L = mean_n F(v_n) - mean_m F(v~_m),      v~ the chain ends, detached

        ``persistent``: None, CD-k: each chain starts at a data row (v -> h -> v, k times).
        True, PCD-k, chains kept by the module: ``self.chains`` holds their hidden states
        (n_chains, n_hidden), started at h = 0 with one chain per example of the first batch,
        as in the tutorial; each call runs k steps h -> v -> h from there and stores the new
        h in place. Set ``rbm.chains = None`` to restart them (``rbm.chains.zero_()`` once a
        step with them is compiled: a compiled step updates the chains it recorded); they are
        not part of ``state_dict()``.
        A Tensor of hidden states (n_chains, n_hidden), PCD-k with chains kept by the caller:
        the same, and the Tensor is updated in place.

        With h(v) = p(h = 1 | v) = sigmoid(v W + b_h), autograd of L gives exactly

            dL/dW   = -(<v h(v)^T>_data - <v~ h(v~)^T>_model)
            dL/db_v = -(<v>_data - <v~>_model)
            dL/db_h = -(<h(v)>_data - <h(v~)>_model)

        (<.> a mean over the rows), so ``SGD(lr).step()`` performs the classic update
        W += lr (<v h>_data - <v h>_model) with hidden probabilities. L itself is no
        log-likelihood (it is near 0 when the chains mix fast): monitor training with
        :meth:`pseudo_likelihood` or :meth:`reconstruction_cross_entropy`.
        """
        v, k = self._visible("cd_loss", v), check_steps("RBM.cd_loss", k)
        state = self._chain_state(persistent, len(v))
        with no_grad():
            if state is None:
                _, v_model = self._gibbs(v, k)
            else:
                h = state
                for _ in range(k):
                    _, v_model = self._v(h)
                    _, h = self._h(v_model)
                state.copy_(h)  # in place (a compiled step repeats it)
        return self._free_energy(v).mean() - self._free_energy(v_model).mean()

    # ---- monitoring -------------------------------------------------------------------------
    def reconstruction_cross_entropy(self, v, sample=False):
        """Cross-entropy of v and its reconstruction p(v | h), h = p(h = 1 | v) (or, with
        ``sample=True``, a sample of h, as the tutorial's CD monitoring cost), summed over the
        visible units and averaged over the rows, in nats (a Python float; no tape):

            -mean_n sum_i [v_i log r_i + (1 - v_i) log(1 - r_i)],   r = sigmoid(h W^T + b_v)

        The tutorial prints the negative of this (its "cross_entropy" is the log-likelihood).
        """
        v = self._visible("reconstruction_cross_entropy", v)
        with no_grad():
            h = self._h(v)[1] if sample else self._h_probs(v)
            logits = F.linear(h, self.W, self.b_visible)
            ce = F.binary_cross_entropy_with_logits(logits, v, reduction="sum")
        return ce.item() / len(v)

    def pseudo_likelihood(self, v):
        """The tutorial's stochastic estimate of the log pseudo-likelihood, in nats per example
        (a Python float; no tape). With x = round(v) and x~ = x with bit i flipped,

            PL = n_visible * mean_n log sigmoid(F(x~_n) - F(x_n))

        (log p(x_i | x_-i) = log sigmoid(F(x~) - F(x)), one bit standing for all n_visible).
        The bit i is the same for all rows and moves on by one at each call, cycling through
        the inputs (``self.pl_bit``), as the tutorial's ``bit_i_idx``. For its PCD-15 recipe
        on MNIST the tutorial reports -90.65 after epoch 1 and -62.76 after epoch 15 (the mean
        of this over an epoch's batches, each computed before that batch's update).
        """
        v = self._visible("pseudo_likelihood", v)
        i = self.pl_bit % self.n_visible
        with no_grad():
            x = get_xp(v.data).floor(v.data + 0.5)  # round half up (Theano's round, for v >= 0)
            flipped = x.copy()
            flipped[:, i] = 1 - flipped[:, i]
            gap = self._free_energy(Tensor._wrap(flipped)) - self._free_energy(Tensor._wrap(x))
            cost = -softplus(-gap).mean().item() * self.n_visible  # log sigmoid(g) = -softplus(-g)
        self.pl_bit = (i + 1) % self.n_visible
        return cost


__all__ = ["RBM", "softplus", "bernoulli"]
