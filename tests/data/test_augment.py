"""Data augmentation (tinygrad_edu.data.augment): shapes and dtypes in every layout, the identity
at zero strength, seeds, the exact cases (rotation by 90 degrees, whole-pixel moves, flips),
the elastic field measured on ramps, resize against PyTorch's numbers, Compose, the DataLoader
and fit, and the errors."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_edu as tg
from tinygrad_edu import nn, optim
from tinygrad_edu.data import DataLoader, random_shift
from tinygrad_edu.data.augment import (Compose, ElasticDistortion, GaussianNoise,
                                       RandomAffine, RandomHorizontalFlip, RandomRotation,
                                       resize)
from tinygrad_edu.training import fit

STRONG = [RandomAffine(20, translate=(0.2, 0.1), scale=(0.8, 1.2)), RandomRotation(30),
          RandomHorizontalFlip(0.5), ElasticDistortion(8.0, 2.0), GaussianNoise(0.1, (0, 1)),
          Compose([RandomAffine(10, scale=(0.9, 1.1)), ElasticDistortion(4.0, 2.0),
                   GaussianNoise(0.05)])]
ZERO = [RandomAffine(0), RandomAffine((0, 0), translate=(0, 0), scale=(1, 1)), RandomRotation(0),
        RandomHorizontalFlip(0.0), ElasticDistortion(alpha=0.0), GaussianNoise(0.0),
        Compose([RandomAffine(0, scale=(1, 1)), RandomHorizontalFlip(0), ElasticDistortion(0),
                 GaussianNoise(0)])]
names = repr


@st.composite
def batches(draw, dtypes=(np.float32, np.float64, np.uint8)):
    """A batch in one of the three layouts: (N, H*W) square, (N, H, W), (N, C, H, W)."""
    n, side = draw(st.integers(0, 3)), draw(st.integers(1, 7))
    layout = draw(st.sampled_from(["flat", "nhw", "nchw"]))
    shape = {"flat": (n, side * side), "nhw": (n, side, side + draw(st.integers(0, 2))),
             "nchw": (n, draw(st.integers(1, 3)), side, side)}[layout]
    dtype = draw(st.sampled_from(dtypes))
    x = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1))).random(shape)
    return (x * 255).astype(dtype) if dtype == np.uint8 else x.astype(dtype)


def ramp(n=2, side=16, axis=-1):
    """Images with value = column index (axis=-1) or row index (axis=-2)."""
    grid = np.broadcast_to(np.arange(side, dtype=np.float64), (side, side))
    return np.broadcast_to(grid if axis == -1 else grid.T, (n, side, side)).copy()


# ---- shapes, identity, seeds, the caller's array ------------------------------------------------
@pytest.mark.parametrize("t", STRONG, ids=names)
@given(x=batches())
def test_shape_and_dtype_are_kept_in_every_layout(t, x):
    y = t(x, rng=0)
    assert y.shape == x.shape and y.dtype == x.dtype and y is not x


@pytest.mark.parametrize("t", ZERO, ids=names)
@given(x=batches())
def test_zero_strength_is_exactly_the_identity_and_a_new_array(t, x):
    y = t(x, rng=1)
    np.testing.assert_array_equal(y, x)
    assert y.dtype == x.dtype and not np.shares_memory(y, x)


@pytest.mark.parametrize("t", STRONG, ids=names)
def test_a_seed_gives_the_same_output_and_another_seed_another(t):
    x = np.random.default_rng(0).random((4, 1, 12, 12)).astype(np.float32)
    before = x.copy()
    x.setflags(write=False)                        # no write into the caller's array at all
    a, b, c = t(x, rng=5), t(x, rng=5), t(x, rng=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(x, before)
    # a Generator is drawn from and moves on; the same state gives the same output
    g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
    np.testing.assert_array_equal(t(x, rng=g1), t(x, rng=g2))
    assert not np.array_equal(t(x, rng=g1), t(x, rng=np.random.default_rng(9)))


@pytest.mark.parametrize("t", STRONG, ids=names)
def test_no_rng_draws_from_the_engine_so_manual_seed_repeats_it(t):
    x = np.random.default_rng(1).random((4, 10, 10)).astype(np.float32)
    tg.manual_seed(3)
    a, a_next = t(x), t(x)
    tg.manual_seed(3)
    np.testing.assert_array_equal(t(x), a)
    assert not np.array_equal(a, a_next)


def test_each_image_gets_its_own_draw():
    x = np.tile(np.random.default_rng(2).random((1, 12, 12)), (3, 1, 1))
    for t in STRONG[:2] + STRONG[3:]:
        y = t(x, rng=0)
        assert not np.array_equal(y[0], y[1]) and not np.array_equal(y[1], y[2]), t


# ---- the exact cases -----------------------------------------------------------------------------
@pytest.mark.parametrize("side", [5, 6])
@pytest.mark.parametrize("angle, k", [(90, 1), (180, 2), (-90, -1), (270, 3)])
def test_rotation_by_multiples_of_90_degrees_is_rot90(side, angle, k):
    x = np.random.default_rng(side).random((3, 2, side, side)).astype(np.float32)
    # positive angles turn counter-clockwise, as torchvision's and np.rot90's
    np.testing.assert_array_equal(RandomRotation((angle, angle))(x, rng=0),
                                  np.rot90(x, k, axes=(2, 3)))


def bump(side, i, j, width=1.0):
    rows, cols = np.mgrid[:side, :side]
    return np.exp(-((rows - i) ** 2 + (cols - j) ** 2) / (2 * width ** 2))[None]


def test_rotation_by_45_degrees_turns_a_bump_counter_clockwise_about_the_centre():
    x = bump(21, 10, 16, 2.0)                        # 6 pixels right of the centre (10, 10)
    r = 6 / np.sqrt(2)                               # counter-clockwise on screen: up and right
    np.testing.assert_allclose(RandomRotation((45, 45))(x, rng=0), bump(21, 10 - r, 10 + r, 2.0),
                               atol=0.06)           # bilinear reading of a smooth bump


class FixedDraws(np.random.Generator):
    """A Generator whose uniform() and integers() return given arrays, in order."""

    def __init__(self, *draws):
        super().__init__(np.random.PCG64(0))
        self.draws = list(draws)

    def uniform(self, low=0.0, high=1.0, size=None):
        return np.asarray(self.draws.pop(0), dtype=np.float64)

    def integers(self, low, high=None, size=None):
        return np.asarray(self.draws.pop(0), dtype=np.int64)


def test_a_whole_pixel_translation_equals_random_shift():
    x = np.random.default_rng(3).random((4, 1, 10, 10)).astype(np.float32)
    dy, dx = np.array([1, -2, 0, 2]), np.array([0, 2, -1, -2])
    shifted = random_shift(x, max_shift=2, rng=FixedDraws(np.stack([dy, dx])))
    # RandomAffine draws angles, then tx, then ty (rounded to whole pixels, as torchvision)
    t = RandomAffine(0, translate=(0.2, 0.2))
    moved = t(x, rng=FixedDraws(np.zeros(4), dx + 0.3, dy - 0.2))
    np.testing.assert_array_equal(moved, shifted)


def test_pixels_from_outside_take_the_fill_value():
    y = RandomRotation((45, 45), fill=7.0)(np.zeros((1, 1, 9, 9), np.float32), rng=0)
    assert y[0, 0, 0, 0] == 7.0 and y[0, 0, 4, 4] == 0.0 and y.dtype == np.float32
    moved = RandomAffine(0, translate=(0.2, 0), fill=-1)(np.ones((1, 5, 5)),
                                                         rng=FixedDraws([0], [1], [0]))
    np.testing.assert_array_equal(moved[0, :, 0], -1)       # the column shifted in
    np.testing.assert_array_equal(moved[0, :, 1:], 1)


def test_gaussian_noise_has_the_asked_std_and_is_clipped():
    x = np.full((50, 20, 20), 0.5, np.float32)
    noisy = GaussianNoise(0.2)(x, rng=0) - 0.5
    assert abs(noisy.std() - 0.2) < 0.005 and abs(noisy.mean()) < 0.005
    clipped = GaussianNoise(1.0, clip=(0, 1))(x, rng=0)
    assert clipped.min() == 0 and clipped.max() == 1 and 0.3 < (clipped == 1).mean() < 0.4


def test_scale_enlarges_about_the_centre():
    x = ramp(1, 9)                                   # value = column
    y = RandomAffine(0, scale=(2, 2))(x, rng=0)
    # out(p) = in(c + (p - c) / 2): column j shows column 4 + (j - 4) / 2
    np.testing.assert_allclose(y[0, 3], 4 + (np.arange(9) - 4) / 2, atol=1e-12)


def test_horizontal_flip_mirrors_exactly_with_probability_p():
    x = np.random.default_rng(4).random((200, 3, 5)).astype(np.float32)
    y = RandomHorizontalFlip(0.3)(x, rng=0)
    flipped = np.array([np.array_equal(a, b[:, ::-1]) for a, b in zip(y, x)])
    same = np.array([np.array_equal(a, b) for a, b in zip(y, x)])
    assert (flipped | same).all() and 40 < flipped.sum() < 80
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(x, rng=0), x[..., ::-1])


# ---- elastic distortion --------------------------------------------------------------------------
def smoothed_field(seed, n, side, sigma):
    """The documented recipe, written again with np.convolve: uniform [-1, 1] fields (dy, dx),
    a Gaussian of std sigma truncated at int(4 sigma + 0.5), zeros beyond the border."""
    field = np.random.default_rng(seed).uniform(-1, 1, size=(n, 2, side, side))
    r = int(4 * sigma + 0.5)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    field = np.apply_along_axis(np.convolve, -1, field, k, mode="same")
    return np.apply_along_axis(np.convolve, -2, field, k, mode="same")


@pytest.mark.parametrize("sigma", [0.01, 2.0])
def test_elastic_distortion_moves_each_pixel_by_the_smoothed_field(sigma):
    alpha, side = 0.5, 20
    d = alpha * smoothed_field(7, 2, side, sigma)
    t = ElasticDistortion(alpha=alpha, sigma=sigma)
    moved_x, moved_y = t(ramp(2, side, -1), rng=7) - ramp(2, side, -1), \
        t(ramp(2, side, -2), rng=7) - ramp(2, side, -2)
    inner = (slice(None), slice(1, -1), slice(1, -1))   # reads stay inside the image there
    # on a ramp, bilinear interpolation is exact: the change is the displacement itself
    np.testing.assert_allclose(moved_x[inner], d[:, 1][inner], atol=1e-12)
    np.testing.assert_allclose(moved_y[inner], d[:, 0][inner], atol=1e-12)
    assert 0 < np.abs(moved_x[inner]).max() < 1      # less than one pixel step, but not 0


def test_elastic_fields_are_smooth_for_a_large_sigma():
    d = ElasticDistortion(alpha=1.0, sigma=4.0)(ramp(1, 28), rng=0) - ramp(1, 28)
    jitter = ElasticDistortion(alpha=1.0, sigma=0.01)(ramp(1, 28), rng=0) - ramp(1, 28)
    inner = d[0, 10:18, 10:18]
    assert np.abs(np.diff(inner, axis=-1)).max() < 0.1 * np.abs(np.diff(jitter[0], axis=-1)).max()


# ---- resize --------------------------------------------------------------------------------------
# torch.nn.functional.interpolate(x, size, mode="bilinear", align_corners=False), PyTorch 2.13
TORCH_UP = [[0.0, 0.625, 1.375, 2.0], [1.5, 2.125, 2.875, 3.5], [3.0, 3.625, 4.375, 5.0]]
TORCH_DOWN = [[1.1666667461395264, 3.1666667461395264], [6.5, 8.5],
              [11.833333969116211, 13.833333969116211]]
TORCH_5 = [[0.0, 0.10000000894069672, 0.5, 0.9000000357627869, 1.0],
           [0.20000001788139343, 0.3100000023841858, 0.75, 1.190000057220459, 1.2999999523162842],
           [1.0, 1.149999976158142, 1.75, 2.3499999046325684, 2.5],
           [1.8000000715255737, 1.9900000095367432, 2.75, 3.510000228881836, 3.6999998092651367],
           [2.0, 2.200000047683716, 3.000000238418579, 3.799999713897705, 4.0]]


def test_resize_matches_pytorchs_bilinear_numbers():
    up = resize(np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3), (3, 4))
    down = resize(np.arange(16, dtype=np.float32).reshape(1, 4, 4), (3, 2))
    five = resize(np.array([[0, 1, 2, 4]], dtype=np.float32), 5)      # flat 2x2 -> flat 5x5
    assert up.shape == (1, 1, 3, 4) and down.shape == (1, 3, 2) and five.shape == (1, 25)
    np.testing.assert_allclose(up[0, 0], TORCH_UP, rtol=1e-6)
    np.testing.assert_allclose(down[0], TORCH_DOWN, rtol=1e-6)
    np.testing.assert_allclose(five.reshape(5, 5), TORCH_5, rtol=1e-6, atol=1e-7)
    assert up.dtype == np.float32


def test_resize_to_the_same_size_is_the_identity_and_keeps_integers():
    x = np.random.default_rng(0).integers(0, 256, (2, 3, 5, 6)).astype(np.uint8)
    np.testing.assert_array_equal(resize(x, (5, 6)), x)
    big = resize(x, (10, 12))
    assert big.dtype == np.uint8 and big.shape == (2, 3, 10, 12)
    digits = resize(np.ones((4, 64), np.float32), 28)                 # sklearn's 8x8 digits
    assert digits.shape == (4, 784)
    np.testing.assert_allclose(digits, 1.0, rtol=1e-6)


# ---- Compose -------------------------------------------------------------------------------------
def test_compose_applies_in_order_from_one_generator():
    x = np.random.default_rng(5).random((3, 1, 8, 8)).astype(np.float32)
    noise, flip = GaussianNoise(0.2), RandomHorizontalFlip(0.5)
    g = np.random.default_rng(11)
    expected = flip(noise(x, rng=g), rng=g)
    np.testing.assert_array_equal(Compose([noise, flip])(x, rng=11), expected)
    nested = Compose([Compose([noise]), flip])
    np.testing.assert_array_equal(nested(x, rng=11), expected)


def test_compose_resamples_geometric_transforms_once():
    x = np.zeros((2, 16, 16))
    x[:, 6:10, 6:10] = np.random.default_rng(6).random((2, 4, 4))   # nothing leaves the image
    there_and_back = [RandomRotation((45, 45)), RandomRotation((-45, -45))]
    once = Compose(there_and_back)(x, rng=0)
    twice = there_and_back[1](there_and_back[0](x, rng=0), rng=0)
    np.testing.assert_array_equal(once, x)           # the two maps cancel: nothing resampled
    assert np.abs(twice - x)[:, 6:10, 6:10].max() > 1e-3   # two interpolations blur
    # same draws as one by one: with whole-pixel moves both ways are exact and agree
    moves = [RandomAffine(0, translate=(0.3, 0.3)), RandomHorizontalFlip(),
             RandomAffine(0, translate=(0.2, 0.1))]
    g = np.random.default_rng(4)
    one_by_one = moves[2](moves[1](moves[0](x, rng=g), rng=g), rng=g)
    np.testing.assert_array_equal(Compose(moves)(x, rng=4), one_by_one)


@pytest.mark.parametrize("elastic_first", [False, True])
def test_compose_with_elastic_and_whole_pixel_moves_matches_one_by_one(elastic_first):
    x = ramp(2, 16)                   # bilinear is exact on a ramp: both ways agree inside
    parts = [RandomAffine(0, translate=(0.1, 0.1)), ElasticDistortion(0.5, 2.0)]
    t = Compose(parts[::-1] if elastic_first else parts)   # first: its field read off the grid
    g = np.random.default_rng(2)
    sequential = t.transforms[1](t.transforms[0](x, rng=g), rng=g)
    inner = (slice(None), slice(4, -4), slice(4, -4))
    np.testing.assert_allclose(t(x, rng=2)[inner], sequential[inner], atol=1e-12)


def test_reprs_are_torchvisions():
    assert repr(RandomHorizontalFlip()) == "RandomHorizontalFlip(p=0.5)"
    assert repr(RandomRotation(10)) == "RandomRotation(degrees=[-10.0, 10.0], fill=0)"
    assert repr(RandomAffine((-5, 15), translate=(0.1, 0.2), scale=(0.9, 1.1))) == \
        "RandomAffine(degrees=[-5.0, 15.0], translate=(0.1, 0.2), scale=(0.9, 1.1), fill=0)"
    assert repr(ElasticDistortion()) == "ElasticDistortion(alpha=34.0, sigma=4.0, fill=0)"
    assert repr(GaussianNoise(0.1, (0, 1))) == "GaussianNoise(std=0.1, clip=(0.0, 1.0))"
    assert repr(Compose([RandomHorizontalFlip(), GaussianNoise()])) == \
        "Compose(\n    RandomHorizontalFlip(p=0.5)\n    GaussianNoise(std=0.1, clip=None)\n)"


# ---- the DataLoader and fit ----------------------------------------------------------------------
def test_the_dataloader_and_fit_use_a_transform():
    X = np.random.default_rng(0).random((40, 1, 8, 8)).astype(np.float32)
    y = np.arange(40) % 2
    t = Compose([RandomAffine(10, translate=(0.1, 0.1)), ElasticDistortion(2.0, 2.0),
                 GaussianNoise(0.05)])
    first = [xb.numpy() for xb, _ in DataLoader(X, y, batch_size=16, seed=3, transform=t)]
    again = [xb.numpy() for xb, _ in DataLoader(X, y, batch_size=16, seed=3, transform=t)]
    assert [b.shape for b in first] == [(16, 1, 8, 8), (16, 1, 8, 8), (8, 1, 8, 8)]
    for a, b, plain in zip(first, again, np.split(X, [16, 32])):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, plain)
    tg.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    history = fit(model, optim.SGD(model.parameters(), lr=0.1), (X, y), epochs=1,
                  batch_size=16, transform=t, progress=False, verbose=False)
    assert len(history) == 1 and np.isfinite(history.records[0]["train_loss"])


# ---- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, match", [
    (lambda: GaussianNoise(-0.1), "std must be >= 0"),
    (lambda: GaussianNoise(0.1, clip=(1, 0)), "clip must be"),
    (lambda: RandomHorizontalFlip(1.5), "p must be in"),
    (lambda: RandomHorizontalFlip(-0.1), "p must be >= 0"),
    (lambda: ElasticDistortion(sigma=0), "sigma must be > 0"),
    (lambda: ElasticDistortion(alpha=-1), "alpha must be >= 0"),
    (lambda: RandomAffine(0, scale=(0, 1)), "scale must be > 0"),
    (lambda: RandomAffine(0, scale=(1.2, 0.8)), "scale must be"),
    (lambda: RandomAffine(0, translate=(0.5, 1.5)), "translate values must be <= 1"),
    (lambda: RandomAffine(0, translate=0.1), "translate must be a sequence of 2"),
    (lambda: RandomRotation(-10), "degrees must be >= 0"),
    (lambda: RandomRotation((10, -10)), "degrees must be"),
    (lambda: RandomRotation("10"), "degrees must be a number"),
    (lambda: RandomAffine(0, fill=None), "fill must be a number"),
])
def test_bad_parameters_are_refused_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("t", STRONG + [lambda x, rng=None: resize(x, 4)], ids=names)
@pytest.mark.parametrize("shape", [(5, 30), (3,), (1, 2, 3, 4, 5)])
def test_bad_image_shapes_are_refused_with_the_shape(t, shape):
    x = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match=str(shape).replace("(", r"\(").replace(")", r"\)")):
        t(x, rng=0)
    assert not x.any()


def test_bad_dtypes_rngs_and_sizes_are_refused():
    x = np.zeros((2, 4, 4), np.float32)
    with pytest.raises(TypeError, match="dtype bool"):
        GaussianNoise()(x > 0, rng=0)
    with pytest.raises(TypeError, match="rng must be an int seed"):
        RandomRotation(5)(x, rng="seed")
    with pytest.raises(TypeError, match="Compose: every transform must be callable"):
        Compose([RandomRotation(5), 3])
    for size in (0, (4,), (4, -1), 2.5, True):
        with pytest.raises(ValueError, match="resize: size must be a positive int"):
            resize(x, size)
