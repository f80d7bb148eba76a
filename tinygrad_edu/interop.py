"""Weights trained elsewhere: read PyTorch checkpoints without PyTorch; read and write safetensors.

    sd = load_pytorch("vgg11.pth")             # what torch.save stored, tensors as NumPy arrays
    model.load_state_dict(sd)
    save_safetensors(model.state_dict(), "vgg11.safetensors", metadata={"epochs": "3"})
    model.load_state_dict(load_safetensors("vgg11.safetensors"))

**What torch.save writes.** A PyTorch checkpoint is a *pickle* of the saved object (usually an
OrderedDict name -> tensor) in which every tensor is a call ``_rebuild_tensor_v2(storage,
offset, size, stride, ...)``: a view (shape and strides, in elements) into a *storage*, a flat
buffer that several tensors may share. Storages are not inside the pickle: each is a
*persistent id*, a tuple ``("storage", torch.FloatStorage, key, location, numel)`` that the
reader resolves to bytes kept elsewhere. Two layouts keep them:

* the zip format (the default since PyTorch 1.6), an uncompressed zip archive::

      <archive>/data.pkl      the pickle
      <archive>/data/<key>    each storage's raw bytes (numel * element size)
      <archive>/byteorder     "little" or "big";   <archive>/version   the format version

* the legacy format (``_use_new_zipfile_serialization=False``): five pickles one after
  another (a magic number, the protocol version 1001, a dict of system info with the byte
  order, the object, the list of storage keys), then for each key in that list an 8-byte
  element count followed by the storage's raw bytes.

**Why a restricted unpickler.** Unpickling is running a tiny program: its ``GLOBAL`` opcode
imports any function by name and ``REDUCE`` calls it, so ``pickle.load`` of a hostile file can
call ``os.system``. :func:`load_pytorch` never uses pickle's own lookup: its ``find_class``
allows only the names that checkpoints of tensors need (:data:`ALLOWED_GLOBALS`) and maps each
to a small function or marker of this module, never importing torch; any other name raises
:class:`UnsafeCheckpointError` before anything from the file is called. Storage sizes are
checked against the file before they are read, as :mod:`tinygrad_edu.serialization` does.

**safetensors** (Hugging Face's format) needs no code at all: an 8-byte little-endian header
length N, N bytes of UTF-8 JSON ``{name: {"dtype": "F32", "shape": [2, 3], "data_offsets":
[begin, end]}, "__metadata__": {str: str}}`` (padded with spaces), then one byte buffer in
which each tensor is a C-contiguous little-endian slice ``[begin, end)``.

NumPy has no bfloat16: bfloat16 tensors of both formats load as float32 (exactly: a bfloat16 is
the upper half of a float32). PyTorch's CUDA tensors load too (their bytes are the same).
"""
import collections
import contextlib
import io
import json
import math
import os
import pickle
import re
import secrets
import struct
import zipfile

import numpy as np

from .backend import to_device
from .serialization import _check_sizes, _Refused, _temp_names
from .tensor import Tensor


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint's pickle asks for a global outside :data:`ALLOWED_GLOBALS` (it may try to
    run code); nothing from the file was run."""


class _Bad(ValueError):
    """A checkpoint refused for a reason stated in the message (completed with the path)."""


# ---- dtypes ------------------------------------------------------------------------------------
# torch dtype name -> NumPy dtype as stored (little-endian); bfloat16 is read as uint16 bits
_TORCH_DTYPES = {"float64": "f8", "float32": "f4", "float16": "f2", "bfloat16": "u2",
                 "int64": "i8", "int32": "i4", "int16": "i2", "int8": "i1", "uint8": "u1",
                 "uint16": "u2", "uint32": "u4", "uint64": "u8", "bool": "b1",
                 "complex64": "c8", "complex128": "c16"}
_STORAGE_DTYPES = {"DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
                   "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
                   "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
                   "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
                   "ComplexDoubleStorage": "complex128", "UntypedStorage": "uint8"}
# dtypes torch has and NumPy cannot hold: a marker, so the error can name them
_OTHER_TORCH_DTYPES = re.compile(r"(float8|float4|complex32|qu?int|bits|u?int[1-7]\b)\w*")


def _bfloat16_to_float32(bits):
    """bfloat16 bit patterns (uint16) -> float32: the 16 bits are a float32's upper half."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


# ---- what the pickle may name: our own markers and functions -----------------------------------
class _Marker:
    """Stands for a torch object (a dtype, a storage class, torch.Tensor); loads as its name."""
    def __init__(self, name, dtype=None):
        self.name, self.dtype = name, dtype  # dtype: the torch dtype name, for storages

    def __repr__(self):
        return f"torch.{self.name}"


class _Storage:
    """A storage the pickle refers to (its persistent id): ``numel`` elements of ``dtype``;
    ``base``/``offset`` for the storage views of old legacy files."""
    def __init__(self, key, dtype, numel, base=None, offset=0):
        self.key, self.dtype, self.numel, self.base, self.offset = key, dtype, numel, base, offset


class _TensorRef:
    """A tensor to build once the storages are read: a strided view of ``storage``."""
    def __init__(self, storage, offset, size, stride, dtype, metadata):
        if not isinstance(storage, _Storage):
            raise _Bad(f"a tensor is rebuilt from a {type(storage).__name__}, not a storage")
        for what, v in (("size", size), ("stride", stride)):
            if not (isinstance(v, tuple) and all(type(n) is int and n >= 0 for n in v)):
                raise _Bad(f"a tensor has {what} {v!r}, not a tuple of non-negative ints")
        if metadata is not None and not isinstance(metadata, dict):
            raise _Bad(f"a tensor has metadata {str(metadata)[:80]}, not a dict")
        if len(size) != len(stride) or type(offset) is not int or offset < 0:
            raise _Bad(f"a tensor has size {size}, stride {stride} and offset {offset!r}")
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride
        self.dtype, self.metadata = dtype, metadata or {}
        self.path = None  # where it sits in the loaded object, for error messages


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _TensorRef(storage, storage_offset, size, stride, storage.dtype, None)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       metadata=None):
    return _TensorRef(storage, storage_offset, size, stride, storage.dtype, metadata)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       dtype, metadata=None):
    """Newer dtypes (uint16...): an untyped (byte) storage viewed as ``dtype``."""
    if not isinstance(dtype, _Marker):
        raise _Bad(f"a tensor has dtype {dtype!r}")
    return _TensorRef(storage, storage_offset, size, stride, dtype.name, metadata)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    return data  # a Parameter is its tensor; requires_grad is the model's business


def _rebuild_from_type_v2(func, new_type, args, state):
    """A tensor with Python attributes (``t.note = ...``): the tensor; the attributes are
    dropped."""
    if func not in _REBUILDERS:
        raise _Bad(f"_rebuild_from_type_v2 is asked to call {func!r}")
    return func(*args)


def _encode(text, encoding="latin1"):
    """``_codecs.encode``: how protocol-2 pickles store bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Bad(f"_codecs.encode({type(text).__name__}, {encoding!r}) is not a bytes literal")
    return text.encode("latin1")


def _bytearray(data=b""):
    if not isinstance(data, (bytes, bytearray)):  # bytearray(10**12) would allocate 1 TB
        raise _Bad(f"bytearray of a {type(data).__name__}")
    return bytearray(data)


_REBUILDERS = (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter)
ALLOWED_GLOBALS = {
    "collections.OrderedDict": collections.OrderedDict,
    "collections.Counter": collections.Counter,
    "builtins.set": set, "builtins.frozenset": frozenset, "builtins.complex": complex,
    "builtins.bytearray": _bytearray, "_codecs.encode": _encode,
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
    "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
    "torch.Tensor": _Marker("Tensor"), "torch.nn.parameter.Parameter": _Marker("Parameter"),
    "torch.Size": tuple, "torch.device": lambda *args: ":".join(map(str, args)),
    "torch.storage.UntypedStorage": _Marker("UntypedStorage", "uint8"),
    **{f"torch.{n}": _Marker(n, d) for n, d in _STORAGE_DTYPES.items()},
    **{f"torch.{n}": _Marker(n) for n in _TORCH_DTYPES},
}
"""The globals a checkpoint's pickle may name, each mapped to what stands for it here. Also
allowed, as markers whose use is an "unknown dtype" error: torch's other dtypes and storage
classes (``torch.float8_e4m3fn``, ``torch.QInt8Storage``...)."""
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}  # protocol-2 pickles' names


class _Unpickler(pickle.Unpickler):
    """pickle's Unpickler with the lookup of globals replaced by :data:`ALLOWED_GLOBALS`, and
    persistent ids resolved to :class:`_Storage` markers (memoized by key: shared storages)."""

    def __init__(self, file, path):
        super().__init__(file)
        self.path, self.storages = path, {}

    def find_class(self, module, name):
        full = f"{_PY2_MODULES.get(module, module)}.{name}"
        if full in ALLOWED_GLOBALS:
            return ALLOWED_GLOBALS[full]
        if module == "torch" and (name.endswith("Storage") or _OTHER_TORCH_DTYPES.fullmatch(name)):
            return _Marker(name, name[:-len("Storage")] if name.endswith("Storage") else None)
        if module == "torch._utils" and name.startswith("_rebuild"):
            raise _Bad(f"it holds a kind of tensor this reader does not support ({full}: "
                       "sparse, quantized, nested and meta tensors are not supported)")
        raise UnsafeCheckpointError(
            f"load_pytorch: refusing {self.path!r}: its pickle asks for the global {full}, which "
            "checkpoints of tensors never need; the file may try to run code (nothing from it "
            "was run). Allowed: tinygrad_edu.interop.ALLOWED_GLOBALS")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                and isinstance(pid[1], _Marker) and isinstance(pid[2], str)
                and type(pid[4]) is int and pid[4] >= 0):
            raise _Bad(f"unexpected persistent id {str(pid)[:80]} (not a storage)")
        kind, key, numel = pid[1], pid[2], pid[4]
        if kind.dtype is None:
            raise _Bad(f"storage {key!r} has type torch.{kind.name}, which is not a storage")
        view = pid[5] if len(pid) == 6 else None
        storage = self.storages.setdefault(key, _Storage(key, kind.dtype, numel))
        if (storage.dtype, storage.numel) != (kind.dtype, numel):
            raise _Bad(f"storage {key!r} is declared twice: {storage.numel} {storage.dtype} and "
                       f"{numel} {kind.dtype} elements")
        if view is None:
            return storage
        # a view into storage `key` (legacy files of PyTorch < 1.0): (view key, offset, numel)
        if not (isinstance(view, tuple) and len(view) == 3 and isinstance(view[0], str)
                and all(type(n) is int and n >= 0 for n in view[1:])):
            raise _Bad(f"storage {key!r} has view metadata {str(view)[:80]}")
        view_key, offset, size = view
        if view_key not in self.storages:
            self.storages[view_key] = _Storage(view_key, kind.dtype, size, storage, offset)
        return self.storages[view_key]


# ---- building the arrays -------------------------------------------------------------------------
def _numpy_dtype(name, what):
    if name not in _TORCH_DTYPES:
        raise _Bad(f"{what} has dtype torch.{name}, which this reader cannot "
                   f"convert to NumPy (known: {', '.join(_TORCH_DTYPES)})")
    return np.dtype(_TORCH_DTYPES[name])


def _walk(obj, leaf, path=""):
    """``obj`` with every marker, storage and tensor reference replaced by ``leaf(x, path)``."""
    if isinstance(obj, (_TensorRef, _Storage, _Marker)):
        return leaf(obj, path or "the top level")
    if isinstance(obj, dict):
        new = type(obj)() if type(obj) in (dict, collections.OrderedDict,
                                           collections.Counter) else {}
        for k, v in obj.items():
            new[_walk(k, leaf, path)] = _walk(v, leaf, f"{path}/{k}".lstrip("/"))
        return new
    if isinstance(obj, (list, tuple, set, frozenset)):
        if isinstance(obj, (set, frozenset)) and any(isinstance(v, _TensorRef) for v in obj):
            raise _Bad(f"the set at {path or 'the top level'} holds tensors")
        items = [_walk(v, leaf, f"{path}/{i}".lstrip("/")) for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else type(obj)(items)
    return obj


def _check(ref, storage_bytes):
    """Refuse a tensor whose dtype is unknown or whose view reads past its storage's end."""
    _numpy_dtype(ref.storage.dtype, f"the storage of the tensor at {ref.path}")
    dtype = _numpy_dtype(ref.dtype, f"the tensor at {ref.path}")
    if ref.metadata and set(ref.metadata) - {"neg", "conj"}:
        raise _Bad(f"the tensor at {ref.path} has metadata {ref.metadata}, not supported")
    if storage_bytes % dtype.itemsize:
        raise _Bad(f"storage {ref.storage.key!r} ({storage_bytes} bytes) is no whole number of "
                   f"{ref.dtype} elements (the tensor at {ref.path})")
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if 0 not in ref.size and last >= storage_bytes // dtype.itemsize:
        raise _Bad(f"the tensor at {ref.path} (size {ref.size}, stride {ref.stride}, offset "
                   f"{ref.offset}) reads element {last} of storage {ref.storage.key!r}, which "
                   f"holds {storage_bytes // dtype.itemsize}: it reads past the storage's end")
    return dtype


def _build(ref, data, big_endian):
    """The C-contiguous, native-endian copy of the strided view ``ref`` of its storage's bytes
    ``data`` (checked by :func:`_check`)."""
    dtype = np.dtype(_TORCH_DTYPES[ref.dtype])
    if 0 in ref.size:
        array = np.empty(ref.size, dtype)
    else:
        flat = np.frombuffer(data, dtype.newbyteorder(">" if big_endian else "<"))
        view = np.lib.stride_tricks.as_strided(flat[ref.offset:], ref.size,
                                               [s * dtype.itemsize for s in ref.stride])
        array = view.astype(dtype, order="C", copy=True)  # also to native byte order
    if ref.dtype == "bfloat16":
        array = _bfloat16_to_float32(array)
    if ref.metadata.get("conj"):  # PyTorch's lazy conjugate and negative views
        array = np.conj(array)
    if ref.metadata.get("neg"):
        array = -array
    return array


def _convert(obj, raw, big_endian, present):
    """``obj`` with its tensors as arrays. Every tensor is checked first (its storage present
    with the declared size, its dtype known, its view inside the storage), then all are built;
    ``present(storage, path)`` raises for a missing or wrongly sized storage."""
    refs = []

    def collect(x, path):
        if isinstance(x, _Storage):  # a storage saved by itself: loads as its elements
            x = _TensorRef(x, 0, (x.numel,), (1,), x.dtype, None)
        if isinstance(x, _TensorRef):
            x.path = path
            refs.append(x)
        return x
    obj = _walk(obj, collect)
    for ref in refs:
        storage, root = ref.storage, ref.storage.base or ref.storage
        _check(ref, _nbytes(storage))
        present(root, ref.path)
        if storage.base is not None and storage.offset + storage.numel > root.numel:
            raise _Bad(f"storage view {storage.key!r} (elements {storage.offset}.."
                       f"{storage.offset + storage.numel}) lies outside storage {root.key!r} "
                       f"of {root.numel} elements")
    return _walk(obj, lambda x, path: _build(x, raw(x.storage), big_endian)
                 if isinstance(x, _TensorRef) else repr(x))  # torch.float32 -> "torch.float32"


def _raw_reader(read_bytes):
    """storage -> its bytes, each root storage read once (shared storages: one read)."""
    cache = {}

    def raw(storage):
        root = storage.base or storage
        if root.key not in cache:
            cache[root.key] = read_bytes(root)
        if storage.base is None:
            return cache[root.key]
        size = np.dtype(_TORCH_DTYPES.get(root.dtype, "u1")).itemsize
        return cache[root.key][storage.offset * size:(storage.offset + storage.numel) * size]
    return raw


def _nbytes(storage):
    return storage.numel * np.dtype(_TORCH_DTYPES.get(storage.dtype, "u1")).itemsize


# ---- the two container formats -------------------------------------------------------------------
def _load_zip(f, path, file_size):
    with zipfile.ZipFile(f) as zf:
        try:
            _check_sizes(zf, file_size)
        except _Refused as e:
            raise _Bad(str(e)) from None
        names = zf.namelist()
        pickles = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            raise _Bad("it is a TorchScript archive (torch.jit.save), which is not supported: in "
                       "PyTorch, torch.jit.load it and torch.save its state_dict()")
        if not pickles:
            hint = ("a tinygrad_edu checkpoint or NumPy .npz (use tg.load)"
                    if all(n.endswith((".npy", ".json")) for n in names) else "no PyTorch file")
            raise _Bad(f"it is a zip archive without <archive>/data.pkl ({hint}; members: "
                       f"{', '.join(names[:4])}{' ...' if len(names) > 4 else ''})")
        prefix = pickles[0][:-len("data.pkl")]
        order = (zf.read(prefix + "byteorder").decode().strip()
                 if prefix + "byteorder" in names else "little")
        if order not in ("little", "big"):
            raise _Bad(f"its byteorder record says {order[:20]!r}, not 'little' or 'big'")
        unpickler = _Unpickler(io.BytesIO(zf.read(pickles[0])), path)
        obj = unpickler.load()

        def extent(storage, where):
            member = f"{prefix}data/{storage.key}"
            if member not in names:
                raise _Bad(f"storage {storage.key!r} of the tensor at {where} is missing "
                           f"(no member {member})")
            have, need = zf.getinfo(member).file_size, _nbytes(storage)
            if have != need:
                raise _Bad(f"storage {storage.key!r} ({member}) holds {have} bytes, but the "
                           f"checkpoint declares {storage.numel} {storage.dtype} elements "
                           f"({need} bytes)")

        raw = _raw_reader(lambda s: zf.read(f"{prefix}data/{s.key}"))
        return _convert(obj, raw, order == "big", extent)


MAGIC_NUMBER = 0x1950a86a20f9469cfc6c  # the first pickle of a legacy torch.save file
PROTOCOL_VERSION = 1001


def _load_legacy(f, path, file_size):
    def plain(what):  # the header pickles hold plain values: no globals, no persistent ids
        try:
            return _Unpickler(f, path).load()
        except (UnsafeCheckpointError, _Bad):
            raise
        except Exception as e:
            raise _Bad(f"its {what} cannot be read ({type(e).__name__}: {e})") from None
    if plain("magic number") != MAGIC_NUMBER:
        raise _Bad("it is a pickle, but not a torch.save file (no PyTorch magic number)")
    if plain("protocol version") != PROTOCOL_VERSION:
        raise _Bad(f"its legacy protocol version is not {PROTOCOL_VERSION}")
    info = plain("system info")
    big_endian = isinstance(info, dict) and info.get("little_endian") is False
    unpickler = _Unpickler(f, path)
    obj = unpickler.load()
    keys = plain("storage key list")
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise _Bad("its storage key list is not a list of strings")
    missing = {k for k, s in unpickler.storages.items() if s.base is None} - set(keys)
    if missing:
        raise _Bad(f"storage {sorted(missing)[0]!r} is missing (not in the file's storage list)")
    offsets = {}  # key -> where its bytes start; walk the records without reading them
    for key in keys:
        storage = unpickler.storages.get(key)
        if storage is None or storage.base is not None:
            raise _Bad(f"its data holds storage {key!r}, which no tensor refers to")
        _numpy_dtype(storage.dtype, f"storage {key!r}")  # its element size is needed here
        start, count = f.tell(), f.read(8)
        if len(count) < 8:
            raise _Bad(f"it is truncated: the file ends ({file_size} bytes) before storage "
                       f"{key!r} (offset {start})")
        count = int.from_bytes(count, "big" if big_endian else "little")
        if count != storage.numel:
            raise _Bad(f"storage {key!r} holds {count} elements, but the pickle declares "
                       f"{storage.numel}")
        offsets[key] = start + 8
        if start + 8 + _nbytes(storage) > file_size:
            raise _Bad(f"it is truncated: storage {key!r} needs {_nbytes(storage)} bytes at "
                       f"offset {start + 8}, but the file ends at {file_size}")
        f.seek(start + 8 + _nbytes(storage))

    def extent(storage, where):
        if storage.key not in offsets:
            raise _Bad(f"storage {storage.key!r} of the tensor at {where} is missing (not in "
                       "the file's storage list)")

    def read_bytes(storage):
        f.seek(offsets[storage.key])
        return f.read(_nbytes(storage))
    return _convert(obj, _raw_reader(read_bytes), big_endian, extent)


def _looks_like(head):
    """What a file that is no PyTorch checkpoint seems to be, from its first bytes; None for
    a pickle (maybe a legacy checkpoint)."""
    if not head:
        return "it is empty"
    if head.startswith(b"\x93NUMPY"):
        return "it looks like a NumPy .npy file (use np.load)"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "it looks like an HDF5 file (Keras .h5?)"
    if len(head) > 8 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 2**32:
        return "it looks like a safetensors file (use load_safetensors)"
    if head.startswith(b"PK\x03\x04"):
        return "it looks like a zip archive whose end is missing (truncated?)"
    if head[257:262] == b"ustar":
        return "it is a tar archive (PyTorch < 0.4's format, which is not supported)"
    if head.startswith(b"\x80"):
        return None  # a pickle: perhaps a legacy checkpoint
    text = head[:40].decode("utf-8", "replace")
    if text.isprintable():
        return f"it looks like text, starting {text!r}"
    return f"it is unknown binary data, starting {head[:8]!r}"


def load_pytorch(path):
    """The object ``torch.save`` stored in ``path``, every tensor turned into a NumPy array.

    Reads both the zip format and the legacy one (see the module docstring), without PyTorch.
    Each tensor becomes a C-contiguous native-endian copy of its view of the storage (shape,
    strides and storage offset honoured; tensors that share a storage share nothing after
    loading); bfloat16 becomes float32. A Parameter loads as its array, dicts keep their type
    (OrderedDict), numbers and strings are themselves; ``torch.float32`` loads as the string
    ``"torch.float32"``, ``torch.device("cuda", 0)`` as ``"cuda:0"``, ``torch.Size`` as a tuple.

    No code from the file is run: a global outside :data:`ALLOWED_GLOBALS` (``os.system``,
    ``builtins.eval``, ``numpy.core.multiarray._reconstruct``...) raises
    :class:`UnsafeCheckpointError`, naming it. Everything else that is wrong (not a PyTorch
    checkpoint, a TorchScript archive, a missing or short storage, an unknown dtype, a
    truncated file, a zip bomb) raises ValueError naming the file and the problem.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:  # a missing file: FileNotFoundError, naming it
        size = os.fstat(f.fileno()).st_size
        head = f.read(512)
        f.seek(0)
        try:
            if zipfile.is_zipfile(f):
                f.seek(0)
                return _load_zip(f, path, size)
            looks = _looks_like(head)
            if looks is not None:
                raise _Bad(f"it is not a PyTorch checkpoint: {looks}")
            f.seek(0)
            return _load_legacy(f, path, size)
        except UnsafeCheckpointError:
            raise
        except _Bad as e:
            raise ValueError(f"load_pytorch: cannot load {path!r}: {e}") from None
        except Exception as e:  # zip, pickle and struct errors, odd REDUCE arguments...
            raise ValueError(f"load_pytorch: cannot load {path!r}: it is truncated or corrupt "
                             f"({type(e).__name__}: {e})") from e


# ---- safetensors ---------------------------------------------------------------------------------
SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8",
                      "I32": "<i4", "I16": "<i2", "I8": "i1", "U64": "<u8", "U32": "<u4",
                      "U16": "<u2", "U8": "u1", "BOOL": "?"}
_SAFETENSORS_NAMES = {np.dtype(v): k for k, v in SAFETENSORS_DTYPES.items() if k != "BF16"}
MAX_HEADER_BYTES = 100_000_000  # the reference implementation's limit


def _header(path):
    """Read and check a safetensors header: (entries sorted by offset, metadata, data start)."""
    def bad(msg):
        return ValueError(f"load_safetensors: cannot load {path!r}: {msg}")
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise bad(f"the file has {size} bytes, fewer than the 8 of the header length")
        n = int.from_bytes(f.read(8), "little")
        if n > min(size - 8, MAX_HEADER_BYTES):
            raise bad(f"the header length {n} is beyond the file's {size} bytes or the limit "
                      f"MAX_HEADER_BYTES = {MAX_HEADER_BYTES}: truncated or not safetensors")
        try:
            header = json.loads(f.read(n).decode("utf-8"), object_pairs_hook=_unique)
        except (UnicodeDecodeError, ValueError) as e:
            raise bad(f"the header is not valid UTF-8 JSON ({e})") from None
    if not isinstance(header, dict):
        raise bad(f"the header is a JSON {type(header).__name__}, not an object")
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (isinstance(metadata, dict) and all(
            isinstance(v, str) for v in metadata.values())):
        raise bad("__metadata__ is not an object of strings")
    entries, buffer = [], size - 8 - n
    for name, e in header.items():
        if not (isinstance(e, dict) and set(e) == {"dtype", "shape", "data_offsets"}):
            raise bad(f"tensor {name!r}: its entry {str(e)[:80]} is not "
                      "{dtype, shape, data_offsets}")
        dtype, shape, offsets = e["dtype"], e["shape"], e["data_offsets"]
        if dtype not in SAFETENSORS_DTYPES:
            raise bad(f"tensor {name!r} has unknown dtype {dtype!r} (known: "
                      f"{', '.join(SAFETENSORS_DTYPES)})")
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
            raise bad(f"tensor {name!r} has shape {shape!r}, not a list of non-negative ints")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(
                type(o) is int for o in offsets) and 0 <= offsets[0] <= offsets[1]):
            raise bad(f"tensor {name!r} has data_offsets {offsets!r}, not [begin, end]")
        need = math.prod(shape) * np.dtype(SAFETENSORS_DTYPES[dtype]).itemsize
        if offsets[1] - offsets[0] != need:
            raise bad(f"tensor {name!r} ({dtype}, shape {shape}) needs {need} bytes, but its "
                      f"data_offsets {offsets} span {offsets[1] - offsets[0]}")
        entries.append((offsets[0], offsets[1], name, dtype, tuple(shape)))
    entries.sort()
    end = 0
    for begin, stop, name, _, _ in entries:
        if begin != end:
            raise bad(f"tensor {name!r} begins at byte {begin} of the buffer, not at {end} where "
                      "the previous one ends (gaps and overlaps are refused)")
        end = stop
    if end != buffer:
        raise bad(f"the tensors end at byte {end} of the buffer, but it holds {buffer} bytes "
                  "(truncated, or offsets past the end)")
    return entries, metadata or {}, 8 + n


def _unique(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate keys {sorted(k for k in set(keys) if keys.count(k) > 1)}")
    return dict(pairs)


def load_safetensors(path, with_metadata=False):
    """The tensors of the safetensors file ``path``: a dict name -> NumPy array, in the file's
    order (``(tensors, metadata)`` with ``with_metadata=True``). BF16 becomes float32.

    The header is checked whole before any array is allocated: its length against the file
    and ``MAX_HEADER_BYTES``, each entry's dtype, shape and offsets, byte count = prod(shape) *
    itemsize, and the tensors tiling the buffer exactly (no gap, no overlap, none past the end).
    A ValueError names the file and the tensor.
    """
    path = os.fspath(path)
    entries, metadata, start = _header(path)
    tensors = {}
    with open(path, "rb") as f:
        for begin, stop, name, dtype, shape in entries:
            f.seek(start + begin)
            data = f.read(stop - begin)
            if len(data) != stop - begin:  # the file shrank since the header was checked
                raise ValueError(f"load_safetensors: {path!r} is truncated at tensor {name!r}")
            array = np.frombuffer(bytearray(data), SAFETENSORS_DTYPES[dtype]).reshape(shape)
            if dtype == "BOOL" and array.view(np.uint8).max(initial=0) > 1:
                raise ValueError(f"load_safetensors: {path!r}: tensor {name!r} (BOOL) holds "
                                 "bytes other than 0 and 1")
            tensors[name] = (_bfloat16_to_float32(array) if dtype == "BF16"
                             else array.astype(array.dtype.newbyteorder("="), copy=False))
    return (tensors, metadata) if with_metadata else tensors


def _atomic_write(path, chunks):
    """Write ``chunks`` (bytes or arrays) to ``path`` atomically, as ``tg.save`` does: a
    temporary file beside the target, fsync, ``os.replace``; on any error the temporary file is
    removed and the old file is untouched. Stale temporaries of this target are removed first."""
    target = os.path.realpath(path)
    directory, name = os.path.split(target)
    for stale in _temp_names(directory, name):
        with contextlib.suppress(OSError):
            os.unlink(stale)
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with open(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        mode = os.stat(target).st_mode if os.path.exists(target) else 0o644
        os.chmod(tmp, mode & 0o7777)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_safetensors(tensors, path, metadata=None):
    """Write ``tensors`` (a dict name -> NumPy/CuPy array or Tensor) to ``path`` as safetensors,
    with ``metadata`` (a dict str -> str) in the header's ``__metadata__``.

    Every name, dtype and metadata entry is checked before the disk is touched (TypeError
    naming the tensor: supported are float64/32/16, int64/32/16/8, uint64/32/16/8 and bool);
    the file is written atomically (no half-written file, ever). The caller's arrays are only
    read. Tensors are laid out largest itemsize first, then by name (aligned, as the reference
    writer does); the header is padded with spaces to a multiple of 8 bytes.
    """
    if not isinstance(tensors, dict):
        raise TypeError(f"save_safetensors: tensors must be a dict name -> array, got "
                        f"{type(tensors).__name__}")
    if metadata is not None and not (isinstance(metadata, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise TypeError("save_safetensors: metadata must be a dict str -> str")
    arrays = {}
    for name, value in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise TypeError(f"save_safetensors: tensor name {name!r} must be a str other than "
                            "'__metadata__'")
        array = value.data if isinstance(value, Tensor) else value
        if not (isinstance(array, np.ndarray) or hasattr(array, "__cuda_array_interface__")):
            raise TypeError(f"save_safetensors: tensor {name!r} is a {type(value).__name__}, "
                            "not an array or Tensor")
        dtype = np.dtype(array.dtype).newbyteorder("<") if array.dtype.itemsize > 1 \
            else np.dtype(array.dtype)
        if dtype not in _SAFETENSORS_NAMES:
            raise TypeError(f"save_safetensors: tensor {name!r} has dtype {array.dtype}, which "
                            f"safetensors cannot hold here (F64 F32 F16 I64 ... U8 BOOL)")
        arrays[name] = (array, dtype)
    order = sorted(arrays, key=lambda n: (-arrays[n][1].itemsize, n))
    header, offset = {"__metadata__": dict(metadata)} if metadata else {}, 0
    for name in order:
        array, dtype = arrays[name]
        nbytes = math.prod(array.shape) * dtype.itemsize
        header[name] = {"dtype": _SAFETENSORS_NAMES[dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)

    def chunks():  # one array at a time converted, so memory stays one array above the data
        yield struct.pack("<Q", len(text)) + text
        for name in order:
            array, dtype = arrays[name]
            yield np.ascontiguousarray(to_device(array, "cpu"), dtype).tobytes()
    _atomic_write(os.fspath(path), chunks())


__all__ = ["load_pytorch", "load_safetensors", "save_safetensors", "UnsafeCheckpointError",
           "ALLOWED_GLOBALS"]
