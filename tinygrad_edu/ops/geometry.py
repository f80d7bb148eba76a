"""The window geometry of convolution and pooling: kernel, stride, padding, output size.

Validated here once, with PyTorch's rules and errors that name the function and the argument,
for ``nn.functional`` and the layers. The kernels (``cpu_kernels``, ``cuda_kernels``) take a
geometry that passed these checks, and only assert what they rely on (``fits``,
``windows_hold_pixels``, through ``assert_fits`` and ``assert_windows_hold_pixels``).

A geometry is the tuple ``(kh, kw, sh, sw, ph, pw)``: kernel height and width, strides, and the
zero padding added on both sides. Along one axis of length ``size``, window ``o`` starts at
``o*s - p``, and there are

    out = floor((size + 2p - k) / s) + 1             the windows that fit in the padded input
    out = ceil((size + 2p - k) / s) + 1              with ceil_mode (pooling): a last, partial
          minus 1 if (out - 1)*s >= size + p         window, unless it would start in the
                                                     right padding (PyTorch's rule)

Adaptive pooling fixes the output size ``out`` instead, and window ``o`` covers

    floor(o * size / out) <= r < ceil((o + 1) * size / out)      (PyTorch's rule)

so windows differ in size by at most one, may overlap (size 5 into 3: [0, 2), [1, 4), [3, 5))
and, with out > size, repeat a pixel. When out divides size they are max_pool2d's windows with
kernel = stride = size / out.
"""
import numpy as np

__all__ = ["size_pair", "pool_geometry", "adaptive_size_pair", "adaptive_output_size",
           "adaptive_windows", "output_length", "output_size", "checked_output_size",
           "fits", "windows_hold_pixels", "assert_fits", "assert_windows_hold_pixels"]


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def size_pair(owner, name, value, minimum, *, each=False):
    """A size argument, an int or a pair of ints (height, width), as two Python ints >= minimum.

    Bools and floats are refused. The ValueError names ``owner`` and ``name`` and shows the
    whole value ("conv2d: stride must be an int >= 1 or a pair of them, got (1, 0)"); with
    ``each=True`` the offending entry, in the words of the layers' other integer arguments
    ("Conv2d: stride must be an integer >= 1, got 0").
    """
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if each:
        if len(pair) != 2:
            raise ValueError(f"{owner}: {name} must be an int or a pair of ints, got {value!r}")
        for v in pair:
            if not _is_int(v) or v < minimum:
                raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {v!r}")
    elif len(pair) != 2 or not all(_is_int(v) and v >= minimum for v in pair):
        raise ValueError(f"{owner}: {name} must be an int >= {minimum} or a pair of them, "
                         f"got {value!r}")
    return int(pair[0]), int(pair[1])


def pool_geometry(owner, kernel_size, stride, padding):
    """(kh, kw, sh, sw, ph, pw) of a pooling; ``stride=None`` means the kernel size.

    The padding may be at most half the kernel (PyTorch's rule): then no window lies wholly in
    the padding, and every max or mean is over at least one pixel.
    """
    kh, kw = size_pair(owner, "kernel_size", kernel_size, 1)
    sh, sw = (kh, kw) if stride is None else size_pair(owner, "stride", stride, 1)
    ph, pw = size_pair(owner, "padding", padding, 0)
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"{owner}: padding {padding} must be at most half the kernel "
                         f"{kernel_size}")
    return kh, kw, sh, sw, ph, pw


def adaptive_size_pair(owner, output_size):
    """An adaptive pooling's ``output_size``, an int or a pair (height, width) whose entries are
    ints >= 1 or None (None keeps that size of the input), as a pair of ints or None.
    Bools and floats are refused, with a ValueError naming ``owner``."""
    if isinstance(output_size, (tuple, list)):
        pair = tuple(output_size)
    else:  # a bare None keeps nothing: refused, as in PyTorch
        pair = () if output_size is None else (output_size, output_size)
    if len(pair) != 2 or not all(v is None or (_is_int(v) and v >= 1) for v in pair):
        raise ValueError(f"{owner}: output_size must be an int >= 1 or a pair of them (None in "
                         f"the pair keeps that input size), got {output_size!r}")
    return tuple(None if v is None else int(v) for v in pair)


def adaptive_output_size(owner, in_hw, output_size):
    """(OH, OW) of an adaptive pooling of an input of height and width ``in_hw``."""
    return tuple(size if out is None else out
                 for size, out in zip(in_hw, adaptive_size_pair(owner, output_size)))


def adaptive_windows(size, out):
    """[(start, end)] of the ``out`` windows along an axis of length ``size``, by the adaptive
    rule in the module docstring (``-(-a // b)`` is ceil(a / b) in integers)."""
    return [(o * size // out, -(-(o + 1) * size // out)) for o in range(out)]


def output_length(size, k, s, p, ceil_mode=False):
    """The number of windows along one axis, by the rule in the module docstring (unchecked)."""
    span = size + 2 * p - k
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    return out - 1 if (out - 1) * s >= size + p else out


def output_size(in_hw, geometry, ceil_mode=False):
    """(OH, OW) for an input of height and width ``in_hw`` (unchecked: see ``fits``)."""
    kh, kw, sh, sw, ph, pw = geometry
    return (output_length(in_hw[0], kh, sh, ph, ceil_mode),
            output_length(in_hw[1], kw, sw, pw, ceil_mode))


def checked_output_size(owner, in_hw, geometry, ceil_mode=False):
    """output_size, after checking that the kernel fits the padded input (a ValueError)."""
    kh, kw, _, _, ph, pw = geometry
    for size, k, p in zip(in_hw, (kh, kw), (ph, pw)):
        if size + 2 * p < k:
            raise ValueError(f"{owner}: kernel {k} is larger than the padded input "
                             f"({size} + 2*{p})")
    return output_size(in_hw, geometry, ceil_mode)


def fits(in_hw, geometry):
    """What im2col and col2im assume: int kernel and stride >= 1, padding >= 0, and a kernel
    within the padded input (so that OH, OW >= 1)."""
    kh, kw, sh, sw, ph, pw = geometry
    return (all(_is_int(v) for v in geometry) and min(kh, kw, sh, sw) >= 1 and min(ph, pw) >= 0
            and in_hw[0] + 2 * ph >= kh and in_hw[1] + 2 * pw >= kw)


def windows_hold_pixels(in_hw, geometry, out_hw):
    """What the max-pool kernels assume: each of the (oh, ow) windows holds at least one pixel,
    or its max and argmax would be undefined. So the input has pixels, the first window does
    not lie in the padding (p < k) and the last starts inside the input ((o - 1)*s - p < size).
    pool_geometry's padding rule and ceil_mode's rule in output_length guarantee the last two."""
    kh, kw, sh, sw, ph, pw = geometry
    (H, W), (oh, ow) = in_hw, out_hw
    return (all(_is_int(v) for v in (*geometry, oh, ow)) and min(kh, kw, sh, sw, oh, ow) >= 1
            and min(H, W) >= 1 and 0 <= ph < kh and 0 <= pw < kw
            and (oh - 1) * sh - ph < H and (ow - 1) * sw - pw < W)


def assert_fits(op, in_hw, geometry):
    """For a kernel ``op``: assert ``fits``, then return ``output_size``."""
    assert fits(in_hw, geometry), f"{op}: geometry {geometry} does not fit input {tuple(in_hw)}"
    return output_size(in_hw, geometry)


def assert_windows_hold_pixels(op, in_hw, geometry, out_hw):
    """For a max-pool kernel ``op``: assert ``windows_hold_pixels``."""
    assert windows_hold_pixels(in_hw, geometry, out_hw), (
        f"{op}: some of the {out_hw[0]}x{out_hw[1]} windows of {geometry} hold no pixel of the "
        f"input {tuple(in_hw)}")
