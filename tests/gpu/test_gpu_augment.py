"""Data augmentation on CuPy arrays: the random numbers are drawn on the host, so a seed gives
the same distortions on both devices; results stay on the GPU and match the CPU's. Skipped
unless CuPy imports and sees a GPU."""
import numpy as np
import pytest

from tinygrad_edu.backend import cuda_available, device_of
from tinygrad_edu.data import DataLoader
from tinygrad_edu.data.augment import (Compose, ElasticDistortion, GaussianNoise,
                                       RandomAffine, RandomHorizontalFlip, RandomRotation,
                                       resize)

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA GPU")]

TRANSFORMS = [RandomAffine(20, translate=(0.2, 0.1), scale=(0.8, 1.2), fill=0.5),
              RandomRotation(30), RandomHorizontalFlip(), ElasticDistortion(8.0, 2.0),
              GaussianNoise(0.1, (0, 1)),
              Compose([RandomAffine(10), ElasticDistortion(4.0, 2.0), GaussianNoise(0.05)])]
SHAPES = [(4, 144), (4, 12, 10), (4, 2, 12, 12)]


@pytest.mark.parametrize("t", TRANSFORMS, ids=repr)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transforms_on_the_gpu_match_the_cpu(t, shape, dtype):
    import cupy
    x = np.random.default_rng(0).random(shape).astype(dtype)
    gx = cupy.asarray(x)
    y = t(gx, rng=3)
    assert device_of(y) == "cuda" and y.shape == shape and y.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y.get(), t(x, rng=3), rtol=tol, atol=tol)
    np.testing.assert_array_equal(gx.get(), x)                # the input is left alone


def test_zero_strength_is_the_identity_on_the_gpu():
    import cupy
    gx = cupy.asarray(np.random.default_rng(1).random((3, 1, 9, 9)).astype(np.float32))
    for t in (RandomAffine(0), RandomHorizontalFlip(0), ElasticDistortion(0), GaussianNoise(0)):
        y = t(gx, rng=0)
        assert device_of(y) == "cuda" and bool((y == gx).all()), t


def test_rotation_by_90_degrees_and_resize_on_the_gpu():
    import cupy
    x = np.random.default_rng(2).random((2, 1, 6, 6)).astype(np.float32)
    y = RandomRotation((90, 90))(cupy.asarray(x), rng=0)
    np.testing.assert_array_equal(y.get(), np.rot90(x, 1, axes=(2, 3)))
    small = np.random.default_rng(3).random((5, 64)).astype(np.float32)   # sklearn's 8x8
    big = resize(cupy.asarray(small), 28)
    assert device_of(big) == "cuda" and big.shape == (5, 784)
    np.testing.assert_allclose(big.get(), resize(small, 28), rtol=1e-5, atol=1e-6)


def test_the_dataloader_augments_gpu_batches():
    import cupy
    X = cupy.asarray(np.random.default_rng(4).random((20, 1, 8, 8)).astype(np.float32))
    y = cupy.arange(20) % 2
    t = Compose([RandomAffine(10, translate=(0.1, 0.1)), GaussianNoise(0.05)])
    batches = [xb for xb, _ in DataLoader(X, y, batch_size=8, seed=0, transform=t)]
    assert [b.shape for b in batches] == [(8, 1, 8, 8), (8, 1, 8, 8), (4, 1, 8, 8)]
    assert all(b.device == "cuda" for b in batches)
