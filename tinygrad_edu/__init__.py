"""tinygrad_edu: a small, readable deep learning engine on NumPy and CuPy.

    import tinygrad_edu as tg
    x = tg.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    x.grad  # Tensor([2., 4., 6.])
"""
import numpy as np

from .tensor import (Function, Tensor, array_call, enable_grad, grad, inference_mode,
                     is_grad_enabled, no_grad, set_grad_enabled)
from .debug import detect_anomaly
from . import ops  # binds the ops to Tensor methods and operators
from .ops import (abs, add, amax, amin, argmax, argmin, broadcast_to, cat, clamp, clip, clone,
                  concatenate, div, dot, exp, expand, flatten, log, masked_fill, matmul, max,
                  maximum, mean, min, minimum, mul, neg, pad, permute, pow, relu, reshape,
                  sigmoid, sqrt, squeeze, stack, sub, sum, sum_to, tanh, transpose, unsqueeze,
                  var, where)
from .creation import (arange, eye, from_dlpack, from_numpy, full, full_like, get_rng_state,
                       manual_seed, ones, ones_like, rand, rand_like, randn, randn_like,
                       set_rng_state, tensor, zeros, zeros_like)
from .backend import cuda_available
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from . import viz
from .viz import pp
from . import nn
from .serialization import load, save
from . import data, distributed, interop, interpret, models, optim, pretraining, training
from .interop import load_pytorch, load_safetensors, save_safetensors
from .compiler import CompileError, compile

Tensor.softmax = lambda self, dim: nn.functional.softmax(self, dim)
Tensor.log_softmax = lambda self, dim: nn.functional.log_softmax(self, dim)

float32, float64, int32, int64, bool_ = np.float32, np.float64, np.int32, np.int64, np.bool_

__version__ = "0.1.0"


def __getattr__(name):
    # tg.testing needs Hypothesis (a test dependency), so it is imported on first use only
    if name == "testing":
        import importlib
        return importlib.import_module(".testing", __name__)
    raise AttributeError(f"module 'tinygrad_edu' has no attribute {name!r}")
