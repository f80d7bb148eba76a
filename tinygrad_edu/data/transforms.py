"""Preprocessing on NumPy arrays (no Tensor involved): standardization, PCA/ZCA whitening, and
random shifts for data augmentation.

    scaler = Standardize().fit(X_train)    # statistics from the training set only ...
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)   # ... applied to all
"""
import math
from typing import Optional

import numpy as np

from .loader import _generator


class Standardize:
    """Per-feature standardization: x' = (x - mean) / std, statistics fitted on training data.

    ``mean`` and ``std`` are taken over ``axis`` (default 0: one value per feature, i.e. per pixel;
    use ``axis=(0, 2, 3)`` for one value per channel of (N, C, H, W) images). Features with
    std < ``eps`` (pixels that are always 0 in MNIST's border) are only centred: their std is
    replaced by 1 rather than ``eps``, so a test image with ink there is not blown up by 1/eps.
    The statistics are computed in float64; outputs keep the input's floating dtype.
    """

    def __init__(self, axis=0, eps: float = 1e-8):
        self.axis, self.eps = axis, eps
        self.mean: Optional[np.ndarray] = None
        self.std: Optional[np.ndarray] = None

    def fit(self, X) -> "Standardize":
        X = np.asarray(X)
        self.mean = X.mean(axis=self.axis, dtype=np.float64, keepdims=True)
        std = X.std(axis=self.axis, dtype=np.float64, keepdims=True)
        self.std = np.where(std < self.eps, 1.0, std)
        return self

    def _check(self):
        if self.mean is None:
            raise RuntimeError("Standardize: call fit(X_train) before transform")

    def transform(self, X) -> np.ndarray:
        self._check()
        X = np.asarray(X)
        dt = np.result_type(X.dtype, np.float32)  # integers become float32; floats keep theirs
        return ((X - self.mean.astype(dt)) / self.std.astype(dt)).astype(dt, copy=False)

    def inverse_transform(self, Z) -> np.ndarray:
        """x = x' * std + mean."""
        self._check()
        Z = np.asarray(Z)
        dt = np.result_type(Z.dtype, np.float32)
        return (Z * self.std.astype(dt) + self.mean.astype(dt)).astype(dt, copy=False)

    def fit_transform(self, X) -> np.ndarray:
        return self.fit(X).transform(X)


class PCAWhitening:
    """PCA (or ZCA) whitening: decorrelate the features and give each direction unit variance.

    Fit on training rows x_i in R^D (images are flattened to D = 784 features):

        mu = mean_i x_i,   C = (1/N) sum_i (x_i - mu)(x_i - mu)^T = U diag(lam) U^T   (eigh)

    with eigenvalues lam sorted in decreasing order, keeping the first ``n_components`` (k) columns
    of U. Then

        PCA:  z = diag(1 / sqrt(lam + eps)) U^T (x - mu)        in R^k
        ZCA:  z = U diag(1 / sqrt(lam + eps)) U^T (x - mu)      in R^D, rotated back to pixel space

    so the covariance of z over the training rows is diag(lam / (lam + eps)), ~ the identity for
    the directions with lam >> eps. ``eps`` keeps near-zero-variance directions (noise, MNIST's
    always-black border) from being amplified without bound; for images in [0, 1] values like 0.1
    act as a low-pass filter and give smoother ZCA images. ZCA keeps the result as close to the
    original image as whitening allows, and returns it in the input's feature shape.
    """

    def __init__(self, n_components: Optional[int] = None, eps: float = 1e-5, zca: bool = False):
        self.n_components, self.eps, self.zca = n_components, eps, zca
        self.mean: Optional[np.ndarray] = None        # (D,)
        self.eigenvalues: Optional[np.ndarray] = None  # (k,) decreasing
        self.components: Optional[np.ndarray] = None   # (D, k): the columns of U kept
        self._feature_shape = None

    def fit(self, X) -> "PCAWhitening":
        X = np.asarray(X)
        n = len(X)
        self._feature_shape = X.shape[1:]
        Xc = X.reshape(n, -1).astype(np.float64)
        self.mean = Xc.mean(axis=0)
        Xc -= self.mean
        k = Xc.shape[1] if self.n_components is None else self.n_components
        if not 1 <= k <= Xc.shape[1]:
            raise ValueError(f"PCAWhitening: n_components must be in [1, {Xc.shape[1]}], got {k}")
        lam, U = np.linalg.eigh(Xc.T @ Xc / n)             # ascending order
        lam, U = np.maximum(lam[::-1][:k], 0.0), U[:, ::-1][:, :k]  # round-off can give -1e-17
        self.eigenvalues, self.components = lam, U
        scale = np.sqrt(lam + self.eps)
        # transform is z = (x - mu) @ W; inverse_transform is x = z @ W_inv + mu
        self._W, self._W_inv = U / scale, scale[:, None] * U.T
        if self.zca:
            self._W, self._W_inv = self._W @ U.T, U @ self._W_inv
        return self

    def _check(self):
        if self.mean is None:
            raise RuntimeError("PCAWhitening: call fit(X_train) before transform")

    def transform(self, X) -> np.ndarray:
        """(N, k) whitened rows for PCA; ZCA gives the input's shape."""
        self._check()
        X = np.asarray(X)
        dt = np.result_type(X.dtype, np.float32)
        Z = (X.reshape(len(X), -1).astype(dt) - self.mean.astype(dt)) @ self._W.astype(dt)
        return Z.reshape(X.shape) if self.zca else Z

    def inverse_transform(self, Z) -> np.ndarray:
        """Back to the input space (exact when all components are kept), in the fitted shape."""
        self._check()
        Z = np.asarray(Z)
        dt = np.result_type(Z.dtype, np.float32)
        X = Z.reshape(len(Z), -1).astype(dt) @ self._W_inv.astype(dt) + self.mean.astype(dt)
        return X.reshape((len(Z),) + self._feature_shape)

    def fit_transform(self, X) -> np.ndarray:
        return self.fit(X).transform(X)


def random_shift(images, max_shift: int = 2, rng=None) -> np.ndarray:
    """Each image moved by its own random integer offset, with zeros shifted in.

    For every image, dy and dx are drawn uniformly from {-max_shift, ..., max_shift}; the output is

        out[n, ..., i, j] = img[n, ..., i - dy, j - dx]   (0 where that pixel falls outside)

    so dy > 0 moves the content down and dx > 0 to the right. ``images`` may be (N, H, W),
    (N, C, H, W), or flat (N, H*W) with square images (MNIST's (N, 784)); the output has the same
    shape and dtype. ``rng`` is an int seed, a ``numpy.random.Generator`` or None.

    Vectorized, no loop over images: zero-pad by m = max_shift on each side, take every H x W
    window of the padded image (``sliding_window_view``, a view, no copy), and gather for image n
    the window starting at row m - dy[n], column m - dx[n].
    """
    images = np.asarray(images)
    if max_shift < 0:
        raise ValueError(f"random_shift: max_shift must be >= 0, got {max_shift}")
    shape = images.shape
    if images.ndim == 2:
        side = math.isqrt(shape[1])
        if side * side != shape[1]:
            raise ValueError(f"random_shift: flat images of {shape[1]} pixels are not square; "
                             "pass them as (N, H, W) or (N, C, H, W)")
        images = images.reshape(-1, 1, side, side)
    elif images.ndim == 3:
        images = images[:, None]
    elif images.ndim != 4:
        raise ValueError(f"random_shift: expected (N, H*W), (N, H, W) or (N, C, H, W) images, "
                         f"got shape {shape}")
    if max_shift == 0:
        return images.reshape(shape).copy()
    rng = _generator(rng)
    n, _, h, w = images.shape
    m = max_shift
    dy, dx = rng.integers(-m, m + 1, size=(2, n))
    padded = np.pad(images, ((0, 0), (0, 0), (m, m), (m, m)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(2, 3))
    # windows[n, c, a, b] is the H x W window at offset (a, b): (N, C, 2m+1, 2m+1, H, W). The two
    # index arrays are separated by the channel slice, so NumPy puts the image axis first.
    return windows[np.arange(n), :, m - dy, m - dx].reshape(shape)
