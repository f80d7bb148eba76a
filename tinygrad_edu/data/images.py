"""Drawing many small images as one picture: the filters of a layer, samples, reconstructions.

    from tinygrad_edu.data import tile_images
    W = rbm.W.numpy()                                   # (500, 784): one filter per hidden unit
    picture = tile_images(W[:100], (28, 28), (10, 10), spacing=1)   # uint8, (279, 279)
    matplotlib.pyplot.imsave("filters.png", picture, cmap="gray")

This is the Theano tutorials' ``tile_raster_images`` (``utils.py`` of lisa-lab's
DeepLearningTutorials) for grey images, with PyTorch-style checks.
"""
import numpy as np


def _pair(name, value, minimum):
    """An int or a pair of ints, each at least ``minimum``, as a tuple of two ints."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                 and v >= minimum for v in pair):
        raise ValueError(f"tile_images: {name} must be an int or a pair of ints >= {minimum}, "
                         f"got {value!r}")
    return tuple(int(v) for v in pair)


def tile_images(arrays, shape, tile_shape, spacing=1, scale=True):
    """Tile ``n`` grey images into one uint8 picture, row by row.

    ``arrays``: n images, as an (n, h * w) array (one flattened image per row, e.g. a weight
    matrix's rows) or an (n, h, w) array; a Tensor is read with ``.numpy()``. ``shape``: (h, w),
    the image shape. ``tile_shape``: (rows, columns) of the grid; n <= rows * columns, the unused
    cells stay black. ``spacing``: black pixels between neighbouring images (an int or a
    (vertical, horizontal) pair). The result has shape

        (rows * (h + s_v) - s_v,  columns * (w + s_h) - s_h).

    With ``scale=True`` (the default, for filters) each image is stretched on its own to the full
    range: x' = (x - min x) / (max x - min x + 1e-8), then 255 x' rounded; with ``scale=False``
    the values must already lie in [0, 1] (pixel intensities, probabilities) and are only
    multiplied by 255. Nothing is drawn unless all arguments are valid.
    """
    a = arrays.numpy() if hasattr(arrays, "numpy") else np.asarray(arrays)
    h, w = _pair("shape", shape, 1)
    rows, cols = _pair("tile_shape", tile_shape, 1)
    sv, sh = _pair("spacing", spacing, 0)
    if a.ndim not in (2, 3) or a.shape[1:] not in ((h * w,), (h, w)):
        raise ValueError(f"tile_images: arrays of shape {a.shape} are not n images of shape "
                         f"{(h, w)}: expected (n, {h * w}) or (n, {h}, {w})")
    n = a.shape[0]
    if n > rows * cols:
        raise ValueError(f"tile_images: {n} images do not fit in a {rows} x {cols} grid")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise TypeError(f"tile_images: arrays must hold numbers, got dtype {a.dtype}")
    images = a.reshape(n, h, w).astype(np.float64)
    if not np.isfinite(images).all():
        raise ValueError("tile_images: arrays hold inf or nan")
    if scale:
        lo = images.min(axis=(1, 2), keepdims=True)
        hi = images.max(axis=(1, 2), keepdims=True)
        images = (images - lo) / (hi - lo + 1e-8)
    elif n and (images.min() < 0 or images.max() > 1):
        raise ValueError(f"tile_images: with scale=False the values must lie in [0, 1], got "
                         f"[{images.min():.4g}, {images.max():.4g}]")
    out = np.zeros((rows * (h + sv) - sv, cols * (w + sh) - sh), dtype=np.uint8)
    for k, image in enumerate(images):
        r, c = divmod(k, cols)
        out[r * (h + sv):r * (h + sv) + h, c * (w + sh):c * (w + sh) + w] = \
            np.rint(image * 255).astype(np.uint8)
    return out
