"""``tg.save`` and ``tg.load``: checkpoints as NumPy ``.npz`` files, written atomically.

    tg.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, "ckpt.npz")
    state = tg.load("ckpt.npz")
    model.load_state_dict(state["model"])

What can be saved: dicts (any hashable JSON-able keys: str, int, float, bool, None, tuples of
those), lists, tuples, NumPy and CuPy arrays, Tensors, NumPy scalars, Python numbers, strings,
bools and None, nested in any way. Types come back as they went in (int keys stay ints, tuples
stay tuples, dtypes are kept); Tensors come back as Tensors, arrays as arrays, all on ``device``.
Modules and optimizers are not saved themselves: save their ``state_dict()``.

The file is an ordinary zip archive that ``np.load`` can open, without pickle:

* one ``.npy`` member per array, named after its place in the structure
  (``model/0.weight.npy``, ``optimizer/state/0/exp_avg.npy``);
* ``structure.json``, the nested structure, in which each array is a reference to its member.

Writing is atomic: the archive is written to a temporary file next to the target, flushed to
disk (``os.fsync``), then renamed onto the target with ``os.replace``, which replaces a file in
one step. A crash or an error at any point leaves the previous checkpoint as it was and removes
the temporary file; a reader never sees a half-written checkpoint. The path is used as given
(no ``.npz`` is appended).
"""
import contextlib
import json
import math
import os
import re
import stat
import tempfile
import zipfile

import numpy as np

from .backend import check_device, get_xp, to_device
from .tensor import Tensor

FORMAT, VERSION = "tinygrad_edu", 1
STRUCTURE = "structure.json"


# ---- encoding: Python objects -> JSON-able structure + named arrays ------------------------------
def _member_name(path, arrays):
    """A unique, tidy zip member name for the array at ``path``."""
    parts = [re.sub(r"[^A-Za-z0-9._-]", "_", p) for p in path.split("/")] if path else ["array"]
    name = "/".join(p if p.strip(".") else "_" for p in parts)  # no "." or ".." components
    base, i = name, 1
    while name + ".npy" in arrays:
        name, i = f"{base}~{i}", i + 1
    return name + ".npy"


def _store(array, path, arrays):
    array = to_device(array, "cpu")
    if array.dtype.hasobject:
        raise TypeError(f"tg.save: the array at {path or 'the top level'} has dtype object, "
                        "which cannot be saved without pickle")
    name = _member_name(path, arrays)
    arrays[name] = array
    return name


def _encode(obj, path, arrays):
    """The JSON form of ``obj``. Numbers, strings, bools, None and lists are themselves; anything
    else is a one-key object whose key says the type: {"dict": [[key, value], ...]},
    {"tuple": [...]}, {"array": member}, {"tensor": member, "requires_grad": bool},
    {"scalar": member} (a NumPy scalar), {"float": "inf"} (non-finite floats)."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"float": repr(obj)}
    if isinstance(obj, Tensor):
        return {"tensor": _store(obj.data, path, arrays), "requires_grad": obj.requires_grad}
    if isinstance(obj, np.ndarray) or hasattr(obj, "__cuda_array_interface__"):
        return {"array": _store(obj, path, arrays)}
    if isinstance(obj, np.generic):
        return {"scalar": _store(np.asarray(obj), path, arrays)}
    if isinstance(obj, list):
        return [_encode(v, f"{path}/{i}".lstrip("/"), arrays) for i, v in enumerate(obj)]
    if isinstance(obj, tuple):
        return {"tuple": [_encode(v, f"{path}/{i}".lstrip("/"), arrays) for i, v in enumerate(obj)]}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int, float, bool, tuple, type(None))):
                raise TypeError(f"tg.save: dict key {k!r} at {path or 'the top level'} is a "
                                f"{type(k).__name__}; keys must be str, int, float, bool, None "
                                "or tuples of those")
            items.append([_encode(k, path, {}), _encode(v, f"{path}/{k}".lstrip("/"), arrays)])
        return {"dict": items}
    hint = "; save its state_dict() instead" if hasattr(obj, "state_dict") else ""
    raise TypeError(f"tg.save: cannot save a {type(obj).__name__} (at {path or 'the top level'})"
                    f"{hint}")


def _write_array(zf, name, array):
    """One .npy member, exactly as ``np.savez`` writes it."""
    with zf.open(name, "w", force_zip64=True) as f:
        np.lib.format.write_array(f, array, allow_pickle=False)


def save(obj, path):
    """Save ``obj`` (a state dict or any nesting of dicts, lists, arrays, numbers...) to ``path``,
    atomically (see the module docstring). Arrays on the GPU are copied to the host."""
    path = os.fspath(path)
    arrays = {}
    structure = _encode(obj, "", arrays)  # before touching the disk: type errors change nothing
    header = json.dumps({"format": FORMAT, "version": VERSION, "object": structure},
                        allow_nan=False, indent=1)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = tempfile.NamedTemporaryFile(dir=directory, prefix="." + os.path.basename(path) + ".",
                                      suffix=".tmp", delete=False)
    try:
        with tmp:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                zf.writestr(STRUCTURE, header)
                for name, array in arrays.items():
                    _write_array(zf, name, array)
            tmp.flush()
            os.fsync(tmp.fileno())  # the data is on disk before the rename makes it visible
        # NamedTemporaryFile makes the file private (0600); give it the usual permissions
        mode = os.stat(path).st_mode if os.path.exists(path) else 0o644
        os.chmod(tmp.name, stat.S_IMODE(mode))
        os.replace(tmp.name, path)
    except BaseException:  # KeyboardInterrupt included: never leave a half-written temp file
        with contextlib.suppress(OSError):
            os.unlink(tmp.name)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX; not on Windows)
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---- decoding -----------------------------------------------------------------------------------
def _decode(node, read):
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):
        return [_decode(v, read) for v in node]
    if not isinstance(node, dict) or len(node) not in (1, 2):
        raise ValueError(f"unexpected entry {str(node)[:80]} in {STRUCTURE}")
    kind = next(iter(node))
    value = node[kind]
    if kind == "dict":
        return {_decode(k, read): _decode(v, read) for k, v in value}
    if kind == "tuple":
        return tuple(_decode(v, read) for v in value)
    if kind == "float":
        return float(value)
    if kind == "array":
        return read(value, to_device_too=True)
    if kind == "tensor":
        return Tensor(read(value, to_device_too=True), requires_grad=bool(node["requires_grad"]))
    if kind == "scalar":
        return read(value, to_device_too=False)[()]
    raise ValueError(f"unknown entry type {kind!r} in {STRUCTURE}")


def load(path, device="cpu"):
    """Load what :func:`save` wrote; arrays and Tensors are put on ``device``.

    A plain ``.npz`` written by ``np.savez`` loads as a dict name -> array. A truncated or
    corrupt file raises ValueError naming the file; a missing one, FileNotFoundError.
    """
    path, device = os.fspath(path), check_device(device)
    get_xp(device)  # no CuPy or no GPU: say so now, not as "cannot read checkpoint" below
    with open(path, "rb") as f:  # missing file, permissions: the usual OSError, naming the path
        try:
            with zipfile.ZipFile(f) as zf:
                def read(name, to_device_too):
                    with zf.open(name) as member:
                        array = np.lib.format.read_array(member, allow_pickle=False)
                    return to_device(array, device) if to_device_too else array

                names = zf.namelist()
                if STRUCTURE not in names:  # a plain np.savez archive
                    return {n[:-4]: read(n, True) for n in names if n.endswith(".npy")}
                header = json.loads(zf.read(STRUCTURE).decode("utf-8"))
                if not isinstance(header, dict) or header.get("format") != FORMAT:
                    raise ValueError(f"{STRUCTURE} does not describe a {FORMAT} checkpoint")
                if header.get("version", 0) > VERSION:
                    raise ValueError(f"format version {header['version']} is newer than this "
                                     f"tinygrad_edu's ({VERSION})")
                return _decode(header["object"], read)
        except Exception as e:  # zip, zlib, JSON and .npy errors all mean the same to the user
            raise ValueError(f"tg.load: cannot read checkpoint {path!r}: it is truncated, corrupt "
                             f"or not a {FORMAT} file ({type(e).__name__}: {e})") from e


__all__ = ["save", "load"]
