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
one step. An error at any point (KeyboardInterrupt included) leaves the previous checkpoint as it
was and removes the temporary file; a reader never sees a half-written checkpoint. A process
killed mid-save cannot remove its temporary file (``.<name>.<8 characters>.tmp``), so each save
first removes those of its own target: however many saves are killed, at most one such file per
target is left. (Two processes saving to one path at once: one of them may fail, its temporary
file taken for a stale one; the checkpoint is still always one complete file.) The path is used
as given (no ``.npz`` is appended); a symbolic link is followed, as ``open(path, "wb")`` would:
the link's target gets the new content and the link stays.

Loading never runs code: every ``.npy`` member is read with ``allow_pickle=False``, so object
arrays are refused. It also refuses members that would inflate far beyond the file (a "zip
bomb"), before reading them: the sizes the archive declares for its members may add up to at
most ``MAX_COMPRESSION_RATIO`` times the file's size, or ``ALWAYS_ALLOWED_BYTES``, whichever is
larger, and each array member must declare exactly the size its ``.npy`` header needs. Arrays
that ``tg.save`` writes are stored uncompressed (ratio 1); random weights compressed by
``np.savez_compressed`` reach about 1.1, mostly-constant arrays more, deflate at most ~1000.
"""
import contextlib
import json
import math
import os
import re
import secrets
import stat
import zipfile

import numpy as np

from .backend import check_device, get_xp, to_device
from .tensor import Tensor

FORMAT, VERSION = "tinygrad_edu", 1
STRUCTURE = "structure.json"
MAX_COMPRESSION_RATIO = 100          # declared (uncompressed) sizes / file size, at most ...
ALWAYS_ALLOWED_BYTES = 256 * 2**20   # ... unless they add up to no more than this (256 MiB)


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


def _temp_names(directory, name):
    """The temporary files that saves to ``directory/name`` make: ``.<name>.<8 chars>.tmp`` (8
    characters from ``[a-z0-9_]``, which also matches those of the ``tempfile`` module that
    earlier versions used). Exactly 8, so another target's temporaries never match."""
    pattern = re.compile(re.escape(f".{name}.") + r"[a-z0-9_]{8}\.tmp")
    with contextlib.suppress(OSError):
        return [os.path.join(directory, n) for n in os.listdir(directory) if pattern.fullmatch(n)]
    return []


def save(obj, path):
    """Save ``obj`` (a state dict or any nesting of dicts, lists, arrays, numbers...) to ``path``,
    atomically (see the module docstring). Arrays on the GPU are copied to the host.

    Everything is encoded before the disk is touched, so an object that cannot be saved raises
    TypeError and changes no file. A symbolic link is followed: its target is replaced, the
    link stays. Temporary files left by killed saves to the same target are removed first.
    """
    path = os.fspath(path)
    arrays = {}
    structure = _encode(obj, "", arrays)  # before touching the disk: type errors change nothing
    header = json.dumps({"format": FORMAT, "version": VERSION, "object": structure},
                        allow_nan=False, indent=1)
    target = os.path.realpath(path)  # through symbolic links, as open(path, "wb") would write
    if os.path.islink(target):  # realpath stops at a link that loops
        raise OSError(f"tg.save: too many levels of symbolic links in {path!r}")
    directory, name = os.path.split(target)
    # left by saves that were killed (beside the link too: earlier versions wrote there)
    places = {(directory, name), os.path.split(os.path.abspath(path))}
    for stale in [t for place in places for t in _temp_names(*place)]:
        with contextlib.suppress(OSError):
            os.unlink(stale)
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with open(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                zf.writestr(STRUCTURE, header)
                for member, array in arrays.items():
                    _write_array(zf, member, array)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it visible
        # the temporary file is private (0600); give it the target's permissions, or the usual
        mode = os.stat(target).st_mode if os.path.exists(target) else 0o644
        os.chmod(tmp, stat.S_IMODE(mode))
        os.replace(tmp, target)
    except BaseException:  # KeyboardInterrupt included: never leave a half-written temp file
        with contextlib.suppress(OSError):
            os.unlink(tmp)
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


class _Refused(ValueError):
    """A member that is refused before it is read (see the module docstring)."""


def _check_sizes(zf, file_size):
    """Refuse an archive whose members declare far more bytes than the file could hold."""
    infos = zf.infolist()
    declared = sum(info.file_size for info in infos)
    allowed = max(MAX_COMPRESSION_RATIO * file_size, ALWAYS_ALLOWED_BYTES)
    if declared > allowed:
        big = max(infos, key=lambda info: info.file_size)
        raise _Refused(f"its members declare {declared} bytes uncompressed (the largest, "
                       f"{big.filename!r}, {big.file_size}) in a file of {file_size} bytes, "
                       f"beyond tinygrad_edu.serialization.MAX_COMPRESSION_RATIO = "
                       f"{MAX_COMPRESSION_RATIO} (and ALWAYS_ALLOWED_BYTES = "
                       f"{ALWAYS_ALLOWED_BYTES}); it may be a zip bomb")


def _read_npy(zf, name):
    """One ``.npy`` member, after checking that the size the archive declares for it is the size
    its header needs (so the array allocated is no larger than the declared size)."""
    info = zf.getinfo(name)
    with zf.open(info) as member:
        version = np.lib.format.read_magic(member)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)  # 3.0 differs only in encoding
        shape, _, dtype = read_header(member)
        if dtype.hasobject:
            raise _Refused(f"member {name!r} holds Python objects (dtype {dtype}), which would "
                           "need pickle; it is not loaded")
        needed = member.tell() + math.prod(shape) * dtype.itemsize
    if needed != info.file_size:
        raise _Refused(f"member {name!r} declares {info.file_size} bytes, but its .npy header "
                       f"(shape {shape}, dtype {dtype}) needs {needed}")
    with zf.open(info) as member:
        return np.lib.format.read_array(member, allow_pickle=False)


def load(path, device="cpu"):
    """Load what :func:`save` wrote; arrays and Tensors are put on ``device``.

    A plain ``.npz`` written by ``np.savez`` loads as a dict name -> array. A truncated or
    corrupt file raises ValueError naming the file; a missing one, FileNotFoundError. No code
    is run (no pickle), and an archive whose declared sizes are out of proportion to the file,
    or a member whose declared size differs from what its ``.npy`` header needs, is refused
    with ValueError before anything is inflated (see the module docstring).
    """
    path, device = os.fspath(path), check_device(device)
    get_xp(device)  # no CuPy or no GPU: say so now, not as "cannot read checkpoint" below
    with open(path, "rb") as f:  # missing file, permissions: the usual OSError, naming the path
        try:
            with zipfile.ZipFile(f) as zf:
                _check_sizes(zf, os.fstat(f.fileno()).st_size)

                def read(name, to_device_too):
                    array = _read_npy(zf, name)
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
        except _Refused as e:
            raise ValueError(f"tg.load: refusing checkpoint {path!r}: {e}") from None
        except Exception as e:  # zip, zlib, JSON and .npy errors all mean the same to the user
            raise ValueError(f"tg.load: cannot read checkpoint {path!r}: it is truncated, corrupt "
                             f"or not a {FORMAT} file ({type(e).__name__}: {e})") from e


__all__ = ["save", "load"]
