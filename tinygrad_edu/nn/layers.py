"""Layers: modules that own their parameters and call ``nn.functional`` in ``forward``.

Names, arguments and defaults are PyTorch's (Embedding's N(0, 1) init too), except the default
initialization of Linear and Conv2d, which is Lasagne's: Glorot/Xavier uniform weights (gain 1)
and zero bias. (PyTorch uses
kaiming_uniform with a = sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), for both.) Re-initialize
with ``nn.init`` as you like. Every layer checks its input's rank and feature or channel count
and names itself and both shapes in the error.
"""
from collections import OrderedDict

import numpy as np

from ..ops.geometry import adaptive_size_pair, size_pair
from ..tensor import Tensor, array_call, no_grad
from . import functional as F
from . import init
from .module import Module, Parameter


def _int(layer, name, v, minimum=1):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ValueError(f"{layer}: {name} must be an integer >= {minimum}, got {v!r}")
    return int(v)


def _check_input(layer, x, ranks, expected, dim=None, size=None):
    """Raise unless x is a Tensor with ndim in ``ranks`` (and ``x.shape[dim] == size``)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer!r}: expected a Tensor, got {type(x).__name__}")
    if x.ndim not in ranks or (dim is not None and x.shape[dim] != size):
        raise ValueError(f"{layer!r}: expected input of shape {expected}, got {x.shape}")


def _check_dim(layer, x, dim, what="dim"):
    if not -max(x.ndim, 1) <= dim < max(x.ndim, 1):
        raise ValueError(f"{layer!r}: {what}={dim} is out of range for input of shape {x.shape}")


class Linear(Module):
    """y = x W^T + b with W of shape (out_features, in_features): input (*, in) -> (*, out).

    Init: W ~ Glorot uniform U(-a, a), a = sqrt(6 / (in + out)) (Lasagne's default); b = 0.
    """

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features = _int("Linear", "in_features", in_features)
        self.out_features = _int("Linear", "out_features", out_features)
        self.weight = Parameter(np.zeros((out_features, in_features), dtype=np.float32))
        init.xavier_uniform_(self.weight)
        self.bias = Parameter(np.zeros(out_features, dtype=np.float32)) if bias else None

    def forward(self, x):
        _check_input(self, x, range(1, 64), f"(*, {self.in_features})", -1, self.in_features)
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Conv2d(Module):
    """2-D convolution (cross-correlation), NCHW: (N, C_in, H, W) -> (N, C_out, OH, OW) with
    OH = (H + 2 padding - kh) // stride + 1. Weight (C_out, C_in, kh, kw), bias (C_out,).

    Init: Glorot uniform with fan_in = C_in kh kw, fan_out = C_out kh kw (Lasagne); bias = 0.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self.in_channels = _int("Conv2d", "in_channels", in_channels)
        self.out_channels = _int("Conv2d", "out_channels", out_channels)
        self.kernel_size = size_pair("Conv2d", "kernel_size", kernel_size, 1, each=True)
        self.stride = size_pair("Conv2d", "stride", stride, 1, each=True)
        self.padding = size_pair("Conv2d", "padding", padding, 0, each=True)
        shape = (out_channels, in_channels) + self.kernel_size
        self.weight = Parameter(np.zeros(shape, dtype=np.float32))
        init.xavier_uniform_(self.weight)
        self.bias = Parameter(np.zeros(out_channels, dtype=np.float32)) if bias else None

    def forward(self, x):
        _check_input(self, x, (4,), f"(N, {self.in_channels}, H, W)", 1, self.in_channels)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        s += f", padding={self.padding}" if self.padding != (0, 0) else ""
        return s + (", bias=False" if self.bias is None else "")


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        name = type(self).__name__
        # checked here, so a bad layer fails where it is made; kept as given, for the repr
        size_pair(name, "kernel_size", kernel_size, 1, each=True)
        if stride is not None:
            size_pair(name, "stride", stride, 1, each=True)
        size_pair(name, "padding", padding, 0, each=True)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.ceil_mode = padding, bool(ceil_mode)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"ceil_mode={self.ceil_mode}")


class MaxPool2d(_Pool2d):
    """Max over kernel_size windows moved by stride (default: kernel_size), NCHW.
    ``ceil_mode=True`` keeps a last partial window (Theano's ``ignore_border=False``)."""

    def forward(self, x):
        _check_input(self, x, (4,), "(N, C, H, W)")
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode)


class AvgPool2d(_Pool2d):
    """Mean over kernel_size windows moved by stride (default: kernel_size), NCHW.
    ``count_include_pad``: whether zero padding counts in the divisor (PyTorch's default True)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x):
        _check_input(self, x, (4,), "(N, C, H, W)")
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)


class _AdaptivePool2d(Module):
    def __init__(self, output_size):
        super().__init__()
        adaptive_size_pair(type(self).__name__, output_size)  # checked where the layer is made
        self.output_size = output_size  # kept as given, for the repr (as PyTorch)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool2d(_AdaptivePool2d):
    """Mean over adaptive windows to a fixed output size, (N, C, H, W) or (C, H, W) ->
    (..., OH, OW), whatever H and W are: window i covers rows floor(i H / OH) to
    ceil((i + 1) H / OH) (see ``F.adaptive_avg_pool2d``). ``output_size``: OH or (OH, OW), None
    keeping that input size. VGG's classifier sees a 7x7 map and ResNet's a 1x1 this way."""

    def forward(self, x):
        _check_input(self, x, (3, 4), "(N, C, H, W) or (C, H, W)")
        return F.adaptive_avg_pool2d(x, self.output_size)


class AdaptiveMaxPool2d(_AdaptivePool2d):
    """Max over adaptive windows to a fixed output size (see ``F.adaptive_max_pool2d``);
    ``return_indices=True`` returns (values, flat indices into each H*W plane)."""

    def __init__(self, output_size, return_indices=False):
        super().__init__(output_size)
        self.return_indices = bool(return_indices)

    def forward(self, x):
        _check_input(self, x, (3, 4), "(N, C, H, W) or (C, H, W)")
        return F.adaptive_max_pool2d(x, self.output_size, self.return_indices)


class Identity(Module):
    """Returns its input as it is; any constructor arguments are ignored (PyTorch's
    ``nn.Identity``). A stand-in for a layer taken out: ``model.fc = nn.Identity()`` makes a
    classifier return its features."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Dropout(Module):
    """In training, zero each element with probability p and scale the others by 1 / (1 - p)
    (inverted dropout); in evaluation (``model.eval()``), the identity."""

    def __init__(self, p=0.5):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be a number with 0 <= p < 1, got {p!r}")
        self.p = float(p)

    def forward(self, x):
        _check_input(self, x, range(64), "any")
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Embedding(Module):
    """A lookup table of ``num_embeddings`` vectors of size ``embedding_dim``, PyTorch's
    ``nn.Embedding``: integer indices of any shape (*) -> (*, embedding_dim), ``weight[input]``.

    Init: weight ~ N(0, 1) (PyTorch's), with the row ``padding_idx`` (if given; negative counts
    from the end) set to zero; that row never gets a gradient, so training leaves it as it is.
    Repeated indices accumulate their gradients (see ``F.embedding``).
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None):
        super().__init__()
        self.num_embeddings = _int("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = _int("Embedding", "embedding_dim", embedding_dim)
        if padding_idx is not None:
            padding_idx = _int("Embedding", "padding_idx", padding_idx, -num_embeddings)
            if padding_idx >= num_embeddings:
                raise ValueError(f"Embedding: padding_idx must be in [-{num_embeddings}, "
                                 f"{num_embeddings}), got {padding_idx}")
            padding_idx %= num_embeddings
        self.padding_idx = padding_idx
        self.weight = Parameter(np.zeros((num_embeddings, embedding_dim), dtype=np.float32))
        self.reset_parameters()

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx] = 0

    def forward(self, input):  # noqa: A002 (PyTorch's name)
        if not isinstance(input, Tensor):
            raise TypeError(f"{self!r}: expected a Tensor of indices, got {type(input).__name__}")
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


class _BatchNorm(Module):
    """Shared by BatchNorm1d and BatchNorm2d; see ``F.batch_norm`` for the math.

    Parameters: weight (init 1) and bias (init 0) when ``affine``. Buffers: running_mean (init 0),
    running_var (init 1), num_batches_tracked (int64 count of training batches) when
    ``track_running_stats``. Momentum has PyTorch's sense: r = (1 - momentum) r + momentum * batch
    stat (Lasagne's ``alpha``); ``momentum=None`` averages all batches equally (1 / count).
    Without running statistics, batch statistics are used in evaluation too.
    """
    ranks, expected = (), ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        name = type(self).__name__
        self.num_features = _int(name, "num_features", num_features)
        if not eps > 0:
            raise ValueError(f"{name}: eps must be > 0, got {eps!r}")
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {momentum!r}")
        self.eps, self.momentum = float(eps), momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        c = num_features
        self.weight = Parameter(np.ones(c, dtype=np.float32)) if affine else None
        self.bias = Parameter(np.zeros(c, dtype=np.float32)) if affine else None
        track = self.track_running_stats
        self.register_buffer("running_mean", Tensor(np.zeros(c, np.float32)) if track else None)
        self.register_buffer("running_var", Tensor(np.ones(c, np.float32)) if track else None)
        self.register_buffer("num_batches_tracked", Tensor(np.array(0, np.int64)) if track else None)

    def forward(self, x):
        c = self.num_features
        _check_input(self, x, self.ranks, self.expected.format(c), 1, c)
        momentum = self.momentum
        tracking = self.training and self.track_running_stats
        if tracking and momentum is None:  # the cumulative average: this is batch tracked + 1
            momentum = 1.0 / (self.num_batches_tracked.item() + 1)
        use_batch_stats = self.training or not self.track_running_stats
        y = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                         training=use_batch_stats, momentum=momentum or 0.0, eps=self.eps)
        if tracking:  # counted once batch_norm succeeded, so an error leaves the layer unchanged
            array_call(_count_batch, self.num_batches_tracked.data)  # (tg.compile repeats it)
            self.num_batches_tracked._version[0] += 1
        return y

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


def _count_batch(count):
    """num_batches_tracked += 1, in place (a 0-d int64 array)."""
    count += 1
    return count


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) inputs, per feature C (statistics over N)."""
    ranks, expected = (2,), "(N, {})"


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) inputs, per channel C (statistics over N, H, W)."""
    ranks, expected = (4,), "(N, {}, H, W)"


class _Activation(Module):
    fn = None

    def forward(self, x):
        _check_input(self, x, range(64), "any")
        return type(self).fn(x)


class ReLU(_Activation):
    """max(x, 0), elementwise (relu'(0) = 0)."""
    fn = F.relu


class Sigmoid(_Activation):
    """1 / (1 + exp(-x)), elementwise."""
    fn = F.sigmoid


class Tanh(_Activation):
    """tanh(x), elementwise."""
    fn = F.tanh


class Softmax(Module):
    """exp(x_i) / sum_j exp(x_j) along ``dim``."""
    function = F.softmax

    def __init__(self, dim=-1):
        super().__init__()
        self.dim = _int(type(self).__name__, "dim", dim, minimum=-(1 << 62))

    def forward(self, x):
        _check_input(self, x, range(1, 64), "with at least one dimension")
        _check_dim(self, x, self.dim)
        return type(self).function(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """log softmax(x) along ``dim``, computed stably (x - max - log sum exp(x - max))."""
    function = F.log_softmax


class Flatten(Module):
    """Merge dimensions start_dim..end_dim into one: (N, C, H, W) -> (N, C*H*W) by default."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = _int("Flatten", "start_dim", start_dim, minimum=-(1 << 62))
        self.end_dim = _int("Flatten", "end_dim", end_dim, minimum=-(1 << 62))

    def forward(self, x):
        _check_input(self, x, range(1, 64), "with at least one dimension")
        _check_dim(self, x, self.start_dim, "start_dim")
        _check_dim(self, x, self.end_dim, "end_dim")
        if self.start_dim % x.ndim > self.end_dim % x.ndim:
            raise ValueError(f"{self!r}: start_dim comes after end_dim for input of shape "
                             f"{x.shape}")
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Sequential(Module):
    """Modules applied one after the other, PyTorch's ``nn.Sequential``. Children are named "0",
    "1", ... (or by the keys of a single dict argument, e.g. an OrderedDict), so parameters are
    "0.weight", "0.bias", ...

    Positions count children in order, whatever their names; negative ones from the end.

    * ``model[i]`` is a child; ``model[a:b]`` a Sequential of the same modules under their
      names (``features[2:5]`` has children "2", "3", "4"), as PyTorch;
    * ``model[i] = module`` replaces child i in its place and under its name, so
      ``model.classifier[6] = nn.Linear(4096, 21)`` gives ``classifier.6.weight``;
    * ``del model[i]``, ``del model[a:b]`` and ``insert(i, module)`` renumber the children
      "0", "1", ... (as PyTorch 2); ``append`` and ``extend`` add children named by their
      position;
    * iterable, with ``len``.

    A bad position raises IndexError (naming the length), a non-Module TypeError; either way
    the Sequential is unchanged.
    """

    def __init__(self, *modules):
        super().__init__()
        items = (list(modules[0].items()) if len(modules) == 1 and isinstance(modules[0], dict)
                 else [(str(i), m) for i, m in enumerate(modules)])
        for name, m in items:
            self._check(name, m)
        for name, m in items:
            self._add(name, m)

    def _check(self, name, module):
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"Sequential: a child's name must be a non-empty string without '.', "
                           f"got {name!r}")
        if not isinstance(module, Module):
            raise TypeError(f"Sequential: element {name!r} is a {type(module).__name__}, not a "
                            "Module")

    def _add(self, name, module):
        if name in self.__dict__:
            raise KeyError(f"Sequential: there is already an attribute named {name!r}")
        setattr(self, name, module)

    def _items(self):
        return [(k, m) for k, m in self.__dict__.items() if isinstance(m, Module)]

    def _layers(self):
        return [m for _, m in self._items()]

    def _position(self, index, end=False):
        """``index`` as a position 0..n-1 (0..n with ``end``, for insert)."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"Sequential: index must be an integer (or, to read or delete, a "
                            f"slice), got {type(index).__name__}")
        n = len(self)
        if not -n <= index < n + end:
            raise IndexError(f"Sequential: index {index} is out of range for {n} modules")
        return int(index) + n if index < 0 else int(index)

    def _renumber(self, modules):
        for name, _ in self._items():
            del self.__dict__[name]
        for i, m in enumerate(modules):
            setattr(self, str(i), m)

    def append(self, module):
        self._check(str(len(self)), module)
        self._add(str(len(self)), module)
        return self

    def extend(self, modules):
        """Append each of ``modules`` (checked first: all or nothing)."""
        modules, n = list(modules), len(self)
        for i, m in enumerate(modules):
            self._check(str(n + i), m)
            if str(n + i) in self.__dict__:
                raise KeyError(f"Sequential: there is already an attribute named {str(n + i)!r}")
        for i, m in enumerate(modules):
            self._add(str(n + i), m)
        return self

    def insert(self, index, module):
        """Put ``module`` at position ``index`` (-n..n) and renumber the children."""
        position = self._position(index, end=True)
        self._check(str(position), module)
        layers = self._layers()
        self._renumber(layers[:position] + [module] + layers[position:])
        return self

    def __len__(self):
        return len(self._items())

    def __iter__(self):
        return iter(self._layers())

    def __getitem__(self, index):
        if isinstance(index, slice):
            return type(self)(OrderedDict(self._items()[index]))
        return self._items()[self._position(index)][1]

    def __setitem__(self, index, module):
        name = self._items()[self._position(index)][0]
        if not isinstance(module, Module):
            raise TypeError(f"Sequential: cannot assign a {type(module).__name__} as module "
                            f"{index} ({name!r}); a Module is needed")
        setattr(self, name, module)

    def __delitem__(self, index):
        layers = self._layers()
        gone = (set(range(len(layers))[index]) if isinstance(index, slice)
                else {self._position(index)})
        self._renumber([m for i, m in enumerate(layers) if i not in gone])

    def forward(self, x):
        for layer in self._layers():
            x = layer(x)
        return x


__all__ = ["Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d",
           "Identity", "Dropout", "Embedding", "BatchNorm1d", "BatchNorm2d", "ReLU", "Sigmoid",
           "Tanh", "Softmax", "LogSoftmax", "Flatten", "Sequential"]
