"""tinygrad_edu.interpret with the model on the GPU: the same maps and images as on the CPU
(float32 kernels: rtol 1e-4), NumPy arrays back, the model still on the GPU afterwards."""
import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import interpret, nn
from tinygrad_edu.backend import cuda_available

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA GPU")]


def models():
    tg.manual_seed(0)
    cpu = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Dropout(0.5), nn.Flatten(), nn.Linear(27, 4))
    gpu = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Dropout(0.5), nn.Flatten(), nn.Linear(27, 4))
    gpu.load_state_dict(cpu.state_dict())
    return cpu, gpu.to("cuda")


X = np.random.default_rng(0).random((3, 2, 6, 6)).astype(np.float32)
CALLS = {
    "saliency": lambda m: interpret.saliency(m, X, [0, 1, 3]),
    "smoothgrad": lambda m: interpret.saliency(m, X, 2, smooth=3, rng=4),   # host noise: same
    "occlusion": lambda m: interpret.occlusion(m, X, 1, patch=3, upsample=True),
    "feature_maps": lambda m: interpret.feature_maps(m, m[1], X[0]).arrays,
    "filter_grid": lambda m: interpret.filter_grid(m[0]).arrays,
    "activation_maximization":
        lambda m: interpret.activation_maximization(m, [0, 3], x0=X[0], steps=5, blur_every=2),
    "fooling_image": lambda m: interpret.fooling_image(m, [1, 2], x0=X[0], steps=5).image,
}


@pytest.mark.parametrize("name", list(CALLS))
def test_the_gpu_gives_what_the_cpu_gives(name):
    cpu, gpu = models()
    want, got = CALLS[name](cpu), CALLS[name](gpu)
    assert isinstance(got, np.ndarray) and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert all(p.device == "cuda" for p in gpu.parameters()) and gpu.training


def test_engine_generator_on_the_gpu_is_reproducible():
    _, gpu = models()
    tg.manual_seed(1)
    a = interpret.saliency(gpu, X, 1, smooth=2)
    tg.manual_seed(1)
    np.testing.assert_array_equal(a, interpret.saliency(gpu, X, 1, smooth=2))
    tg.manual_seed(1)
    r = interpret.fooling_image(gpu, 0, shape=(2, 6, 6), steps=3)
    assert r.image.shape == (2, 6, 6) and 0 <= r.image.min() and r.image.max() <= 1
