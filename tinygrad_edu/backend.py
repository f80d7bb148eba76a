"""The array-module switch: which library (NumPy or CuPy) holds a tensor's data.

Every op is written once against ``xp``, the module returned by :func:`get_xp`.
NumPy and CuPy share one API, so ``xp.exp(x)`` runs on the CPU or the GPU
depending only on where ``x`` lives. CuPy is imported lazily, the first time
``"cuda"`` is used, so the CPU engine never needs it.
"""
import numpy as np

DEVICES = ("cpu", "cuda")
_cupy = None


def _import_cupy():
    """Import CuPy once, with different errors for a missing package and a missing GPU."""
    global _cupy
    if _cupy is None:
        try:
            import cupy
        except ImportError as e:
            raise RuntimeError(
                "device 'cuda' needs CuPy, which is not installed: "
                "pip install 'tinygrad_edu[gpu]' (cupy-cuda12x)") from e
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # CUDA driver missing or broken
            raise RuntimeError(f"device 'cuda': CuPy is installed but found no usable GPU ({e})") from e
        if count == 0:
            raise RuntimeError("device 'cuda': CuPy is installed but there is no GPU on this machine")
        _cupy = cupy
    return _cupy


def cuda_available():
    """True when CuPy imports and sees at least one GPU."""
    try:
        _import_cupy()
        return True
    except RuntimeError:
        return False


def check_device(device):
    """Normalise a device string ("cpu", "cuda", "cuda:0" -> "cuda") or raise."""
    device = str(device)
    if device.startswith("cuda"):
        device = "cuda"
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}: expected one of {DEVICES}")
    return device


def get_xp(x):
    """The array module for a device string or an array: numpy or cupy."""
    if isinstance(x, str):
        return np if check_device(x) == "cpu" else _import_cupy()
    if isinstance(x, np.ndarray) or np.isscalar(x) or _cupy is None:
        return np
    return _cupy.get_array_module(x)


def device_of(array):
    """"cpu" for a NumPy array, "cuda" for a CuPy one."""
    return "cpu" if get_xp(array) is np else "cuda"


def to_device(array, device):
    """Copy an array to a device (no copy when it is already there)."""
    device = check_device(device)
    if device_of(array) == device:
        return array
    if device == "cpu":
        return array.get()
    return _import_cupy().asarray(array)
