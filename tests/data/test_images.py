"""tile_images: the grid layout, the per-image scaling, and clear errors that change nothing."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_edu as tg
from tinygrad_edu.data import tile_images


def test_tiles_are_laid_out_row_by_row_with_black_gaps():
    images = np.stack([np.full((2, 3), k, dtype=np.float32) for k in range(5)]) / 4
    out = tile_images(images, (2, 3), (2, 3), spacing=1, scale=False)
    assert out.dtype == np.uint8 and out.shape == (2 * 3 - 1, 3 * 4 - 1)
    expected = np.zeros((5, 11), dtype=np.uint8)
    for k, value in enumerate([0, 64, 128, 191, 255]):       # rint(255 * k / 4)
        r, c = divmod(k, 3)
        expected[r * 3:r * 3 + 2, c * 4:c * 4 + 3] = value
    np.testing.assert_array_equal(out, expected)              # the 6th cell stays black


def test_flat_rows_and_image_arrays_give_the_same_picture():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(6, 12))
    flat = tile_images(W, (3, 4), (2, 3), spacing=(2, 0))
    assert flat.shape == (2 * 5 - 2, 3 * 4)
    np.testing.assert_array_equal(flat, tile_images(W.reshape(6, 3, 4), (3, 4), (2, 3), (2, 0)))
    np.testing.assert_array_equal(flat, tile_images(tg.tensor(W), (3, 4), (2, 3), (2, 0)))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.integers(1, 5), st.integers(0, 2),
       st.floats(-1e3, 1e3), st.floats(1e-2, 1e3), st.integers(0, 2**16))
def test_each_image_is_stretched_on_its_own_to_0_255(n, h, w, s, shift, gain, seed):
    x = np.random.default_rng(seed).uniform(-1, 1, size=(n, h * w))
    x[:, 0], x[:, -1] = -1.0, 1.0 if h * w > 1 else -1.0      # each image spans [-1, 1] (or is flat)
    out = tile_images(shift + gain * x, (h, w), (n, 1), spacing=s)
    assert out.shape == (n * (h + s) - s, w)
    for k in range(n):
        tile = out[k * (h + s):k * (h + s) + h].astype(float)
        if h * w > 1:                                          # min -> 0, max -> 255, in order
            assert tile.min() == 0 and tile.max() == 255
            np.testing.assert_allclose(tile.ravel(), 255 * (x[k] + 1) / 2, atol=0.51)
        else:
            assert tile.max() == 0                             # a constant image is black
        assert not out[k * (h + s) + h:(k + 1) * (h + s)].any()    # the gap below it


@pytest.mark.parametrize("args, kwargs, error, message", [
    ((np.zeros((4, 10)), (3, 3), (2, 2)), {}, ValueError, r"shape \(4, 10\) are not n images of "
                                                          r"shape \(3, 3\): expected \(n, 9\)"),
    ((np.zeros((5, 9)), (3, 3), (2, 2)), {}, ValueError, r"5 images do not fit in a 2 x 2 grid"),
    ((np.zeros((4, 9)), (3, 0), (2, 2)), {}, ValueError, r"shape must be an int or a pair of "
                                                         r"ints >= 1, got \(3, 0\)"),
    ((np.zeros((4, 9)), (3, 3), (2, 2)), {"spacing": -1}, ValueError, r"spacing .* >= 0"),
    ((np.zeros((4, 9)), (3, 3), (2, 2.0)), {}, ValueError, r"tile_shape must be"),
    ((np.full((4, 9), np.nan), (3, 3), (2, 2)), {}, ValueError, r"inf or nan"),
    ((np.full((4, 9), 2.0), (3, 3), (2, 2)), {"scale": False}, ValueError,
     r"with scale=False the values must lie in \[0, 1\], got \[2, 2\]"),
    ((np.array([["a"] * 9] * 4), (3, 3), (2, 2)), {}, TypeError, r"must hold numbers"),
])
def test_bad_arguments_raise_and_leave_the_images_alone(args, kwargs, error, message):
    before = args[0].copy()
    with pytest.raises(error, match="tile_images: .*" + message):
        tile_images(*args, **kwargs)
    np.testing.assert_array_equal(args[0], before)


def test_the_callers_array_is_not_changed():
    W = np.random.default_rng(1).normal(size=(4, 9)).astype(np.float32)
    before = W.copy()
    tile_images(W, 3, 2)
    np.testing.assert_array_equal(W, before)
