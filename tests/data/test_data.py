"""Data helpers: DataLoader, Standardize, PCAWhitening, random_shift."""
import functools

import numpy as np
import pytest

from tinygrad_edu.data import DataLoader, PCAWhitening, Standardize, random_shift


# --- DataLoader ---------------------------------------------------------------------------------

def epoch_indices(loader):
    """The y values seen in one epoch, batch by batch (y = arange(N) identifies the rows)."""
    return [yb.tolist() for _, yb in loader]


def test_loader_visits_every_row_once_per_epoch():
    X, y = np.arange(103 * 2).reshape(103, 2), np.arange(103)
    loader = DataLoader(X, y, batch_size=10, shuffle=True, seed=0)
    assert len(loader) == 11
    epochs = []
    for _ in range(3):
        batches = list(loader)
        assert [len(yb) for _, yb in batches] == [10] * 10 + [3]
        for xb, yb in batches:
            np.testing.assert_array_equal(xb.numpy(), X[yb.numpy()])  # rows keep their labels
        seen = np.concatenate([yb for _, yb in batches])
        np.testing.assert_array_equal(np.sort(seen), y)
        epochs.append(seen.tolist())
    assert epochs[0] != epochs[1] != epochs[2] != sorted(epochs[0])  # a new order every epoch


def test_loader_is_reproducible_from_its_seed():
    y = np.arange(50)
    a, b = DataLoader(y, y, 8, shuffle=True, seed=3), DataLoader(y, y, 8, shuffle=True, seed=3)
    assert [epoch_indices(a) for _ in range(2)] == [epoch_indices(b) for _ in range(2)]
    assert epoch_indices(DataLoader(y, y, 8, shuffle=True, seed=4)) != epoch_indices(
        DataLoader(y, y, 8, shuffle=True, seed=3))
    rng = np.random.default_rng(3)  # a Generator is used as it is
    assert epoch_indices(DataLoader(y, y, 8, shuffle=True, seed=rng)) == epoch_indices(
        DataLoader(y, y, 8, shuffle=True, seed=3))


def test_loader_without_shuffle_keeps_order_and_drop_last():
    y = np.arange(25)
    assert sum(epoch_indices(DataLoader(y, y, 10)), []) == list(range(25))
    loader = DataLoader(y, y, 10, shuffle=True, seed=0, drop_last=True)
    assert len(loader) == 2
    batches = epoch_indices(loader)
    assert [len(b) for b in batches] == [10, 10] and len(set(sum(batches, []))) == 20
    assert len(DataLoader(y, y, 5, drop_last=True)) == 5 == len(list(DataLoader(y, y, 5)))
    assert len(DataLoader(y[:3], y[:3], 10, drop_last=True)) == 0


def test_loader_without_labels_and_from_lists():
    batches = list(DataLoader(np.arange(5), batch_size=2))
    assert [b.tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    xb, yb = next(iter(DataLoader([[1, 2], [3, 4]], [0, 1], batch_size=2)))
    assert xb.shape == (2, 2) and yb.tolist() == [0, 1]


def test_loader_transform_gets_the_loader_generator():
    images = np.random.default_rng(0).random((20, 1, 28, 28)).astype(np.float32)
    shift = functools.partial(random_shift, max_shift=3)

    def run(seed):
        return [xb for xb, _ in DataLoader(images, np.arange(20), 8, True, seed, transform=shift)]
    first, again = run(1), run(1)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert first[0].shape == (8, 1, 28, 28) and first[0].dtype == np.float32
    calls = []
    list(DataLoader(images, None, 8, transform=lambda xb, rng: calls.append(rng) or xb))
    assert len(calls) == 3 and all(isinstance(r, np.random.Generator) for r in calls)


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=0), "batch_size must be a positive integer"),
    (dict(batch_size=-3), "batch_size"),
    (dict(batch_size=2.5), "batch_size"),
    (dict(batch_size=True), "batch_size"),
    (dict(y=np.arange(9)), "X has 10 samples but y has 9"),
])
def test_loader_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DataLoader(np.zeros((10, 2)), **{"y": np.arange(10), **kwargs})


def test_loader_rejects_scalars_and_bad_transforms():
    with pytest.raises(ValueError, match="0-d"):
        DataLoader(np.float32(1.0))
    with pytest.raises(TypeError, match="callable"):
        DataLoader(np.zeros(4), transform="shift")


# --- Standardize --------------------------------------------------------------------------------

def test_standardize_fits_train_statistics():
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(500, 6)) * [1, 2, 3, 4, 5, 6] + [0, 1, -2, 3, 10, -5]).astype(np.float32)
    X[:, 5] = 7.0  # a constant feature, like an always-black MNIST border pixel
    scaler = Standardize().fit(X)
    Z = scaler.transform(X)
    assert Z.dtype == np.float32 and Z.shape == X.shape
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(Z[:, :5].std(axis=0), 1, rtol=1e-5)
    assert np.all(Z[:, 5] == 0)
    test = np.full((1, 6), 8.0, np.float32)  # ink where training never had any: not blown up
    assert scaler.transform(test)[0, 5] == 1.0
    np.testing.assert_allclose(scaler.inverse_transform(Z), X, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(Standardize().fit_transform(X), Z)


def test_standardize_per_channel_and_integer_input():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(40, 3, 5, 5)).astype(np.uint8)
    scaler = Standardize(axis=(0, 2, 3)).fit(images)
    assert scaler.mean.shape == (1, 3, 1, 1)
    Z = scaler.transform(images)
    assert Z.dtype == np.float32
    np.testing.assert_allclose(Z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(Z.std(axis=(0, 2, 3)), 1, rtol=1e-5)
    with pytest.raises(RuntimeError, match="fit"):
        Standardize().transform(images)


# --- PCAWhitening -------------------------------------------------------------------------------

def correlated(n=4000, d=5, seed=0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) * [5.0, 2.0, 1.0, 0.5, 0.2]
    return rng.normal(size=(n, d)) @ mixing + rng.normal(size=d)


def covariance(Z):
    return np.cov(Z, rowvar=False, bias=True)  # 1/N, as in the fit


@pytest.mark.parametrize("zca", [False, True])
def test_whitening_gives_identity_covariance(zca):
    X = correlated()
    assert np.abs(covariance(X) - np.diag(np.diag(covariance(X)))).max() > 0.5  # correlated
    white = PCAWhitening(eps=1e-8, zca=zca).fit(X)
    Z = white.transform(X)
    assert Z.shape == X.shape
    np.testing.assert_allclose(covariance(Z), np.eye(5), atol=1e-6)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-8)
    np.testing.assert_allclose(white.inverse_transform(Z), X, atol=1e-8)
    assert np.all(np.diff(white.eigenvalues) <= 0)
    np.testing.assert_allclose(np.sort(white.eigenvalues), np.linalg.eigvalsh(covariance(X)))


def test_zca_is_symmetric_and_pca_keeps_components():
    X = correlated()
    zca = PCAWhitening(eps=1e-8, zca=True).fit(X)
    W = zca.transform(zca.mean + np.eye(5)) - zca.transform(zca.mean[None])  # rows: W applied
    np.testing.assert_allclose(W, W.T, atol=1e-10)  # ZCA's W = U diag(.) U^T is symmetric
    pca = PCAWhitening(n_components=2, eps=1e-8).fit(X)
    Z = pca.transform(X)
    assert Z.shape == (4000, 2) and pca.components.shape == (5, 2)
    np.testing.assert_allclose(covariance(Z), np.eye(2), atol=1e-6)
    with pytest.raises(ValueError, match="n_components"):
        PCAWhitening(n_components=6).fit(X)


def test_whitening_eps_and_image_shapes():
    rng = np.random.default_rng(2)
    images = rng.random((300, 1, 4, 4)).astype(np.float32)
    images[:, :, 0, :] = 0  # a dead row: zero-variance directions
    zca = PCAWhitening(eps=1e-2, zca=True).fit(images)
    Z = zca.transform(images)
    assert Z.shape == images.shape and Z.dtype == np.float32 and np.all(np.isfinite(Z))
    # with eps, variances become lam / (lam + eps): below 1, and 0 for the dead directions
    lam = np.linalg.eigvalsh(covariance(Z.reshape(300, -1)))
    assert lam.max() < 1 and np.sum(lam < 1e-6) == 4
    assert PCAWhitening().fit(images).transform(images).shape == (300, 16)


# --- random_shift -------------------------------------------------------------------------------

def digits(n, m, seed=0):
    """Images with ink only inside a margin of m pixels and a marker (value 2) at (14, 14)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 1, 28, 28), np.float32)
    images[:, :, m:28 - m, m:28 - m] = rng.random((n, 1, 28 - 2 * m, 28 - 2 * m))
    images[:, :, 14, 14] = 2.0
    return images


def test_shift_moves_whole_images_inside_the_frame():
    m = 2
    images = digits(400, m)
    out = random_shift(images, max_shift=m, rng=0)
    assert out.shape == images.shape and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=(1, 2, 3)), images.sum(axis=(1, 2, 3)), rtol=1e-6)
    offsets = set()
    for image, shifted in zip(images, out):
        row, col = np.unravel_index(np.argmax(shifted[0]), (28, 28))
        dy, dx = row - 14, col - 14
        assert -m <= dy <= m and -m <= dx <= m
        np.testing.assert_array_equal(shifted, np.roll(image, (dy, dx), axis=(1, 2)))
        offsets.add((dy, dx))
    assert len(offsets) == (2 * m + 1) ** 2  # every offset is drawn


def test_shift_fills_with_zeros():
    out = random_shift(np.ones((200, 28, 28), np.uint8), max_shift=3, rng=1)
    assert out.dtype == np.uint8 and out.shape == (200, 28, 28)
    heights = set()
    for shifted in out:
        rows, cols = np.flatnonzero(shifted.any(axis=1)), np.flatnonzero(shifted.any(axis=0))
        h, w = len(rows), len(cols)
        assert h >= 25 and w >= 25 and shifted.sum() == h * w  # one block of ones, zeros around
        for kept in (rows, cols):  # a contiguous run of rows (columns) against one edge
            assert kept[-1] - kept[0] + 1 == len(kept) and (kept[0] == 0 or kept[-1] == 27)
        heights.add(h)
    assert heights == {25, 26, 27, 28}


def test_shift_layouts_agree_and_are_reproducible():
    images = digits(50, 2, seed=3)
    square = random_shift(images, 2, rng=7)
    flat = random_shift(images.reshape(50, 784), 2, rng=7)
    three = random_shift(images[:, 0], 2, rng=7)
    assert flat.shape == (50, 784) and three.shape == (50, 28, 28)
    np.testing.assert_array_equal(flat.reshape(square.shape), square)
    np.testing.assert_array_equal(three, square[:, 0])
    assert not np.array_equal(random_shift(images, 2, rng=8), square)
    same = random_shift(images, max_shift=0)
    assert np.array_equal(same, images) and same is not images


def test_shift_rejects_bad_input():
    with pytest.raises(ValueError, match="not square"):
        random_shift(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="shape"):
        random_shift(np.zeros(5))
    with pytest.raises(ValueError, match="max_shift"):
        random_shift(np.zeros((2, 4, 4)), max_shift=-1)
