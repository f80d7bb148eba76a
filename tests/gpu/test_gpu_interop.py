"""save_safetensors from the GPU, and PyTorch weights loaded into a model on the GPU.

Skipped unless CuPy imports and sees a GPU.
"""
from pathlib import Path

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import nn
from tinygrad_edu.backend import cuda_available, device_of
from tinygrad_edu.interop import load_pytorch, load_safetensors, save_safetensors

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA GPU")]
FIX = Path(__file__).parent.parent / "fixtures"


def test_save_safetensors_of_gpu_arrays_and_tensors(tmp_path):
    import cupy
    host = np.arange(12, dtype=np.float32).reshape(3, 4)
    gpu = cupy.asarray(host)
    tensors = {"array": gpu[:, ::2], "tensor": tg.Tensor(host, device="cuda")}
    save_safetensors(tensors, tmp_path / "g.safetensors")
    got = load_safetensors(tmp_path / "g.safetensors")
    np.testing.assert_array_equal(got["array"], host[:, ::2])
    np.testing.assert_array_equal(got["tensor"], host)
    np.testing.assert_array_equal(gpu.get(), host)  # the caller's array is unchanged


def test_pytorch_weights_load_into_a_gpu_model():
    sd = load_pytorch(FIX / "transfer_vgg11.pth")
    layer = nn.Linear(16, 10).to("cuda")
    layer.load_state_dict({"weight": sd["classifier.6.weight"], "bias": sd["classifier.6.bias"]})
    assert device_of(layer.weight.data) == "cuda"
    np.testing.assert_array_equal(layer.weight.data.get(), sd["classifier.6.weight"])
