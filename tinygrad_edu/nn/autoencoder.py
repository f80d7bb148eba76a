"""Autoencoders: the Theano tutorial's (denoising) autoencoder with tied weights (``dA.py``), and
deep autoencoders (Hinton & Salakhutdinov, Science 2006) built from such layers or from scratch.

An autoencoder layer maps an input x (n_visible) to a code h (n_hidden) and back:

    x~ = x * m,   m_i ~ Bernoulli(1 - corruption)      (masking noise; training mode only)
    h  = s(x~ W^T + b)                                 (encoder: nn.Linear(n_visible, n_hidden))
    z  = sigmoid(h W + c)                              (decoder: the SAME W, transposed)

and learns to reconstruct the clean x from x~ by minimising the cross-entropy summed over the
inputs and averaged over the batch, L = -mean_n sum_i [x_i log z_i + (1 - x_i) log(1 - z_i)]
(or a squared error). With tied weights W is one Parameter used twice, so its gradient is the
sum of both uses, dL/dW = (encoder's part) + (decoder's part)^T: the engine adds them up.
"""
import numpy as np

from ..backend import get_xp
from ..creation import generator
from ..tensor import Tensor, array_call, no_grad
from . import functional as F
from . import init
from .layers import Linear
from .module import Module, Parameter
from .rbm import RBM, check_data, check_float_dtype, check_size

ACTIVATIONS = {"sigmoid": F.sigmoid, "tanh": F.tanh, "relu": F.relu, "linear": lambda x: x}
LOSSES = ("cross_entropy", "mse")


def _masking_noise(shape, p, dtype, device):
    """The masking noise's mask, 1 (keep) with probability 1 - p, as an array of ``dtype``."""
    return (generator(device).random(shape, dtype=dtype) >= p).astype(dtype)


def _activation(where, name, value):
    if value not in ACTIVATIONS:
        raise ValueError(f"{where}: {name} must be one of {sorted(ACTIVATIONS)}, got {value!r}")
    return value


def _gain(activation):
    # the tutorials draw sigmoid layers 4 times wider than Glorot's bound (for tanh)
    return 4.0 if activation == "sigmoid" else 1.0 if activation == "linear" \
        else init.calculate_gain(activation)


def reconstruction_loss(logits, x, kind, output="sigmoid"):
    """The reconstruction cost of a batch, summed over the inputs and averaged over the rows:
    "cross_entropy", -sum_i [x_i log z_i + (1 - x_i) log(1 - z_i)] with z = sigmoid(logits),
    computed from the logits (stable); "mse", sum_i (z_i - x_i)^2 with z = output(logits)."""
    if kind == "cross_entropy":
        return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
    d = ACTIVATIONS[output](logits) - x
    return (d * d).sum() / len(x)


def _check_loss(where, kind, output, x):
    """Check a loss request; for cross-entropy, x must be in [0, 1]. Returns x."""
    if kind not in LOSSES:
        raise ValueError(f"{where}: kind must be 'cross_entropy' or 'mse', got {kind!r}")
    if kind == "cross_entropy" and output != "sigmoid":
        raise ValueError(f"{where}: the cross-entropy needs a sigmoid output, this model's is "
                         f"{output!r}; use kind='mse'")
    return x


class TiedAutoencoder(Module):
    """One autoencoder layer with tied weights (the tutorial's ``dA``).

    ``TiedAutoencoder(n_visible, n_hidden, corruption=0.0, activation="sigmoid",
    output_activation="sigmoid", dtype=float32, device="cpu")``

    Parameters: ``weight`` (n_hidden, n_visible) and ``bias`` (n_hidden,), as an
    ``nn.Linear(n_visible, n_hidden)`` (PyTorch's layout; the tutorial's W is its transpose),
    and ``decoder_bias`` (n_visible,). The decoder's weight is ``weight.T``: no second Parameter.

    Init: weight ~ U(-a, a), a = gain sqrt(6 / (n_visible + n_hidden)), gain 4 for sigmoid
    units as in the tutorial (1 for linear, ``init.calculate_gain`` otherwise); biases 0.

    ``corruption``: the probability of zeroing each input in :meth:`forward` and :meth:`loss`
    (masking noise of a denoising autoencoder; the mask comes from the generator of the input's
    device), in training mode only; ``model.eval()`` turns it off. :meth:`encode` never corrupts.
    """

    def __init__(self, n_visible, n_hidden, corruption=0.0, activation="sigmoid",
                 output_activation="sigmoid", dtype=np.float32, device="cpu"):
        super().__init__()
        where = "TiedAutoencoder"
        self.n_visible = check_size(where, "n_visible", n_visible)
        self.n_hidden = check_size(where, "n_hidden", n_hidden)
        if (isinstance(corruption, bool) or not isinstance(corruption, (int, float))
                or not 0.0 <= corruption < 1.0):
            raise ValueError(f"{where}: corruption must be a probability in [0, 1), got "
                             f"{corruption!r}")
        self.corruption = float(corruption)
        self.activation = _activation(where, "activation", activation)
        self.output_activation = _activation(where, "output_activation", output_activation)
        dtype, xp = check_float_dtype(where, dtype), get_xp(device)
        self.weight = Parameter(xp.zeros((self.n_hidden, self.n_visible), dtype=dtype))
        init.xavier_uniform_(self.weight, gain=_gain(activation))
        self.bias = Parameter(xp.zeros(self.n_hidden, dtype=dtype))
        self.decoder_bias = Parameter(xp.zeros(self.n_visible, dtype=dtype))

    def extra_repr(self):
        return (f"n_visible={self.n_visible}, n_hidden={self.n_hidden}, "
                f"corruption={self.corruption}, activation={self.activation!r}")

    def _input(self, where, x, unit_interval=False):
        return check_data(f"TiedAutoencoder.{where}", x, self.n_visible, self.weight,
                          what="input", unit_interval=unit_interval)

    def _corrupt(self, x):
        if not self.training or self.corruption == 0.0:
            return x
        keep = array_call(_masking_noise, shape=x.shape, p=self.corruption, dtype=x.dtype,
                          device=x.device)    # (a fresh mask in every tg.compile replay)
        return x * Tensor._wrap(keep)         # no 1 / (1 - p) scaling, as the tutorial

    def corrupt(self, x):
        """x with each element zeroed with probability ``corruption`` (training mode only)."""
        return self._corrupt(self._input("corrupt", x))

    def _encode(self, x):
        return ACTIVATIONS[self.activation](F.linear(x, self.weight, self.bias))

    def _decode_logits(self, h):
        return F.linear(h, self.weight.T, self.decoder_bias)  # h W + c: the tied weight

    def encode(self, x):
        """The code h = s(x W^T + b), shape (N, n_hidden); never corrupted."""
        return self._encode(self._input("encode", x))

    def decode_logits(self, h):
        """The decoder's pre-activation h W + c, shape (N, n_visible)."""
        h = check_data("TiedAutoencoder.decode_logits", h, self.n_hidden, self.weight,
                       what="code", unit_interval=False)
        return self._decode_logits(h)

    def decode(self, h):
        """The reconstruction z = sigmoid(h W + c) (or the output activation chosen)."""
        return ACTIVATIONS[self.output_activation](self.decode_logits(h))

    def forward(self, x):
        """The reconstruction of x (of the corrupted x in training mode)."""
        x = self._input("forward", x)
        z = self._decode_logits(self._encode(self._corrupt(x)))
        return ACTIVATIONS[self.output_activation](z)

    def loss(self, x, kind="cross_entropy"):
        """The cost of reconstructing the clean x from its corruption, summed over the inputs,
        averaged over the rows (see ``reconstruction_loss``); for "cross_entropy" (the
        tutorial's) x must lie in [0, 1]."""
        x = _check_loss("TiedAutoencoder.loss", kind, self.output_activation,
                        self._input("loss", x, unit_interval=kind == "cross_entropy"))
        logits = self._decode_logits(self._encode(self._corrupt(x)))
        return reconstruction_loss(logits, x, kind, self.output_activation)


class DeepAutoencoder(Module):
    """A deep autoencoder: encoder sizes[0] -> ... -> sizes[-1] (the code), decoder mirrored.

    ``DeepAutoencoder(sizes, activation="sigmoid", code_activation="linear", tied=False,
    dtype=float32, device="cpu")``, e.g. ``DeepAutoencoder((784, 1000, 500, 250, 30))`` for
    Hinton & Salakhutdinov's MNIST autoencoder (logistic units, a linear 30-unit code).

    ``encoder``: a list of ``nn.Linear`` (``encoder.0.weight`` ...), ``activation`` after each
    but the last, which gets ``code_activation``. Decoder, ``tied=False``: a list of
    ``nn.Linear`` in the mirrored sizes (``decoder.0`` maps the code back), ``activation``
    after each but the last, whose output is the logit of each input (the reconstruction is its
    sigmoid). ``tied=True``: the decoder reuses the encoder's weights transposed and has only
    its biases ``decoder_biases.i``. Init as ``TiedAutoencoder``'s (gain 4 for sigmoid).

    :meth:`from_pretrained` unrolls stacked pre-trained layers (RBMs or TiedAutoencoders) into
    an untied deep autoencoder, ready to be fine-tuned end to end with :meth:`loss`.
    """

    def __init__(self, sizes, activation="sigmoid", code_activation="linear", tied=False,
                 dtype=np.float32, device="cpu"):
        super().__init__()
        where = "DeepAutoencoder"
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or len(sizes) < 2:
            raise ValueError(f"{where}: sizes must be a sequence of at least 2 layer sizes, got "
                             f"{sizes!r}")
        self.sizes = tuple(check_size(where, f"sizes[{i}]", n) for i, n in enumerate(sizes))
        self.activation = _activation(where, "activation", activation)
        self.code_activation = _activation(where, "code_activation", code_activation)
        self.tied = bool(tied)
        dtype, xp = check_float_dtype(where, dtype), get_xp(device)

        def layer(n_in, n_out, act):
            lin = Linear(n_in, n_out)
            lin.weight.data = xp.zeros((n_out, n_in), dtype=dtype)
            lin.bias.data = xp.zeros(n_out, dtype=dtype)
            init.xavier_uniform_(lin.weight, gain=_gain(act))
            return lin

        pairs = list(zip(self.sizes, self.sizes[1:]))
        self.encoder = [layer(a, b, activation if i < len(pairs) - 1 else code_activation)
                        for i, (a, b) in enumerate(pairs)]
        if self.tied:
            self.decoder_biases = [Parameter(xp.zeros(a, dtype=dtype)) for a, _ in pairs[::-1]]
        else:
            self.decoder = [layer(b, a, activation) for a, b in pairs[::-1]]

    def extra_repr(self):
        return (f"sizes={self.sizes}, activation={self.activation!r}, "
                f"code_activation={self.code_activation!r}, tied={self.tied}")

    @classmethod
    def from_pretrained(cls, layers, code_activation="linear"):
        """Unroll pre-trained layers (``pretrain_rbms`` / ``pretrain_autoencoders`` results, the
        first one's input first) into an untied DeepAutoencoder: encoder layer i gets layer i's
        up weights (an RBM's W^T, an autoencoder's weight) and hidden bias, the mirrored decoder
        layer their transpose and the visible bias (Hinton & Salakhutdinov's "unrolling").
        The arrays are copied; the activation is the layers' (sigmoid)."""
        layers = list(layers)
        weights = check_stack("DeepAutoencoder.from_pretrained", layers)
        sizes = [weights[0][0].shape[1]] + [w.shape[0] for w, _ in weights]
        first = weights[0][0]
        model = cls(sizes, activation="sigmoid", code_activation=code_activation,
                    dtype=first.dtype, device=first.device)
        with no_grad():
            for lin, (w, b) in zip(model.encoder, weights):
                lin.weight.copy_(w.data)
                lin.bias.copy_(b.data)
            for lin, m, (w, _) in zip(model.decoder, layers[::-1], weights[::-1]):
                lin.weight.copy_(w.data.T)
                lin.bias.copy_((m.b_visible if isinstance(m, RBM) else m.decoder_bias).data)
        return model

    def _input(self, where, x, unit_interval=False):
        return check_data(f"DeepAutoencoder.{where}", x, self.sizes[0],
                          self.encoder[0].weight, what="input", unit_interval=unit_interval)

    def _encode(self, x):
        for i, lin in enumerate(self.encoder):
            last = i == len(self.encoder) - 1
            x = ACTIVATIONS[self.code_activation if last else self.activation](lin(x))
        return x

    def _decode_logits(self, h):
        n = len(self.encoder)
        for i in range(n):
            if self.tied:
                h = F.linear(h, self.encoder[n - 1 - i].weight.T, self.decoder_biases[i])
            else:
                h = self.decoder[i](h)
            if i < n - 1:
                h = ACTIVATIONS[self.activation](h)
        return h

    def encode(self, x):
        """The code, shape (N, sizes[-1])."""
        return self._encode(self._input("encode", x))

    def decode_logits(self, h):
        """The logits of the reconstruction from a code h, shape (N, sizes[0])."""
        h = check_data("DeepAutoencoder.decode_logits", h, self.sizes[-1],
                       self.encoder[0].weight, what="code", unit_interval=False)
        return self._decode_logits(h)

    def decode(self, h):
        """The reconstruction sigmoid(decode_logits(h))."""
        return self.decode_logits(h).sigmoid()

    def forward(self, x):
        """The reconstruction of x, in [0, 1]."""
        return self._decode_logits(self._encode(self._input("forward", x))).sigmoid()

    def loss(self, x, kind="cross_entropy"):
        """Reconstruction cost summed over the inputs, averaged over the rows: "cross_entropy"
        (x in [0, 1]) or "mse" (squared error of the sigmoid reconstruction)."""
        x = _check_loss("DeepAutoencoder.loss", kind, "sigmoid",
                        self._input("loss", x, unit_interval=kind == "cross_entropy"))
        return reconstruction_loss(self._decode_logits(self._encode(x)), x, kind)


def up_weights(layer):
    """(weight, bias) of a pre-trained layer's recognition (upward) pass in ``nn.Linear``'s
    layout: an RBM's (W^T, b_hidden), a TiedAutoencoder's (weight, bias)."""
    if isinstance(layer, RBM):
        with no_grad():
            return layer.W.T, layer.b_hidden
    if isinstance(layer, TiedAutoencoder):
        return layer.weight, layer.bias
    raise TypeError(f"expected an RBM or a TiedAutoencoder, got {type(layer).__name__}")


def check_stack(where, layers):
    """The ``up_weights`` of a list of pre-trained layers, checked: a non-empty list of RBMs and
    TiedAutoencoders, each taking as many inputs as the previous one has hidden units."""
    if not layers or not all(isinstance(m, (RBM, TiedAutoencoder)) for m in layers):
        raise TypeError(f"{where}: expected a non-empty list of RBM or TiedAutoencoder layers, "
                        f"got {[type(m).__name__ for m in layers]}")
    weights = [up_weights(m) for m in layers]
    for i, ((w, _), (w2, _)) in enumerate(zip(weights, weights[1:])):
        if w2.shape[1] != w.shape[0]:
            raise ValueError(f"{where}: layer {i + 1} takes {w2.shape[1]} inputs but layer {i} "
                             f"has {w.shape[0]} hidden units")
    return weights


__all__ = ["TiedAutoencoder", "DeepAutoencoder", "up_weights", "reconstruction_loss"]
