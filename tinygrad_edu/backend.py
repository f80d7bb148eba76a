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
    """Normalise a device string ("cpu", "cuda", "cuda:0" -> "cuda") or raise a ValueError.

    Tensors live on the CPU or on CuPy's current GPU, so "cuda:0" is accepted as a spelling of
    "cuda" but another index is refused rather than silently ignored."""
    name = str(device)
    if name in DEVICES:
        return name
    kind, colon, index = name.partition(":")
    if kind == "cuda" and colon and index.isdigit():
        if int(index) == 0:
            return "cuda"
        raise ValueError(f"device {name!r}: tinygrad_edu uses one GPU, CuPy's current device; "
                         "write 'cuda' (select the GPU with cupy.cuda.Device(i).use())")
    raise ValueError(f"unknown device {name!r}: expected 'cpu', 'cuda' or 'cuda:0'")


def get_xp(x):
    """The array module for a device string or an array: numpy or cupy."""
    if isinstance(x, str):
        return np if check_device(x) == "cpu" else _import_cupy()
    if isinstance(x, np.ndarray):
        return np
    if _cupy is not None and isinstance(x, _cupy.ndarray):
        return _cupy
    # a GPU array seen before CuPy was first needed (or another library's GPU array): CuPy's
    # business; a symbolic array of tg.compile's fusion (ops/fusion.py) has its own module;
    # anything else (NumPy scalars, Python numbers, lists) is NumPy's
    symbolic = getattr(type(x), "symbolic_xp", None)
    if symbolic is not None:
        return symbolic
    return _import_cupy() if hasattr(x, "__cuda_array_interface__") else np


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


def as_array(data, dtype, device, copy):
    """The array a new Tensor holds, on ``device`` (None: where it is): NumPy/CuPy arrays keep
    their dtype, Python floats become float32 and ints int64 (``dtype`` overrides); only real
    numbers and bools, so complex, string and object data raise TypeError. ``copy=False`` wraps
    an array as it is when nothing has to change."""
    if dtype is not None:
        dtype = np.dtype(dtype)
        if dtype.kind not in "fiub":
            raise TypeError(f"a Tensor's dtype must be a real number type or bool, not {dtype}")
    if hasattr(data, "__cuda_array_interface__"):  # CuPy's, or another library's GPU array
        xp = get_xp(data)
        data = xp.array(data, dtype=dtype, copy=True) if copy else xp.asarray(data)
    elif isinstance(data, np.ndarray):
        data = np.array(data, dtype=dtype, copy=True) if copy else data
    else:
        python_data = not isinstance(data, np.generic)
        try:
            data = np.asarray(data, dtype=dtype)
        except (TypeError, ValueError) as e:
            raise TypeError(f"cannot make a Tensor from {type(data).__name__} {data!r:.60}: "
                            f"{e}") from e
        if dtype is None and python_data:  # Python numbers: float32 / int64 by default
            if data.dtype.kind == "f":
                data = data.astype(np.float32)
            elif data.dtype.kind in "iu":
                data = data.astype(np.int64)
    if data.dtype.kind not in "fiub":
        raise TypeError(f"cannot make a Tensor from an array of dtype {data.dtype}")
    if dtype is not None and data.dtype != dtype:
        data = data.astype(dtype)
    return data if device is None else to_device(data, device)
