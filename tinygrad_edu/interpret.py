"""Looking inside a trained network: which pixels its answer depends on, what its filters and
feature maps look like, and which inputs it takes for a class.

A saliency map once showed that a "whale" classifier looked at the ocean, not at the whale:
accuracy alone cannot tell what a network has learned. The tools here, each after its paper:

* :func:`saliency`: |d score / d input| (Simonyan, Vedaldi & Zisserman 2014), and SmoothGrad,
  the same averaged over noisy copies of the input (Smilkov et al. 2017);
* :func:`occlusion`: the class probability while a grey patch hides each part of the image
  (Zeiler & Fergus 2014);
* :func:`filter_grid`, :func:`feature_maps`: first-layer filters and any layer's activations
  as image grids (Zeiler & Fergus 2014);
* :func:`activation_maximization`: the input that maximises a class score, by gradient ascent
  on the input (Simonyan et al. 2014's class model visualisation);
* :func:`fooling_image`: noise pushed by gradient ascent until the net sees a class in it with
  99% confidence (Nguyen, Yosinski & Clune 2015, their gradient-ascent variant).

    from tinygrad_edu import interpret
    maps = interpret.saliency(model, x_test[:8], y_test[:8], path="saliency.png")   # (8, 28, 28)

``model`` maps images (N, C, H, W) to class scores (N, K) before any softmax (logits). Images
are NumPy or CuPy arrays or Tensors; the results are NumPy arrays. Every function runs the
model in eval mode and puts each submodule's mode back afterwards (also after an error); none
changes a parameter, a parameter's ``.grad`` (gradients come from ``tg.grad``) or the caller's
arrays. With ``path=`` a function also saves a PNG (needs matplotlib), atomically: a temporary
file beside the target, renamed onto it, so a failed save leaves nothing behind.
"""
import collections
import contextlib
import math
import numbers
import os
import secrets

import numpy as np

from .backend import get_xp, to_device
from .creation import generator
from .data.images import tile_images
from .nn import functional as F
from .tensor import Tensor, enable_grad, grad, no_grad

Tiled = collections.namedtuple("Tiled", "arrays grid")
Tiled.__doc__ = """``arrays``: the images drawn (NumPy); ``grid``: them tiled, a uint8 picture."""
FoolingResult = collections.namedtuple("FoolingResult", "image confidence steps")
FoolingResult.__doc__ = """``image``: the fooling image(s); ``confidence``: softmax(target) the
model gives it; ``steps``: gradient steps taken (``steps`` when the confidence was not reached)."""


# ---- checks and plumbing ------------------------------------------------------------------------
def _int(fn, name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{fn}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _number(fn, name, value, minimum=0.0, strict=False):
    ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(value) and (value > minimum if strict else value >= minimum))
    if not ok:
        raise ValueError(f"{fn}: {name} must be a finite number {'>' if strict else '>='} "
                         f"{minimum}, got {value!r}")
    return float(value)


def _clip(fn, clip):
    if clip is None:
        return None
    try:
        lo, hi = (float(v) for v in clip)
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: clip must be None or a pair (low, high), got {clip!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{fn}: clip must be a pair low < high, got {clip!r}")
    return lo, hi


def _model_device_dtype(model):
    """Where the model's parameters live and their dtype (cpu, float32 for a parameterless one)."""
    for p in model.parameters():
        return p.device, p.dtype
    return "cpu", np.dtype(np.float32)


def _images(fn, x, device, dtype, ranks=(4,), name="x"):
    """A copy of ``x`` as an array (N, C, H, W) on ``device`` in the model's dtype."""
    data = x.data if isinstance(x, Tensor) else x
    data = data if hasattr(data, "shape") else np.asarray(data)
    if data.ndim not in ranks:
        want = " or ".join({3: "(C, H, W)", 4: "(N, C, H, W)"}[r] for r in ranks)
        raise ValueError(f"{fn}: {name} must be images {want}, got shape {tuple(data.shape)}")
    if data.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: {name} must hold real numbers, got dtype {data.dtype}")
    if data.ndim == 3:
        data = data[None]
    if data.shape[0] == 0 or 0 in data.shape[2:]:
        raise ValueError(f"{fn}: {name} holds no image (shape {tuple(data.shape)})")
    return to_device(data, device).astype(dtype, copy=True)


def _targets(fn, target, n=None):
    """``target`` as an int64 array (n,): an int for all images or one per image."""
    if isinstance(target, Tensor):
        target = target.numpy()
    t = np.asarray(to_device(target, "cpu") if hasattr(target, "__cuda_array_interface__")
                   else target)
    if t.dtype.kind not in "iu" or t.ndim > 1:
        raise ValueError(f"{fn}: target must be an int or a 1-D sequence of ints, got {target!r}")
    if t.ndim == 0 and n is not None:
        t = np.full(n, int(t))
    elif n is not None and t.shape != (n,):
        raise ValueError(f"{fn}: target has shape {t.shape}; expected an int or one per image, "
                         f"({n},)")
    return t.astype(np.int64)


def _check_classes(fn, model, probe, t):
    """One forward of a single image: the output must be (1, K) and every target in [0, K)."""
    with no_grad():
        out = model(Tensor(probe))
    if out.ndim != 2 or out.shape[0] != 1:
        raise ValueError(f"{fn}: the model must give class scores (N, K), but for one image of "
                         f"shape {tuple(probe.shape)} it gave shape {out.shape}")
    k = out.shape[1]
    bad = t[(t < 0) | (t >= k)]
    if bad.size:
        raise ValueError(f"{fn}: target {int(bad[0])} is out of range for a model with {k} "
                         f"classes (0..{k - 1})")
    return k


@contextlib.contextmanager
def _evaluating(model):
    """Eval mode inside the block; afterwards each submodule gets its own mode back."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


def _generator(fn, rng, device):
    """rng None: the engine's generator of ``device`` (tg.manual_seed); an int: a fresh NumPy
    generator seeded with it; a NumPy Generator: itself."""
    if rng is None:
        return generator(device)
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"{fn}: rng must be None, an int seed or a numpy Generator, got {rng!r}")


def _normal(gen, shape, dtype, device):
    return to_device(gen.standard_normal(shape, dtype=np.float32), device).astype(dtype)


def _onehot(t, k, like):
    xp = get_xp(like)
    out = xp.zeros((len(t), k), dtype=like.dtype)
    out[xp.arange(len(t)), xp.asarray(t)] = 1
    return out


def _input_gradient(model, x, t, log_softmax=False):
    """d/dx sum_n s_n[t_n] for the scores s = model(x) (or log softmax(s)); also s (an array)."""
    with enable_grad():
        xt = Tensor(x, requires_grad=True)
        out = model(xt)
        objective = F.log_softmax(out, dim=1) if log_softmax else out
        (g,) = grad(objective, xt, grad_outputs=Tensor(_onehot(t, out.shape[1], out.data)))
    return g.data, out.data


def _check_path(fn, path):
    """Fail before any work when the PNG could not be written."""
    if path is None:
        return None
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(f"{fn}: {path!r} is a directory; give a file name in it")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{fn}: the folder {folder!r} of {path!r} does not exist")
    return path


def _picture(img):
    """(C, H, W) -> what imshow draws: grey (C = 1, or the channel mean), RGB for C = 3."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 2:
        return img
    if img.shape[0] == 3:
        lo, hi = img.min(), img.max()
        return ((img - lo) / (hi - lo + 1e-12)).transpose(1, 2, 0)
    return img.mean(axis=0)


def _save_png(fn, path, rows, title=None, scale=1.6):
    """Draw ``rows`` (lists of (2-D or RGB array, caption, colormap)) as one PNG at ``path``:
    matplotlib's Agg canvas on a Figure (no pyplot, so the caller's backend stays as it is),
    written to a temporary file that is renamed onto ``path``."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(f"{fn}: saving a PNG needs matplotlib: pip install "
                          "'tinygrad_edu[plot]'") from e
    ncols = max(len(r) for r in rows)
    fig = Figure(figsize=(scale * ncols, scale * len(rows) + (0.4 if title else 0)))
    FigureCanvasAgg(fig)
    for i, row in enumerate(rows):
        for j, (img, caption, cmap) in enumerate(row):
            ax = fig.add_subplot(len(rows), ncols, i * ncols + j + 1)
            ax.imshow(img, cmap=cmap, interpolation="nearest")
            ax.set_axis_off()
            if caption:
                ax.set_title(caption, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=100)
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt too: never leave a half-written file
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def _panels(images, shape, grid):
    """Up to 100 images as rows of panels of a (rows, columns) grid (matplotlib's gaps
    between them stay white, so a black pixel at a border stays visible); more as the one
    tiled ``grid``."""
    if len(images) > 100:
        return [[(grid, None, "gray")]]
    rows, cols = shape
    return [[(im, None, "gray") for im in images[r * cols:(r + 1) * cols]] for r in range(rows)]


def _square(n):
    """(rows, columns) of a near-square grid for n images."""
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


# ---- saliency -----------------------------------------------------------------------------------
def saliency(model, x, target, smooth=0, noise=0.15, rng=None, path=None):
    """Saliency maps (N, H, W): how much each pixel moves the score of class ``target``.

    With S_t the model's output for class t (the logit, before any softmax) and x_n image n::

        plain (smooth=0):   M[n, h, w] = max_c | dS_t(x_n) / dx_n[c, h, w] |
        SmoothGrad (k > 0): M[n, h, w] = max_c | (1/k) sum_{i=1..k} dS_t(x_n + e_i) / dx[c, h, w] |
                            e_i ~ N(0, sigma_n^2) per pixel, sigma_n = noise * (max x_n - min x_n)

    (Simonyan et al. 2014; Smilkov et al. 2017, who recommend noise 0.1-0.2.) The gradients of
    the k noisy copies are averaged before the absolute value, so noise that flips a gradient's
    sign cancels out. sigma uses each image's own range, so a map does not depend on the other
    images of the batch. ``target``: an int, or one per image. ``rng``: None (the engine's
    generator: tg.manual_seed makes it reproducible), an int seed or a NumPy Generator.
    ``path``: also save the images above their maps as a PNG.
    """
    smooth = _int("saliency", "smooth", smooth, 0)
    noise = _number("saliency", "noise", noise)
    device, dtype = _model_device_dtype(model)
    x = _images("saliency", x, device, dtype)
    t = _targets("saliency", target, len(x))
    path = _check_path("saliency", path)
    gen = _generator("saliency", rng, device) if smooth else None
    xp = get_xp(x)
    with _evaluating(model):
        _check_classes("saliency", model, x[:1], t)
        if smooth == 0:
            g = _input_gradient(model, x, t)[0]
        else:
            sigma = noise * (x.max(axis=(1, 2, 3), keepdims=True) - x.min(axis=(1, 2, 3),
                                                                           keepdims=True))
            g = xp.zeros_like(x)
            for _ in range(smooth):
                g += _input_gradient(model, x + sigma * _normal(gen, x.shape, dtype, device), t)[0]
            g /= smooth
    maps = to_device(xp.abs(g).max(axis=1), "cpu")
    if path:
        images = to_device(x, "cpu")
        _save_png("saliency", path, [[(_picture(im), f"class {c}", "gray")
                                      for im, c in zip(images, t)],
                                     [(m, None, "hot") for m in maps]],
                  title="SmoothGrad" if smooth else "saliency |d score / d x|")
    return maps


# ---- occlusion ----------------------------------------------------------------------------------
def occlusion(model, x, target, patch=4, stride=2, fill=None, upsample=False, batch_size=256,
              path=None):
    """Occlusion maps (Zeiler & Fergus 2014): the probability of ``target`` while a square
    ``patch`` x ``patch`` of the value ``fill`` hides each part of the image::

        P[n, i, j] = softmax(model(x_n with x_n[:, i s : i s + p, j s : j s + p] = fill))[t_n]

    for the patch positions i = 0 .. (H - p) // s, j = 0 .. (W - p) // s (s = ``stride``), so
    the maps are (N, rows, cols); low values mark the parts the answer depends on. ``fill``:
    a number, or None for each image's mean (a grey patch). ``upsample=True`` gives (N, H, W)
    maps to lay over the images instead: each pixel holds the mean of P over the positions
    whose patch covers it, or the unoccluded probability where no patch does. All positions of
    an image go through the model in batches of ``batch_size`` without a tape.
    """
    device, dtype = _model_device_dtype(model)
    x = _images("occlusion", x, device, dtype)
    t = _targets("occlusion", target, len(x))
    n, c, h, w = x.shape
    patch = _int("occlusion", "patch", patch, 1)
    if patch > min(h, w):
        raise ValueError(f"occlusion: patch {patch} is larger than the images ({h} x {w})")
    stride = _int("occlusion", "stride", stride, 1)
    batch_size = _int("occlusion", "batch_size", batch_size, 1)
    if fill is not None:
        fill = _number("occlusion", "fill", fill, minimum=-math.inf)
    path = _check_path("occlusion", path)
    rows, cols = (h - patch) // stride + 1, (w - patch) // stride + 1
    positions = [(i * stride, j * stride) for i in range(rows) for j in range(cols)]
    xp = get_xp(x)
    maps = np.empty((n, rows, cols))
    base = np.empty(n)
    with _evaluating(model):
        _check_classes("occlusion", model, x[:1], t)
        with no_grad():
            for k in range(n):
                value = x[k].mean() if fill is None else fill
                probs = []
                for start in range(0, len(positions), batch_size):
                    chunk = positions[start:start + batch_size]
                    batch = xp.repeat(x[k:k + 1], len(chunk), axis=0)
                    for b, (r0, c0) in enumerate(chunk):
                        batch[b, :, r0:r0 + patch, c0:c0 + patch] = value
                    probs.append(to_device(F.softmax(model(Tensor(batch)), dim=1).data[:, t[k]],
                                           "cpu"))
                maps[k] = np.concatenate(probs).reshape(rows, cols)
                base[k] = to_device(F.softmax(model(Tensor(x[k:k + 1])), dim=1).data, "cpu")[
                    0, t[k]]
    full = _spread(maps, base, (h, w), patch, stride)
    if path:
        images = to_device(x, "cpu")
        _save_png("occlusion", path, [[(_picture(im), f"class {tk}: p={b:.2f}", "gray")
                                       for im, tk, b in zip(images, t, base)],
                                      [(m, f"lowest {m.min():.2f}", "viridis") for m in full]],
                  title=f"p(class) with a {patch}x{patch} patch over each pixel (dark: low)")
    return full if upsample else maps


def _spread(maps, base, size, patch, stride):
    """(N, rows, cols) patch-position maps -> (N, H, W): per pixel the mean over the patches
    covering it; ``base[n]`` (the unoccluded probability) where none does."""
    n, rows, cols = maps.shape
    total, count = np.zeros((n,) + size), np.zeros(size)
    for i in range(rows):
        for j in range(cols):
            r, c = i * stride, j * stride
            total[:, r:r + patch, c:c + patch] += maps[:, i:i + 1, j:j + 1]
            count[r:r + patch, c:c + patch] += 1
    return np.where(count > 0, total / np.maximum(count, 1), base[:, None, None])


# ---- filters and feature maps -------------------------------------------------------------------
def filter_grid(weight_or_conv, path=None, channels="each", spacing=1):
    """A convolution's filters as one picture: ``Tiled(arrays, grid)``.

    ``weight_or_conv``: a Conv2d, or its weight (C_out, C_in, kh, kw) as an array or Tensor.
    For C_in = 1 the C_out kernels fill a near-square grid and ``arrays`` is (C_out, kh, kw).
    For C_in > 1, ``channels="each"`` draws one row per filter with one column per input channel
    (``arrays`` is the weight itself) and ``channels="mean"`` draws each filter's mean over its
    input channels, (C_out, kh, kw). Each kernel is stretched to the full grey range on its own
    (``tile_images``' scale=True): compare patterns, not magnitudes.
    """
    w = getattr(weight_or_conv, "weight", weight_or_conv)
    w = w.numpy() if isinstance(w, Tensor) else to_device(w, "cpu") \
        if hasattr(w, "__cuda_array_interface__") else np.asarray(w)
    if w.ndim != 4:
        raise ValueError(f"filter_grid: needs a Conv2d or a weight (C_out, C_in, kh, kw), got "
                         f"shape {w.shape}")
    if channels not in ("each", "mean"):
        raise ValueError(f"filter_grid: channels must be 'each' or 'mean', got {channels!r}")
    path = _check_path("filter_grid", path)
    c_out, c_in, kh, kw = w.shape
    if c_in > 1 and channels == "each":
        arrays, shape = np.array(w), (c_out, c_in)
    else:
        arrays, shape = np.array(w.mean(axis=1)), _square(c_out)
    flat = arrays.reshape(-1, kh, kw)
    grid = tile_images(flat, (kh, kw), shape, spacing=spacing)
    if path:
        what = f", {c_in} input channels" if c_in > 1 and channels == "each" else \
            ", mean over the input channels" if c_in > 1 else ""
        _save_png("filter_grid", path, _panels(flat, shape, grid),
                  scale=0.8 if len(flat) <= 100 else 6, title=f"{c_out} filters {kh}x{kw}{what}")
    return Tiled(arrays, grid)


def feature_maps(model, layer, x, path=None, spacing=1):
    """The activations of submodule ``layer`` of ``model`` for one image x (C, H, W) or
    (1, C, H, W): ``Tiled(arrays, grid)``, ``arrays`` its output (C', H', W') (the first call's,
    if the model calls ``layer`` more than once), ``grid`` them tiled, each map stretched to the
    full grey range.

    The output is caught by replacing ``layer.forward`` on that instance for one forward pass
    (eval mode, no tape); the original is put back in a ``finally``, also after an error.
    """
    if not any(m is layer for m in model.modules()):
        raise ValueError(f"feature_maps: {type(layer).__name__} is not a submodule of the model")
    device, dtype = _model_device_dtype(model)
    x = _images("feature_maps", x, device, dtype, ranks=(3, 4))
    if len(x) != 1:
        raise ValueError(f"feature_maps: needs one image, got a batch of shape {x.shape}")
    path = _check_path("feature_maps", path)
    caught, saved = [], layer.__dict__.get("forward")
    original = layer.forward

    def forward(*args, **kwargs):
        out = original(*args, **kwargs)
        caught.append(out)
        return out

    layer.forward = forward
    try:
        with _evaluating(model), no_grad():
            model(Tensor(x))
    finally:
        if saved is None:
            del layer.forward
        else:
            layer.forward = saved
    if not caught:
        raise ValueError(f"feature_maps: the model did not call its {type(layer).__name__}")
    out = caught[0]
    if not isinstance(out, Tensor) or out.ndim != 4:
        raise ValueError(f"feature_maps: {type(layer).__name__} gave "
                         f"{getattr(out, 'shape', type(out).__name__)}, not maps (1, C, H, W)")
    arrays = np.array(out.numpy()[0])
    grid = tile_images(arrays, arrays.shape[1:], _square(len(arrays)), spacing=spacing)
    if path:
        c, h, w = arrays.shape
        _save_png("feature_maps", path, _panels(arrays, _square(c), grid),
                  scale=1.0 if c <= 100 else 6, title=f"{type(layer).__name__}: {c} maps {h}x{w}")
    return Tiled(arrays, grid)


# ---- gradient ascent on the input ---------------------------------------------------------------
def _blur(x):
    """3x3 Gaussian blur, [1 2 1]/4 in each direction, edges repeated."""
    xp = get_xp(x)
    p = xp.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    v = (p[:, :, :-2] + 2 * p[:, :, 1:-1] + p[:, :, 2:]) / 4
    return (v[..., :-2] + 2 * v[..., 1:-1] + v[..., 2:]) / 4


def _normalized(d):
    """d / max|d| per image: the largest pixel step is 1."""
    return d / (get_xp(d).abs(d).max(axis=(1, 2, 3), keepdims=True) + 1e-12)


def _start(fn, model, target, shape, rng, x0, clip):
    """Checked targets, the starting images (n, C, H, W) and the device, before any work."""
    device, dtype = _model_device_dtype(model)
    t = _targets(fn, target)
    single = t.ndim == 0
    t = t.reshape(-1)
    if x0 is None:
        shape = tuple(shape) if isinstance(shape, (tuple, list)) else shape
        if not (isinstance(shape, tuple) and len(shape) == 3 and all(
                isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1
                for s in shape)):
            raise ValueError(f"{fn}: shape must be the image shape (C, H, W) (or give x0), "
                             f"got {shape!r}")
        x = None
    else:
        x = _images(fn, x0, device, dtype, ranks=(3, 4), name="x0")
        if len(x) == 1 and len(t) > 1:
            x = get_xp(x).repeat(x, len(t), axis=0)
        if len(x) != len(t):
            raise ValueError(f"{fn}: x0 holds {len(x)} images for {len(t)} targets")
        shape = x.shape[1:]
    _check_classes(fn, model, get_xp(device).zeros((1,) + tuple(shape), dtype=dtype), t)
    if x is None:  # noise around the middle of the data range
        gen = _generator(fn, rng, device)
        mid, span = (0.0, 1.0) if clip is None else ((clip[0] + clip[1]) / 2, clip[1] - clip[0])
        x = mid + 0.1 * span * _normal(gen, (len(t),) + tuple(shape), dtype, device)
    if clip is not None:
        x = get_xp(x).clip(x, *clip).astype(dtype)
    return t, x, single


def activation_maximization(model, target, shape=None, steps=200, lr=0.1, l2=1e-3, blur_every=0,
                            rng=None, x0=None, clip=(0, 1), normalize=True, path=None):
    """The image the model finds most like class ``target``: Simonyan et al. (2014)'s class
    model, argmax_x S_t(x) - l2 ||x||^2 with S_t the class score (logit), by gradient ascent::

        d = dS_t/dx - 2 l2 x,   x <- clip(x + lr * d / max|d|, *clip)      ``steps`` times

    ``normalize=True`` divides each image's ascent direction by its largest entry (max|d|), so
    ``lr`` is the most a pixel moves per step, whatever the scale of the gradients (tiny for a
    net early in training); ``normalize=False`` takes the plain step x + lr d. Starts
    from x0 (an image, or one per target) or from noise, mid + 0.1 span N(0, 1) with mid and
    span the middle and width of ``clip`` (``shape`` = (C, H, W) then gives the image shape).
    ``blur_every=k > 0`` blurs x with a 3x3 Gaussian every k steps, a regulariser that keeps
    high frequencies out (Yosinski et al. 2015). ``clip``: the data range (None: no clipping).
    ``target``: an int gives one image (C, H, W); a list of targets, one image each (n, C, H, W),
    found side by side in one batch. ``rng`` as in :func:`saliency`.
    """
    fn = "activation_maximization"
    steps = _int(fn, "steps", steps, 0)
    lr = _number(fn, "lr", lr, strict=True)
    l2 = _number(fn, "l2", l2)
    blur_every = _int(fn, "blur_every", blur_every, 0)
    clip = _clip(fn, clip)
    path = _check_path(fn, path)
    with _evaluating(model):
        t, x, single = _start(fn, model, target, shape, rng, x0, clip)
        xp = get_xp(x)
        for step in range(1, steps + 1):
            d = _input_gradient(model, x, t)[0] - 2 * l2 * x
            x = x + lr * (_normalized(d) if normalize else d)
            if blur_every and step % blur_every == 0:
                x = _blur(x)
            if clip is not None:
                x = xp.clip(x, *clip)
        with no_grad():
            scores = to_device(model(Tensor(x)).data, "cpu")[np.arange(len(t)), t]
    images = to_device(x, "cpu")
    if path:
        _save_png(fn, path, [[(_picture(im), f"{c}: score {s:.1f}", "gray")
                              for im, c, s in zip(images, t, scores)]],
                  title="activation maximisation (class score)")
    return images[0] if single else images


def fooling_image(model, target, confidence=0.99, steps=500, lr=0.02, shape=None, rng=None,
                  x0=None, clip=(0, 1), normalize=True, path=None):
    """An image the model takes for ``target`` with probability >= ``confidence``, grown from
    noise by gradient ascent on log softmax(model(x))[target] (the gradient-ascent variant of
    Nguyen et al. 2015)::

        d = d log softmax_t(x) / dx,   x <- clip(x + lr * d / max|d|, *clip)

    until softmax_t(x) >= confidence, at most ``steps`` steps. Start and ``shape``, ``rng``,
    ``x0``, ``clip``, ``normalize``, ``target`` (an int,
    or a list: each image stops on its own) as in :func:`activation_maximization`. Returns
    ``FoolingResult(image, confidence, steps)``: the image, the confidence it reached and the
    steps it took; not reaching ``confidence`` raises nothing (the confidence says so).
    """
    fn = "fooling_image"
    confidence = _number(fn, "confidence", confidence, strict=True)
    if confidence >= 1:
        raise ValueError(f"fooling_image: confidence must lie in (0, 1), got {confidence!r}")
    steps = _int(fn, "steps", steps, 0)
    lr = _number(fn, "lr", lr, strict=True)
    clip = _clip(fn, clip)
    path = _check_path(fn, path)
    with _evaluating(model):
        t, x, single = _start(fn, model, target, shape, rng, x0, clip)
        xp = get_xp(x)
        taken = np.full(len(t), steps)
        active = np.ones(len(t), dtype=bool)
        for step in range(steps + 1):
            g, out = _input_gradient(model, x, t, log_softmax=True)
            p = to_device(F.softmax(Tensor(out), dim=1).data, "cpu")[np.arange(len(t)), t]
            reached = active & (p >= confidence)
            taken[reached], active = step, active & ~reached
            if step == steps or not active.any():
                break
            mask = xp.asarray(active.astype(x.dtype)).reshape(-1, 1, 1, 1)  # finished ones stay
            x = x + lr * mask * (_normalized(g) if normalize else g)
            if clip is not None:
                x = xp.clip(x, *clip)
    images = to_device(x, "cpu")
    if path:
        _save_png(fn, path, [[(_picture(im), f"{c}: p={q:.3f}", "gray")
                              for im, c, q in zip(images, t, p)]],
                  title=f"fooling images (target confidence {confidence})")
    if single:
        return FoolingResult(images[0], float(p[0]), int(taken[0]))
    return FoolingResult(images, p, taken)


__all__ = ["saliency", "occlusion", "filter_grid", "feature_maps", "activation_maximization",
           "fooling_image", "Tiled", "FoolingResult"]
