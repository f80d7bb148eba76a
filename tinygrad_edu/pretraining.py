"""Greedy layer-wise pre-training: stacked denoising autoencoders (the Theano tutorial's
``SdA.py``; Vincent et al. 2008) and deep belief nets from stacked RBMs (``DBN.py``; Hinton,
Osindero & Teh 2006), then an MLP initialised from them for supervised fine-tuning.

The recipe. Train layer 1 (an autoencoder or an RBM) on the data, without labels. Compute its
codes for the whole training set (under no_grad: clean, uncorrupted inputs; an RBM's hidden
probabilities). Train layer 2 on those codes, and so on up the stack. Then copy each layer's
upward weights into an ``nn.Linear`` (an RBM's W transposed into Linear's (out, in) layout,
its hidden bias), put a sigmoid after each, add a fresh output layer, and fine-tune the whole
net with labels::

    layers = pretrain_autoencoders((784, 1000, 1000, 1000), X, corruption=(0.1, 0.2, 0.3),
                                   epochs=15, lr=0.001, batch_size=1)
    model = mlp_from_pretrained(layers, n_classes=10)
    fit(model, optim.SGD(model.parameters(), lr=0.1), (X, y), (X_valid, y_valid), epochs=36)

Each layer is trained by the loop the tutorials teach (batches, loss, zero_grad, backward,
SGD step), written out below. ``seed`` reseeds the engine (``tg.manual_seed``) once at the
start, which fixes the layers' initial weights, the shuffling, the corruption masks and the
Gibbs samples: the same seed gives the same layers.
"""
import math
import numbers
import time

import numpy as np

from .backend import check_device, get_xp
from .compiler import compile as compile_function
from .creation import manual_seed
from .data import DataLoader
from .nn.autoencoder import TiedAutoencoder, check_stack
from .nn.layers import Linear, ReLU, Sequential, Sigmoid, Tanh
from .nn.rbm import RBM, check_data, check_float_dtype, check_size, check_steps
from .optim import SGD
from .tensor import Tensor, no_grad

_LAYER_ACTIVATIONS = {"sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU, "linear": None}


# ---- checking the arguments ----------------------------------------------------------------
def _check_sizes(where, sizes):
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or len(sizes) < 2:
        raise ValueError(f"{where}: sizes must be a sequence of at least 2 layer sizes (input "
                         f"first), got {sizes!r}")
    return tuple(check_size(where, f"sizes[{i}]", n) for i, n in enumerate(sizes))


def _check_number(where, name, value, ok, need):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not ok(value):
        raise ValueError(f"{where}: {name} must be {need}, got {value!r}")
    return value


def _per_layer(where, name, value, n, ok, need):
    """A number for every layer: one number for all, or a sequence of n."""
    values = list(value) if isinstance(value, (list, tuple)) else [value] * n
    if len(values) != n:
        raise ValueError(f"{where}: {name} needs one value per layer ({n}), got {len(values)}")
    return [float(_check_number(where, name, v, ok, need)) for v in values]


def _common(where, sizes, X, epochs, lr, batch_size, momentum, dtype, device, log, unit):
    """Check what both trainers take; returns (sizes, X as a Tensor on device, ...)."""
    sizes = _check_sizes(where, sizes)
    _check_number(where, "epochs", epochs, lambda e: isinstance(e, numbers.Integral) and e >= 0,
                  "an integer >= 0")
    _check_number(where, "lr", lr, lambda r: r > 0 and math.isfinite(r), "a positive number")
    _check_number(where, "batch_size", batch_size,
                  lambda b: isinstance(b, numbers.Integral) and b >= 1, "an integer >= 1")
    _check_number(where, "momentum", momentum, lambda m: 0 <= m < 1, "in [0, 1)")
    if log is not None and not callable(log):
        raise TypeError(f"{where}: log must be callable (it gets a dict per epoch), got {log!r}")
    dtype, device = check_float_dtype(where, dtype), check_device(device)
    like = Tensor._wrap(get_xp(device).zeros(0, dtype=dtype))
    if isinstance(X, np.ndarray) and X.dtype == dtype and device == "cpu":
        X = Tensor._wrap(X)  # read only, never written: no need for a copy of the whole set
    X = check_data(where, X, sizes[0], like, what="X (the training inputs)", unit_interval=unit)
    return sizes, X, int(epochs), float(lr), int(batch_size), float(momentum), dtype, device


def _report(log, verbose, record):
    if verbose:
        print(f"layer {record['layer']}, epoch {record['epoch']}: {record['monitor']} "
              f"{record['cost']:.4f} ({record['seconds']:.1f} s)", flush=True)
    if log is not None:
        log(record)


def _finite(where, value, layer, epoch, batch):
    if not math.isfinite(value):
        raise FloatingPointError(f"{where}: layer {layer}, epoch {epoch}, batch {batch}: the cost "
                                 f"is {value}; lower the learning rate")


# ---- the trainers --------------------------------------------------------------------------
def _gradient_step(loss_of, optimizer, compiled):
    """A function of a batch: its loss, after zero_grad and backward (the caller checks the
    loss, then steps); with ``compiled``, recorded once and replayed (tinygrad_edu.compile)."""
    def forward_backward(xb):
        loss = loss_of(xb)
        optimizer.zero_grad()
        loss.backward()
        return loss
    return compile_function(forward_backward) if compiled else forward_backward


def pretrain_autoencoders(sizes, X, corruption=0.0, epochs=15, lr=0.1, batch_size=20,
                          loss="cross_entropy", momentum=0.0, shuffle=True, seed=0,
                          dtype=np.float32, device="cpu", log=None, verbose=False,
                          compile=False):
    """Train stacked (denoising) autoencoders greedily; returns the list of
    ``TiedAutoencoder`` layers, sizes[i] -> sizes[i + 1] (sigmoid units, tied weights).

    * ``X``: the training inputs (N, sizes[0]), an array or a Tensor, in [0, 1] for the
      cross-entropy ``loss`` (the tutorial's; or "mse").
    * ``corruption``: the masking-noise level, one for all layers or one per layer (the SdA
      tutorial: (0.1, 0.2, 0.3)).
    * ``epochs``, ``lr``, ``batch_size``, ``momentum``: of the SGD run on each layer. The
      defaults are the dA tutorial's (15, 0.1, 20); the SdA tutorial pre-trains with lr 0.001
      and batch_size 1.
    * ``log(record)``, after each epoch of each layer: a dict with ``layer`` (0-based),
      ``epoch`` (1-based), ``cost`` (the mean reconstruction cost over the epoch's batches, each
      taken before its step), ``monitor`` ("cross_entropy"/"mse") and ``seconds``.
      ``verbose=True`` prints the same as one line.
    * ``compile=True``: each batch's cost and backward are replayed from a program recorded by
      :func:`tinygrad_edu.compile` (fresh masking noise every batch, the same results bit for
      bit); the cost is checked, then the step taken, as without.

    Every argument is checked before anything is trained (or the engine reseeded).
    """
    where = "pretrain_autoencoders"
    if loss not in ("cross_entropy", "mse"):
        raise ValueError(f"{where}: loss must be 'cross_entropy' or 'mse', got {loss!r}")
    sizes, X, epochs, lr, batch_size, momentum, dtype, device = _common(
        where, sizes, X, epochs, lr, batch_size, momentum, dtype, device, log,
        unit=loss == "cross_entropy")
    levels = _per_layer(where, "corruption", corruption, len(sizes) - 1, lambda p: 0 <= p < 1,
                        "a probability in [0, 1)")
    if seed is not None:
        manual_seed(seed)
    layers, inputs = [], X
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        layer = TiedAutoencoder(n_in, n_out, corruption=levels[i], dtype=dtype, device=device)
        optimizer = SGD(layer.parameters(), lr=lr, momentum=momentum)
        step = _gradient_step(lambda xb: layer.loss(xb, kind=loss), optimizer, compile)
        for epoch in range(1, epochs + 1):
            t0, costs = time.perf_counter(), []
            loader = DataLoader(inputs, batch_size=batch_size, shuffle=shuffle)
            for b, xb in enumerate(loader, 1):
                cost = step(xb)
                costs.append(cost.item())
                _finite(where, costs[-1], i, epoch, b)
                optimizer.step()
            _report(log, verbose, dict(layer=i, epoch=epoch, cost=float(np.mean(costs)),
                                       monitor=loss, seconds=time.perf_counter() - t0))
        layers.append(layer)
        if i < len(sizes) - 2:  # the next layer learns from this one's clean codes
            inputs = codes([layer], inputs)
    return layers


def pretrain_rbms(sizes, X, k=1, epochs=15, lr=0.1, batch_size=20, persistent=False,
                  momentum=0.0, shuffle=True, monitor="reconstruction", seed=0,
                  dtype=np.float32, device="cpu", log=None, verbose=False, compile=False):
    """Train a stack of RBMs greedily (a deep belief net); returns the list of ``RBM`` layers,
    sizes[i] visible -> sizes[i + 1] hidden units.

    * ``X``: the training inputs (N, sizes[0]) in [0, 1] (probabilities or binary).
    * ``k``, ``persistent``: each batch takes one SGD step on ``rbm.cd_loss(xb, k,
      persistent=persistent or None)``: CD-k, or PCD-k with the chains kept by the RBM.
    * ``epochs``, ``lr``, ``batch_size``, ``momentum``: of each layer's SGD. The defaults are
      the RBM tutorial's (15, 0.1, 20); the DBN tutorial pre-trains with CD-1, lr 0.01,
      batch_size 10, 100 epochs.
    * ``monitor``: the cost reported per epoch (mean over the batches, each before its step):
      "reconstruction" (``reconstruction_cross_entropy``), "pseudo_likelihood" (the tutorial's
      PCD cost) or None (nothing computed: the fastest).
    * ``log``, ``verbose``, ``seed``, ``compile``: as in :func:`pretrain_autoencoders` (with
      ``compile=True`` the Gibbs chain's samples are drawn afresh in every replay).

    The next layer learns from this one's hidden probabilities p(h = 1 | v), as in the
    tutorial's DBN (the sigmoid layers' outputs).
    """
    where = "pretrain_rbms"
    k = check_steps(where, k)
    if monitor not in ("reconstruction", "pseudo_likelihood", None):
        raise ValueError(f"{where}: monitor must be 'reconstruction', 'pseudo_likelihood' or "
                         f"None, got {monitor!r}")
    sizes, X, epochs, lr, batch_size, momentum, dtype, device = _common(
        where, sizes, X, epochs, lr, batch_size, momentum, dtype, device, log, unit=True)
    if seed is not None:
        manual_seed(seed)
    layers, inputs = [], X
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        rbm = RBM(n_in, n_out, dtype=dtype, device=device)
        optimizer = SGD(rbm.parameters(), lr=lr, momentum=momentum)
        step = _gradient_step(lambda xb: rbm.cd_loss(xb, k=k, persistent=True if persistent else None),
                              optimizer, compile)
        for epoch in range(1, epochs + 1):
            t0, costs = time.perf_counter(), []
            loader = DataLoader(inputs, batch_size=batch_size, shuffle=shuffle)
            for b, xb in enumerate(loader, 1):
                if monitor == "reconstruction":
                    costs.append(rbm.reconstruction_cross_entropy(xb))
                elif monitor == "pseudo_likelihood":
                    costs.append(rbm.pseudo_likelihood(xb))
                loss = step(xb)
                _finite(where, costs[-1] if costs else loss.item(), i, epoch, b)
                optimizer.step()
            cost = float(np.mean(costs)) if costs else float("nan")
            _report(log, verbose, dict(layer=i, epoch=epoch, cost=cost, monitor=str(monitor),
                                       seconds=time.perf_counter() - t0))
        rbm.chains = None  # training state only
        layers.append(rbm)
        if i < len(sizes) - 2:
            inputs = codes([rbm], inputs)
    return layers


# ---- using the layers ----------------------------------------------------------------------
def codes(layers, X, batch_size=1000):
    """The top layer's codes of inputs X (N, n_in) through pre-trained ``layers``, under
    no_grad, in batches: each autoencoder's ``encode`` (no corruption), each RBM's hidden
    probabilities sigmoid(v W + b_h). Returns a Tensor (N, n_hidden of the last layer)."""
    weights = check_stack("codes", list(layers))
    batch_size = int(_check_number("codes", "batch_size", batch_size,
                                   lambda b: isinstance(b, numbers.Integral) and b >= 1,
                                   "an integer >= 1"))
    x = check_data("codes", X, weights[0][0].shape[1], weights[0][0], what="X",
                   unit_interval=False)
    out = []
    with no_grad():
        for start in range(0, len(x), batch_size):
            h = x[start:start + batch_size]
            for layer in layers:
                h = layer._h_probs(h) if isinstance(layer, RBM) else layer._encode(h)
            out.append(h.data)
    return Tensor._wrap(get_xp(out[0]).concatenate(out))


def mlp_from_pretrained(layers, n_classes):
    """An ``nn.Sequential`` MLP initialised from pre-trained layers, ready for ``fit``:
    ``Linear(sizes[0], sizes[1]), Sigmoid(), ..., Linear(sizes[-1], n_classes)``.

    Each hidden Linear gets a copy of a layer's upward weights: an RBM's W transposed into
    Linear's (out, in) layout and its ``b_hidden``; an autoencoder's ``weight`` and ``bias``
    (and its activation, sigmoid by default). The output layer (logits, for
    ``F.cross_entropy``) starts at zero, as the tutorials' logistic regression layer. The
    pre-trained layers are not changed by fine-tuning the MLP.
    """
    layers = list(layers)
    weights = check_stack("mlp_from_pretrained", layers)
    n_classes = check_size("mlp_from_pretrained", "n_classes", n_classes)
    modules = []
    with no_grad():
        for layer, (w, b) in zip(layers, weights):
            lin = _linear_like(w, b)
            modules.append(lin)
            act = "sigmoid" if isinstance(layer, RBM) else layer.activation
            if _LAYER_ACTIVATIONS[act] is not None:
                modules.append(_LAYER_ACTIVATIONS[act]())
        w = weights[-1][0]
        xp = get_xp(w.data)
        modules.append(_linear_like(Tensor._wrap(xp.zeros((n_classes, w.shape[0]), w.dtype)),
                                    Tensor._wrap(xp.zeros(n_classes, w.dtype))))
    return Sequential(*modules)


def _linear_like(w, b):
    """An nn.Linear holding copies of weight w (out, in) and bias b, on their device."""
    lin = Linear(w.shape[1], w.shape[0])
    lin.weight.data = w.data.copy()
    lin.bias.data = b.data.copy()
    return lin


__all__ = ["pretrain_autoencoders", "pretrain_rbms", "codes", "mlp_from_pretrained"]
