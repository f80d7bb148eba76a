"""Data augmentation on batches of images: random moves, scalings, rotations, flips, elastic
distortions (Simard, Steinkraus & Platt 2003) and noise, with torchvision's names and defaults.

Every transform is a callable object, ``t(images, rng=None) -> new array``, as the
``DataLoader`` calls it on each batch (``DataLoader(..., transform=t)``, ``fit(...,
transform=t)``):

    augment = Compose([RandomAffine(10, translate=(0.1, 0.1), scale=(0.9, 1.1)),
                       ElasticDistortion(alpha=34.0, sigma=4.0), GaussianNoise(0.05, (0, 1))])
    xb = augment(xb, rng=0)                  # a new batch; xb itself is left alone

* ``images``: (N, H, W), (N, C, H, W) or flat (N, H*W) with square images (MNIST's (N, 784)),
  as :func:`~tinygrad_edu.data.transforms.random_shift`; NumPy on the CPU or CuPy on the GPU.
  The output has the input's shape, dtype and device (integer images are rounded and clipped).
* ``rng``: an int seed, a ``numpy.random.Generator``, or None for the engine's CPU generator,
  so ``tg.manual_seed`` makes the result reproducible. Random numbers are drawn on the host (the
  same numbers on both devices); the per-image parameters then go to the images' device.

How the geometric ones work. Each draws, per image, a map from an output pixel to the input
point it shows, p_in = f(p_out), in pixel coordinates (x = column j, y = row i, pixel centres
at whole numbers), and the output is the input read at f(p) by bilinear interpolation, with
``fill`` (default 0) outside the image. A ``Compose`` of several geometric transforms chains
their maps, f1(f2(...(p))), and resamples once, so its blur is that of one interpolation.
"""
import math
import numbers

import numpy as np

from ..backend import get_xp
from ..creation import generator as _engine_generator

__all__ = ["Compose", "RandomAffine", "RandomRotation", "RandomHorizontalFlip",
           "ElasticDistortion", "GaussianNoise", "resize"]

_SNAP = 1e-6  # a source point this close to a pixel centre is that pixel (see _sample)


# ---- shared helpers ------------------------------------------------------------------------------
def _rng(rng):
    """The generator to draw from: an int seed, a numpy Generator, or None (the engine's)."""
    if rng is None:
        return _engine_generator("cpu")
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be an int seed, a numpy.random.Generator or None, got "
                    f"{type(rng).__name__}")


def _as_nchw(images, name):
    """``(images as (N, C, H, W), original shape)``; flat rows must be square images."""
    xp = get_xp(images)
    images = xp.asarray(images)
    shape = images.shape
    if images.dtype.kind not in "fiu":
        raise TypeError(f"{name}: images must be numbers (float or integer), got dtype "
                        f"{images.dtype}")
    if images.ndim == 2:
        side = math.isqrt(shape[1])
        if side * side != shape[1] or side == 0:
            raise ValueError(f"{name}: flat images of shape {shape} are not square; pass them "
                             "as (N, H, W) or (N, C, H, W)")
        return images.reshape(shape[0], 1, side, side), shape
    if images.ndim == 3:
        return images[:, None], shape
    if images.ndim == 4:
        return images, shape
    raise ValueError(f"{name}: expected (N, H*W), (N, H, W) or (N, C, H, W) images, got shape "
                     f"{shape}")


def _work_dtype(dtype):
    """float32 for float32 and small integers, float64 for float64 and int64."""
    return np.result_type(dtype, np.float32)


def _back(out, dtype):
    """The result in the input's dtype: integers are rounded and clipped to their range."""
    xp = get_xp(out)
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        out = xp.clip(xp.rint(out), info.min, info.max)
    return out.astype(dtype, copy=False)


def _number(name, value, owner, low=None, strict=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ValueError(f"{owner}: {name} must be a number, got {value!r}")
    if low is not None and (value <= low if strict else value < low):
        raise ValueError(f"{owner}: {name} must be {'>' if strict else '>='} {low}, got {value}")
    return float(value)


def _pair(name, value, owner, low=None, strict=False, high=None):
    """A (lo, hi) pair of numbers with lo <= hi, each >= low (> low if strict) and <= high."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{owner}: {name} must be a sequence of 2 numbers, got {value!r}")
    lo, hi = (_number(name, v, owner, low, strict) for v in value)
    if high is not None and max(lo, hi) > high:
        raise ValueError(f"{owner}: {name} values must be <= {high}, got {value!r}")
    return lo, hi


def _degrees(degrees, owner):
    """torchvision's rule: a number d is the range (-d, d), d >= 0; or a (lo, hi) pair."""
    if isinstance(degrees, (tuple, list)):
        lo, hi = _pair("degrees", degrees, owner)
    else:
        d = _number("degrees", degrees, owner, low=0)
        lo, hi = 0.0 - d, d   # 0.0 - d: no -0.0 for degrees=0
    if lo > hi:
        raise ValueError(f"{owner}: degrees must be (min, max) with min <= max, got {degrees!r}")
    return lo, hi


def _sample(images, xs, ys, fill):
    """Bilinear interpolation: out[n, c, i, j] = images[n, c] read at (ys, xs)[n, i, j].

    With x0 = floor(x), wx = x - x0 (the same for y), the four neighbours are blended:

        out = (1-wy) (1-wx) v[y0, x0] + (1-wy) wx v[y0, x0+1]
              + wy (1-wx) v[y0+1, x0] + wy wx v[y0+1, x0+1]

    where a neighbour outside the image counts as ``fill`` (PyTorch's ``grid_sample`` with
    zeros padding when fill = 0). A point within 1e-6 of a pixel centre is moved onto it, so that
    maps that cancel (a rotation and its inverse in one Compose) or a rotation by 90 degrees
    (cos(pi/2) = 6e-17 in floating point) give the pixels exactly, with weights 1 and 0.
    ``xs``, ``ys``: (N, H', W') float64 arrays.
    """
    xp = get_xp(images)
    n, c, h, w = images.shape
    dt = _work_dtype(images.dtype)
    xs = xp.where(xp.abs(xs - xp.rint(xs)) < _SNAP, xp.rint(xs), xs)
    ys = xp.where(xp.abs(ys - xp.rint(ys)) < _SNAP, xp.rint(ys), ys)
    x0, y0 = xp.floor(xs), xp.floor(ys)
    wx, wy = (xs - x0).astype(dt), (ys - y0).astype(dt)
    flat = images.reshape(n, c, h * w).astype(dt, copy=False)
    out_shape, m = (n, c) + xs.shape[1:], math.prod(xs.shape[1:])
    out = xp.zeros(out_shape, dtype=dt)
    for dy, dx, weight in ((0, 0, (1 - wy) * (1 - wx)), (0, 1, (1 - wy) * wx),
                           (1, 0, wy * (1 - wx)), (1, 1, wy * wx)):
        yi, xi = y0 + dy, x0 + dx
        inside = (yi >= 0) & (yi <= h - 1) & (xi >= 0) & (xi <= w - 1)
        index = (xp.clip(yi, 0, h - 1) * w + xp.clip(xi, 0, w - 1)).astype(xp.int64)
        index = xp.broadcast_to(index.reshape(n, 1, m), (n, c, m))
        v = xp.take_along_axis(flat, index, axis=2).reshape(out_shape)
        out += weight[:, None] * xp.where(inside[:, None], v, dt.type(fill))
    return out


def _grid(xp, n, h, w):
    """The output pixels' coordinates: xs[n, i, j] = j, ys[n, i, j] = i (float64)."""
    ys, xs = xp.meshgrid(xp.arange(h, dtype=xp.float64), xp.arange(w, dtype=xp.float64),
                         indexing="ij")
    return xp.broadcast_to(xs, (n, h, w)), xp.broadcast_to(ys, (n, h, w))


def _warp(images, transforms, rng, fill, name):
    """Apply geometric ``transforms`` (in order) with one resampling: draw each one's map in
    order, then read the input at f1(f2(...fk(p))), the last map acting first on the grid."""
    x, shape = _as_nchw(images, name)
    xp = get_xp(x)
    rng = _rng(rng)
    n, _, h, w = x.shape
    maps = [t._draw(n, h, w, rng) for t in transforms]
    xs, ys = _grid(xp, n, h, w)
    for k, f in enumerate(reversed(maps)):
        xs, ys = f(xs, ys, k == 0)   # k == 0: (xs, ys) are still the output pixels
    return _back(_sample(x, xs, ys, fill), x.dtype).reshape(shape)


class _Geometric:
    """A transform given by a per-image map p_out -> p_in; ``_draw`` returns that map."""
    fill = None  # None: no pixel from outside is ever read (a flip)

    def _draw(self, n, h, w, rng):
        raise NotImplementedError

    def __call__(self, images, rng=None):
        return _warp(images, [self], rng, self.fill or 0.0, type(self).__name__)


# ---- geometric transforms ------------------------------------------------------------------------
class RandomAffine(_Geometric):
    """Random rotation, translation and scaling about the image centre, one draw per image;
    torchvision's ``RandomAffine(degrees, translate=None, scale=None, fill=0)`` (without shear,
    and with bilinear interpolation where torchvision's default is nearest).

    * ``degrees``: the angle a is uniform in (-degrees, degrees), or in (lo, hi) for a pair;
      a > 0 turns the image counter-clockwise, as torchvision's.
    * ``translate=(a, b)``: fractions of the width and height; the move is
      tx = round(uniform(-a W, a W)), ty = round(uniform(-b H, b H)), whole pixels as in
      torchvision; tx > 0 moves the content right, ty > 0 down (as ``random_shift``).
    * ``scale=(lo, hi)``: the factor s is uniform in [lo, hi]; s > 1 enlarges.
    * ``fill``: the value of pixels that come from outside the image.

    The draws per batch, in torchvision's order: angles, then moves, then scales. With centre
    c = ((W-1)/2, (H-1)/2) and, in image coordinates (y down), R(a) = [[cos a, sin a],
    [-sin a, cos a]] (counter-clockwise on screen), the output pixel p shows the input at

        p_in = c + R(-a) (p - c - t) / s          (the inverse of p -> c + s R(a) (p_in - c) + t)
    """

    def __init__(self, degrees, translate=None, scale=None, fill=0):
        name = type(self).__name__
        self.degrees = _degrees(degrees, name)
        self.translate = (None if translate is None
                          else _pair("translate", translate, name, low=0, high=1))
        self.scale = None if scale is None else _pair("scale", scale, name, low=0, strict=True)
        if self.scale is not None and self.scale[0] > self.scale[1]:
            raise ValueError(f"{name}: scale must be (min, max) with min <= max, got {scale!r}")
        self.fill = _number("fill", fill, name)

    def _matrices(self, n, h, w, rng):
        """(N, 2, 3) float64 on the host: [x_in, y_in] = A @ [x, y, 1] for each image."""
        angle = np.deg2rad(rng.uniform(*self.degrees, size=n))
        if self.translate is not None:
            mx, my = self.translate[0] * w, self.translate[1] * h
            tx, ty = np.round(rng.uniform(-mx, mx, size=n)), np.round(rng.uniform(-my, my, size=n))
        else:
            tx = ty = np.zeros(n)
        s = rng.uniform(*self.scale, size=n) if self.scale is not None else np.ones(n)
        cos, sin = np.cos(angle) / s, np.sin(angle) / s
        cx, cy = (w - 1) / 2, (h - 1) / 2
        # p_in = c + [[cos, -sin], [sin, cos]] (p - c - t) / s, written as A @ [x, y, 1]
        a = np.empty((n, 2, 3))
        a[:, 0, 0], a[:, 0, 1], a[:, 1, 0], a[:, 1, 1] = cos, -sin, sin, cos
        a[:, 0, 2] = cx - cos * (cx + tx) + sin * (cy + ty)
        a[:, 1, 2] = cy - sin * (cx + tx) - cos * (cy + ty)
        return a

    def _draw(self, n, h, w, rng):
        a = self._matrices(n, h, w, rng)

        def f(xs, ys, on_grid):
            m = get_xp(xs).asarray(a)[:, :, :, None, None]   # to the images' device
            return (m[:, 0, 0] * xs + m[:, 0, 1] * ys + m[:, 0, 2],
                    m[:, 1, 0] * xs + m[:, 1, 1] * ys + m[:, 1, 2])
        return f

    def __repr__(self):
        parts = [f"degrees={list(self.degrees)}"]
        if self.translate is not None:
            parts.append(f"translate={self.translate}")
        if self.scale is not None:
            parts.append(f"scale={self.scale}")
        parts.append(f"fill={self.fill:g}")
        return f"{type(self).__name__}({', '.join(parts)})"


class RandomRotation(RandomAffine):
    """A random rotation about the image centre: torchvision's ``RandomRotation(degrees,
    fill=0)`` (bilinear here, nearest by default there). The angle is uniform in (-degrees,
    degrees), or in (lo, hi) for a pair; positive turns counter-clockwise. It is
    ``RandomAffine(degrees)``: see there for the formula."""

    def __init__(self, degrees, fill=0):
        super().__init__(degrees, fill=fill)


class RandomHorizontalFlip(_Geometric):
    """Mirror each image left-right with probability ``p``: torchvision's
    ``RandomHorizontalFlip(p=0.5)``. out[..., i, j] = img[..., i, W-1-j], exact (no resampling).
    One uniform number per image is drawn; the image is flipped when it is < p."""

    def __init__(self, p=0.5):
        self.p = _number("p", p, type(self).__name__, low=0)
        if self.p > 1:
            raise ValueError(f"{type(self).__name__}: p must be in [0, 1], got {p}")

    def _flags(self, n, rng):
        return rng.random(n) < self.p

    def _draw(self, n, h, w, rng):
        flip = self._flags(n, rng)

        def f(xs, ys, on_grid):
            flags = get_xp(xs).asarray(flip)[:, None, None]
            return get_xp(xs).where(flags, (w - 1) - xs, xs), ys
        return f

    def __call__(self, images, rng=None):
        x, shape = _as_nchw(images, type(self).__name__)
        xp = get_xp(x)
        flip = xp.asarray(self._flags(len(x), _rng(rng)))[:, None, None, None]
        return xp.where(flip, x[..., ::-1], x).reshape(shape)

    def __repr__(self):
        return f"{type(self).__name__}(p={self.p})"


def _gaussian_matrix(xp, size, sigma):
    """G (size, size) with (G @ v)[i] = sum_k g(i - k) v[k]: a Gaussian blur of std ``sigma``
    truncated at radius r = int(4 sigma + 0.5) (SciPy's ``gaussian_filter``), weights summing to
    1, zeros beyond the border (SciPy's mode="constant")."""
    r = int(4 * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    taps /= taps.sum()
    d = np.subtract.outer(np.arange(size), np.arange(size))   # i - k
    g = np.where(np.abs(d) <= r, taps[np.clip(d + r, 0, 2 * r)], 0.0)
    return xp.asarray(g)


class ElasticDistortion(_Geometric):
    """Elastic distortion, Simard, Steinkraus & Platt (2003), "Best practices for convolutional
    neural networks applied to visual document analysis", section 2; one field per image.

    Draw fields dy, dx uniform in [-1, 1] at each pixel (one (N, 2, H, W) draw, dy first),
    smooth each by a Gaussian of std ``sigma`` pixels (separable: G_H @ d @ G_W^T, see
    ``_gaussian_matrix``), scale by ``alpha``, and read the input bilinearly at

        out[i, j] = img(i + alpha dy_s[i, j], j + alpha dx_s[i, j])      (``fill`` outside)

    A small sigma gives a random jitter, a large one an almost uniform move; in between, the
    distortion looks elastic. The paper's values for MNIST are alpha = 34, sigma = 4 (the
    defaults). The smoothed field is not renormalized, as in the usual implementations;
    torchvision's ``ElasticTransform(alpha=50.0, sigma=5.0)`` is the same idea with alpha
    measured differently. In a ``Compose`` after other geometric transforms, the field is
    read bilinearly at the points their maps give, so all of them still resample once.
    """

    def __init__(self, alpha=34.0, sigma=4.0, fill=0):
        name = type(self).__name__
        self.alpha = _number("alpha", alpha, name, low=0)
        self.sigma = _number("sigma", sigma, name, low=0, strict=True)
        self.fill = _number("fill", fill, name)

    def _draw(self, n, h, w, rng):
        field = rng.uniform(-1.0, 1.0, size=(n, 2, h, w))

        def f(xs, ys, on_grid):
            xp = get_xp(xs)
            d = xp.asarray(field)
            d = _gaussian_matrix(xp, h, self.sigma) @ d @ _gaussian_matrix(xp, w, self.sigma).T
            d *= self.alpha
            if not on_grid:
                d = _sample(d, xs, ys, 0.0)    # the field at the points another map gave
            return xs + d[:, 1], ys + d[:, 0]
        return f

    def __repr__(self):
        return f"{type(self).__name__}(alpha={self.alpha}, sigma={self.sigma}, fill={self.fill:g})"


# ---- the rest ------------------------------------------------------------------------------------
class GaussianNoise:
    """Additive Gaussian noise: out = x + std * z, z ~ N(0, 1) per pixel (drawn on the host in
    float64), then clipped to ``clip=(lo, hi)`` if given (e.g. (0, 1) for MNIST). torchvision's
    v2 ``GaussianNoise(mean=0.0, sigma=0.1, clip=True)`` is the same with other names, and
    clips to [0, 1] by default."""

    def __init__(self, std=0.1, clip=None):
        name = type(self).__name__
        self.std = _number("std", std, name, low=0)
        self.clip = None if clip is None else _pair("clip", clip, name)
        if self.clip is not None and self.clip[0] > self.clip[1]:
            raise ValueError(f"{name}: clip must be (min, max) with min <= max, got {clip!r}")

    def __call__(self, images, rng=None):
        x, shape = _as_nchw(images, type(self).__name__)
        xp = get_xp(x)
        z = xp.asarray(_rng(rng).standard_normal(x.shape))
        dt = _work_dtype(x.dtype)
        out = x.astype(dt) + (self.std * z).astype(dt)
        if self.clip is not None:
            out = xp.clip(out, *self.clip)
        return _back(out, x.dtype).reshape(shape)

    def __repr__(self):
        return f"{type(self).__name__}(std={self.std}, clip={self.clip})"


class Compose:
    """Apply ``transforms`` in order, all drawing from the same generator: torchvision's
    ``Compose``. Neighbouring geometric transforms (RandomAffine, RandomRotation,
    RandomHorizontalFlip, ElasticDistortion) with the same ``fill`` are applied together with a
    single resampling; the random numbers drawn are the same as applying them one by one."""

    def __init__(self, transforms):
        transforms = list(transforms)
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Compose: every transform must be callable, got {t!r}")
        self.transforms = transforms

    def _groups(self):
        """Runs of geometric transforms that can share one resampling, and the others alone."""
        groups = []
        for t in self.transforms:
            last = groups[-1] if groups else None
            if (last and isinstance(t, _Geometric) and isinstance(last[0], _Geometric)
                    and (None in (t.fill, _fill(last)) or t.fill == _fill(last))):
                last.append(t)
            else:
                groups.append([t])
        return groups

    def __call__(self, images, rng=None):
        rng = None if rng is None else _rng(rng)  # one generator for all, even from a seed
        for group in self._groups():
            if len(group) == 1:
                images = group[0](images, rng=rng)
            else:
                images = _warp(images, group, rng, _fill(group) or 0.0, "Compose")
        return images

    def __repr__(self):
        return "Compose(" + "".join(f"\n    {t}" for t in self.transforms) + "\n)"


def _fill(group):
    """The fill of a run of geometric transforms (None if none of them reads outside)."""
    fills = [t.fill for t in group if t.fill is not None]
    return fills[0] if fills else None


# ---- resizing ------------------------------------------------------------------------------------
def _resize_matrix(n_out, n_in):
    """R (n_out, n_in): linear interpolation with PyTorch's align_corners=False rule,
    src = (dst + 0.5) n_in / n_out - 0.5, clamped at 0, neighbours x0 and min(x0 + 1, n_in - 1)."""
    src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    x0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    x1 = np.minimum(x0 + 1, n_in - 1)
    frac = src - x0
    r = np.zeros((n_out, n_in))
    np.add.at(r, (np.arange(n_out), x0), 1 - frac)
    np.add.at(r, (np.arange(n_out), x1), frac)
    return r


def resize(images, size):
    """Bilinear resize of a batch to ``size`` = (H', W') (or one int for both), as PyTorch's
    ``F.interpolate(x, size, mode="bilinear", align_corners=False)``: output pixel i reads the
    input at y = (i + 0.5) H / H' - 0.5 (clamped to [0, H-1]), and the same along x. Separable:
    out = R_H @ img @ R_W^T with the (H', H) and (W', W) interpolation matrices.

    Layouts as the transforms: (N, H, W) -> (N, H', W'), (N, C, H, W) -> (N, C, H', W'), and
    flat square (N, H*W) -> (N, H'*W'). The dtype is kept (integers rounded)."""
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (int(size), int(size))
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0
                       for s in size)):
        raise ValueError(f"resize: size must be a positive int or (height, width), got {size!r}")
    x, shape = _as_nchw(images, "resize")
    xp = get_xp(x)
    n, c, h, w = x.shape
    ho, wo = int(size[0]), int(size[1])
    dt = _work_dtype(x.dtype)
    rh = xp.asarray(_resize_matrix(ho, h).astype(dt))
    rw = xp.asarray(_resize_matrix(wo, w).astype(dt))
    out = _back(rh @ x.astype(dt) @ rw.T, x.dtype)
    if len(shape) == 2:
        return out.reshape(n, ho * wo)
    return out.reshape((n, ho, wo) if len(shape) == 3 else (n, c, ho, wo))
