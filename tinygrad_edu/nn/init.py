"""Weight initializers: Lasagne's formulas (``lasagne/init.py``) under PyTorch's names.

Each ``*_`` function fills a tensor's ``.data`` in place (outside the tape, keeping its dtype and
device), bumps its version and returns it. Random ones draw from
``tinygrad_edu.creation.generator(device)``, so ``tg.manual_seed(n)`` makes them reproducible.
The names without the trailing underscore (``glorot_uniform``, ``he_normal``...) are aliases.

Fans include the receptive field. For a weight of shape (out, in, *kernel) -- PyTorch's layout
for Linear (out_features, in_features) and Conv2d (F, C, kh, kw) --

    fan_in = in * prod(kernel)        fan_out = out * prod(kernel)

so a 3x3 convolution from 32 to 64 channels has fan_in = 288 and fan_out = 576.

    Glorot/Xavier (Glorot & Bengio 2010):  std = gain * sqrt(2 / (fan_in + fan_out))
    He/Kaiming (He et al. 2015):           std = gain / sqrt(fan)   (fan = fan_in or fan_out)
    uniform versions draw from U(-a, a) with a = sqrt(3) * std, which has that std.
"""
import math

import numpy as np

from ..creation import generator
from ..tensor import no_grad

_GAINS = {"linear": 1.0, "identity": 1.0, "conv1d": 1.0, "conv2d": 1.0, "conv3d": 1.0,
          "sigmoid": 1.0, "tanh": 5.0 / 3, "relu": math.sqrt(2.0), "selu": 3.0 / 4}


def calculate_gain(nonlinearity, param=None):
    """The factor that keeps activations' variance steady through ``nonlinearity``.

    linear, conv and sigmoid: 1; tanh: 5/3; relu: sqrt(2) (Lasagne's ``gain="relu"``);
    leaky_relu with negative slope ``param`` (default 0.01): sqrt(2 / (1 + param^2)); selu: 3/4.
    The Theano tutorials draw sigmoid layers' weights 4 times wider than tanh's Glorot bound;
    to get that, pass ``gain=4.0`` to ``xavier_uniform_`` yourself.
    """
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"calculate_gain: negative slope {slope!r} is not a number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity not in _GAINS:
        raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}; expected one "
                         f"of {sorted(_GAINS) + ['leaky_relu']}")
    return _GAINS[nonlinearity]


def _calculate_fan_in_and_fan_out(t):
    """(fan_in, fan_out) of a weight of shape (out, in, *kernel); see the module docstring."""
    if t.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor with at least 2 dimensions, got "
                         f"shape {t.shape}")
    receptive_field = math.prod(t.shape[2:])
    return t.shape[1] * receptive_field, t.shape[0] * receptive_field


def _fan(t, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = _calculate_fan_in_and_fan_out(t)[0 if mode == "fan_in" else 1]
    if fan == 0:
        raise ValueError(f"cannot initialize a tensor of shape {t.shape}: its {mode} is 0")
    return fan


def _fill(t, values):
    with no_grad():  # both cast to t's dtype and bump its version
        t.copy_(values) if hasattr(values, "shape") else t.fill_(values)
    return t


def _random(name, t):
    if t.dtype.kind != "f":
        raise TypeError(f"{name}: needs a floating-point tensor, got dtype {t.dtype}")
    return generator(t.device)


def uniform_(t, a=0.0, b=1.0):
    """Fill with samples of U(a, b)."""
    if not a <= b:
        raise ValueError(f"uniform_: need a <= b, got a={a}, b={b}")
    g = _random("uniform_", t)
    return _fill(t, a + (b - a) * g.random(t.shape, dtype=np.float64))


def normal_(t, mean=0.0, std=1.0):
    """Fill with samples of N(mean, std^2)."""
    if std < 0:
        raise ValueError(f"normal_: std must be >= 0, got {std}")
    g = _random("normal_", t)
    return _fill(t, mean + std * g.standard_normal(t.shape, dtype=np.float64))


def constant_(t, val):
    return _fill(t, val)


def zeros_(t):
    return _fill(t, 0)


def ones_(t):
    return _fill(t, 1)


def xavier_uniform_(t, gain=1.0):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)); Lasagne's ``GlorotUniform``."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -a, a)


def xavier_normal_(t, gain=1.0):
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)); Lasagne's ``GlorotNormal``."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(t, a=0, mode="fan_in", nonlinearity="relu"):
    """U(-b, b) with b = sqrt(3) * gain / sqrt(fan); ``a`` is leaky_relu's negative slope.
    Lasagne's ``HeUniform(gain="relu")`` with PyTorch's defaults."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(t, mode))
    return uniform_(t, -math.sqrt(3.0) * std, math.sqrt(3.0) * std)


def kaiming_normal_(t, a=0, mode="fan_in", nonlinearity="relu"):
    """N(0, std^2) with std = gain / sqrt(fan); Lasagne's ``HeNormal(gain="relu")``."""
    return normal_(t, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(_fan(t, mode)))


glorot_uniform_, glorot_normal_ = xavier_uniform_, xavier_normal_
he_uniform_, he_normal_ = kaiming_uniform_, kaiming_normal_
# the (and Lasagne's) names, without the in-place underscore; they fill in place too
glorot_uniform, glorot_normal, he_uniform, he_normal = (xavier_uniform_, xavier_normal_,
                                                        kaiming_uniform_, kaiming_normal_)
xavier_uniform, xavier_normal, kaiming_uniform, kaiming_normal = (xavier_uniform_, xavier_normal_,
                                                                  kaiming_uniform_, kaiming_normal_)
uniform, normal, constant, zeros, ones = uniform_, normal_, constant_, zeros_, ones_

__all__ = ["calculate_gain", "uniform_", "normal_", "constant_", "zeros_", "ones_",
           "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
           "glorot_uniform_", "glorot_normal_", "he_uniform_", "he_normal_",
           "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "xavier_uniform",
           "xavier_normal", "kaiming_uniform", "kaiming_normal", "uniform", "normal",
           "constant", "zeros", "ones"]
