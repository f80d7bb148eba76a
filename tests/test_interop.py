"""load_pytorch (zip and legacy formats, no PyTorch), load_safetensors and save_safetensors.

The fixtures were written once by PyTorch (tests/fixtures/make_transfer_fixtures.py); files
for error cases are made here, pickle opcode by opcode, without PyTorch.
"""
import collections
import io
import json
import os
import pickle
import pickletools
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_edu as tg
from tinygrad_edu import interop, serialization
from tinygrad_edu.interop import (UnsafeCheckpointError, load_pytorch, load_safetensors,
                                  save_safetensors)
from tinygrad_edu.testing import strategies as tst

FIX = Path(__file__).parent / "fixtures"
MARKER = "transfer_pwned"  # what the malicious fixtures would create


def views_expected():
    return dict(np.load(FIX / "transfer_views.npz"))


def check_arrays(loaded, expected, prefix):
    for key, want in expected.items():
        if key.startswith(prefix):
            got = loaded[key[len(prefix):]]
            assert got.dtype == want.dtype and got.shape == want.shape, key
            np.testing.assert_array_equal(got, want, err_msg=key)
            assert got.flags.c_contiguous and got.flags.writeable, key


# ---- PyTorch checkpoints written by PyTorch ----------------------------------------------------
def test_vgg_state_dict_same_in_zip_legacy_and_safetensors():
    zipped = load_pytorch(FIX / "transfer_vgg11.pth")
    assert type(zipped) is collections.OrderedDict
    assert list(zipped)[:4] == ["features.0.weight", "features.0.bias", "features.3.weight",
                                "features.3.bias"] and list(zipped)[-1] == "classifier.6.bias"
    assert zipped["features.0.weight"].shape == (2, 1, 3, 3)
    assert zipped["classifier.0.weight"].shape == (16, 16 * 2 * 2)
    legacy = load_pytorch(FIX / "transfer_vgg11_legacy.pth")
    reference = load_safetensors(FIX / "transfer_vgg11.safetensors")
    assert list(legacy) == list(zipped) and sorted(reference) == sorted(zipped)
    for k in zipped:
        assert zipped[k].dtype == legacy[k].dtype == reference[k].dtype == np.float32
        np.testing.assert_array_equal(zipped[k], legacy[k])
        np.testing.assert_array_equal(zipped[k], reference[k])


def test_safetensors_package_reads_the_same_reference_file():
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    ours = load_safetensors(FIX / "transfer_vgg11.safetensors")
    theirs = safetensors_numpy.load_file(str(FIX / "transfer_vgg11.safetensors"))
    assert sorted(ours) == sorted(theirs)
    for k in ours:
        np.testing.assert_array_equal(ours[k], theirs[k])


@pytest.mark.parametrize("name", ["transfer_views.pth", "transfer_views_legacy.pth"])
def test_nested_checkpoint_with_views_shared_storages_and_dtypes(name):
    ck = load_pytorch(FIX / name)
    assert list(ck) == ["model", "epoch", "lr", "name", "history", "pair", "none", "dtype",
                        "device", "size", "bytes", "set", "extras"]
    assert (ck["epoch"], ck["lr"], ck["name"], ck["history"], ck["pair"], ck["none"]) == \
        (3, 0.1, "tiny", [1.0, 2.0], (1, "a"), None)
    assert (ck["dtype"], ck["device"], ck["size"], ck["bytes"], ck["set"]) == \
        ("torch.float32", "cuda:0", (2, 3), b"\x00\xff", {1, 2})
    model = ck["model"]
    assert type(model) is collections.OrderedDict and len(model) == 12
    check_arrays(model, views_expected(), "model/")
    base = np.arange(24, dtype=np.float32).reshape(4, 6)  # x[1:, ::2], x[2], x.t() share x's
    for key, want in {"view": base[1:, ::2], "row": base[2], "transposed": base.T}.items():
        np.testing.assert_array_equal(model[key], want)
        assert not np.shares_memory(model[key], model["base"])
    assert model["bf16"].dtype == np.float32  # bfloat16 -> float32, exactly
    np.testing.assert_array_equal(model["bf16"][:2], [1.0, -3.5])
    np.testing.assert_allclose(model["bf16"][2], 1e30, rtol=2**-8)  # bfloat16 has 8 bits


def test_rebuild_tensor_v3_and_negative_views():
    extras = load_pytorch(FIX / "transfer_views.pth")["extras"]
    check_arrays(extras, views_expected(), "extras/")
    assert extras["u16"].dtype == np.uint16 and extras["u16"][1] == 65535
    np.testing.assert_array_equal(extras["neg"], [-1.0, -2.0])


@pytest.mark.parametrize("name, culprit", [
    ("transfer_evil_system.pth", "os.system"), ("transfer_evil_eval.pth", "builtins.eval"),
    ("transfer_evil_system_legacy.pth", "os.system")])
def test_malicious_checkpoints_are_refused_and_run_nothing(name, culprit, tmp_path, monkeypatch):
    if name.endswith("legacy.pth"):
        pickles = (FIX / name).read_bytes()
    else:
        with zipfile.ZipFile(FIX / name) as zf:
            pickles = zf.read("archive/data.pkl")
    # the file really would call `culprit` under plain pickle.load (not run here, of course)
    f, ops = io.BytesIO(pickles), []
    while f.tell() < len(pickles):  # the legacy format is several pickles in a row
        ops += [(op.name, arg) for op, arg, _ in pickletools.genops(f)]
    assert ("GLOBAL", culprit.replace(".", " ")) in ops and ("REDUCE", None) in ops
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnsafeCheckpointError, match=rf"global {culprit}\b.*may try to run code"):
        load_pytorch(FIX / name)
    assert os.listdir(tmp_path) == []  # no marker file
    assert issubclass(UnsafeCheckpointError, pickle.UnpicklingError)


# ---- hand-made checkpoints for the error cases -------------------------------------------------
def text(s):
    return b"X" + len(s.encode()).to_bytes(4, "little") + s.encode()


def ints(*values):
    return b"(" + b"".join(b"J" + struct.pack("<i", v) for v in values) + b"t"


def call(module, name, *args):
    """Protocol-2 opcodes for ``{"w": module.name(*args)}`` (args already opcodes)."""
    return (b"\x80\x02}" + text("w") + b"c" + f"{module}\n{name}\n".encode() + b"("
            + b"".join(args) + b"tRs.")


def storage_pid(numel, storage="FloatStorage", key="0", view=None):
    """A persistent id; ``view=(key, offset, numel)``: a storage view (legacy, PyTorch < 1.0)."""
    view = b"(" + text(view[0]) + ints(*view[1:])[1:] if view else b""
    return (b"(" + text("storage") + f"ctorch\n{storage}\n".encode() + text(key) + text("cpu")
            + b"J" + struct.pack("<i", numel) + view + b"tQ")


def tensor_pickle(numel, offset, size, stride, storage="FloatStorage", key="0", view=None):
    """``{"w": tensor}``: a _rebuild_tensor_v2 call on storage ``key`` of ``numel`` elements."""
    pid = storage_pid(numel, storage, key, view)
    hooks = b"ccollections\nOrderedDict\n)R"
    return call("torch._utils", "_rebuild_tensor_v2", pid, b"J" + struct.pack("<i", offset),
                ints(*size), ints(*stride), b"\x89", hooks)


def zip_checkpoint(path, pkl, storages=None, extra=(), big_endian=False):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/byteorder", "big" if big_endian else "little")
        for key, data in (storages or {}).items():
            zf.writestr(f"archive/data/{key}", data)
        for name in extra:
            zf.writestr(f"archive/{name}", b"")
    return path


def legacy_checkpoint(path, pkl, storages, big_endian=False):
    header = b"".join(pickle.dumps(v, protocol=2) for v in (
        interop.MAGIC_NUMBER, interop.PROTOCOL_VERSION, {"little_endian": not big_endian}))
    body = b"".join(struct.pack(">q" if big_endian else "<q", len(d) // 4) + d
                    for d in storages.values())
    Path(path).write_bytes(header + pkl + pickle.dumps(list(storages), protocol=2) + body)
    return path


F32 = np.arange(6, dtype=np.float32).tobytes()


@pytest.mark.parametrize("make", [zip_checkpoint, legacy_checkpoint])
@pytest.mark.parametrize("big_endian", [False, True])
def test_hand_made_strided_tensor_in_either_byte_order(make, big_endian, tmp_path):
    data = np.arange(6, dtype=">f4" if big_endian else "<f4").tobytes()
    path = make(tmp_path / "t.pth", tensor_pickle(6, 1, (2, 2), (3, 1)), {"0": data},
                big_endian=big_endian)
    got = load_pytorch(path)["w"]
    assert got.dtype == np.float32 and got.dtype.isnative
    np.testing.assert_array_equal(got, [[1, 2], [4, 5]])


def test_legacy_storage_views_and_bare_storages(tmp_path):
    view = tensor_pickle(6, 1, (2,), (1,), key="0", view=("v", 2, 3))  # elements 2..4 of '0'
    got = load_pytorch(legacy_checkpoint(tmp_path / "v.pth", view, {"0": F32}))
    np.testing.assert_array_equal(got["w"], [3, 4])
    outside = tensor_pickle(6, 0, (2,), (1,), key="0", view=("v", 5, 3))
    with pytest.raises(ValueError, match=r"storage view 'v' \(elements 5..8\) lies outside"):
        load_pytorch(legacy_checkpoint(tmp_path / "o.pth", outside, {"0": F32}))
    bare = b"\x80\x02" + storage_pid(24, "UntypedStorage") + b"."  # torch.save(x.untyped_storage())
    got = load_pytorch(zip_checkpoint(tmp_path / "s.pth", bare, {"0": F32}))
    assert got.dtype == np.uint8 and got.tobytes() == F32


@pytest.mark.parametrize("make", [zip_checkpoint, legacy_checkpoint])
@pytest.mark.parametrize("pkl, storages, match", [
    (tensor_pickle(6, 2, (2, 2), (3, 1)), {"0": F32}, r"reads element 6 .* holds 6.*past"),
    (tensor_pickle(6, 0, (6,), (1,), key="1"), {"0": F32}, r"storage '1'"),
    (tensor_pickle(6, 0, (6,), (1,), "QInt8Storage"), {"0": F32[:6]}, r"dtype torch.QInt8\b"),
    (call("torch._utils", "_rebuild_sparse_tensor"), {}, r"does not support .*sparse"),
    (call("builtins", "bytearray", b"J" + struct.pack("<i", 10**9)), {}, r"bytearray of a int"),
    (call("collections", "OrderedDict", b"(" + storage_pid(6) + storage_pid(3, "DoubleStorage")
          + b"l"), {"0": F32}, r"storage '0' is declared twice: 6 float32 and 3 float64"),
    (call("_codecs", "encode", text("x"), text("rot13")), {}, r"not a bytes literal"),
    (call("numpy.core.multiarray", "_reconstruct"), {}, None),
])
def test_bad_checkpoints_are_refused(make, pkl, storages, match, tmp_path):
    path = make(tmp_path / "bad.pth", pkl, storages)
    before = path.read_bytes()
    if match is None:  # NumPy arrays pickled into a checkpoint: unsafe, like any other global
        with pytest.raises(UnsafeCheckpointError, match=r"numpy\.core\.multiarray\._reconstruct"):
            load_pytorch(path)
    else:
        with pytest.raises(ValueError, match=rf"bad\.pth.*{match}"):
            load_pytorch(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["bad.pth"]


def test_zip_storage_of_the_wrong_size_and_unknown_dtype(tmp_path):
    short = zip_checkpoint(tmp_path / "short.pth", tensor_pickle(6, 0, (6,), (1,)), {"0": F32[:20]})
    with pytest.raises(ValueError, match=r"storage '0' .*holds 20 bytes.* 6 float32 .*24 bytes"):
        load_pytorch(short)
    with zipfile.ZipFile(FIX / "transfer_views.pth") as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    pkl = next(n for n in members if n.endswith("data.pkl"))
    members[pkl] = members[pkl].replace(b"torch\nuint16\n", b"torch\nfloat8_e4m3fn\n")
    with zipfile.ZipFile(tmp_path / "f8.pth", "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    with pytest.raises(ValueError, match=r"tensor at extras/u16 has dtype torch.float8_e4m3fn"):
        load_pytorch(tmp_path / "f8.pth")


def test_truncated_files(tmp_path):
    for name in ("transfer_views.pth", "transfer_views_legacy.pth"):
        data = (FIX / name).read_bytes()
        (tmp_path / name).write_bytes(data[:len(data) - 10])
        with pytest.raises(ValueError, match=rf"{name}.*truncated"):
            load_pytorch(tmp_path / name)
    legacy = legacy_checkpoint(tmp_path / "count.pth", tensor_pickle(5, 0, (5,), (1,)), {"0": F32})
    with pytest.raises(ValueError, match=r"storage '0' holds 6 elements, but the pickle .* 5"):
        load_pytorch(legacy)


def test_zip_bomb_is_refused_before_inflating(tmp_path, monkeypatch):
    path = tmp_path / "bomb.pth"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", tensor_pickle(2**18, 0, (2**18,), (1,)))
        zf.writestr("archive/data/0", bytes(2**20))
    monkeypatch.setattr(serialization, "ALWAYS_ALLOWED_BYTES", 0)
    with pytest.raises(ValueError, match=r"bomb\.pth.*zip bomb"):
        load_pytorch(path)


def test_torchscript_and_other_files_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"TorchScript archive .*not supported"):
        load_pytorch(FIX / "transfer_torchscript.pt")
    with pytest.raises(ValueError, match=r"TorchScript"):
        load_pytorch(zip_checkpoint(tmp_path / "ts.pt", b"", extra=["constants.pkl"]))
    tg.save({"w": np.ones(2)}, tmp_path / "ours.npz")
    np.save(tmp_path / "a.npy", np.ones(2))
    save_safetensors({"w": np.ones(2)}, tmp_path / "w.safetensors")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("hello weights")
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"w": [1.0]}, protocol=2))
    (tmp_path / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(16))
    for name, match in [("ours.npz", r"zip archive without .*data\.pkl.*tg\.load"),
                        ("a.npy", r"NumPy \.npy"), ("w.safetensors", r"load_safetensors"),
                        ("empty", r"empty"), ("notes.txt", r"text, starting 'hello weights'"),
                        ("plain.pkl", r"pickle, but not a torch\.save file"),
                        ("model.h5", r"HDF5")]:
        with pytest.raises(ValueError, match=rf"{name}'.*{match}"):
            load_pytorch(tmp_path / name)
    # a plain pickle that calls os.system is refused like a checkpoint's
    (tmp_path / "evil.pkl").write_bytes(call("os", "system", text("touch x")))
    with pytest.raises(UnsafeCheckpointError, match=r"os\.system"):
        load_pytorch(tmp_path / "evil.pkl")
    with pytest.raises(FileNotFoundError):
        load_pytorch(tmp_path / "missing.pth")


def test_tiny_vgg_matches_pytorch():
    from tinygrad_edu.models import vgg
    x = np.random.RandomState(0).standard_normal((2, 1, 96, 96)).astype(np.float32)  # as the
    expected = np.load(FIX / "transfer_vgg11.npz")                      # fixture script's x()
    for make, name, out in [(vgg.vgg11, "transfer_vgg11.pth", "out"),
                            (vgg.vgg11_bn, "transfer_vgg11_bn.pth", "out_bn")]:
        model = make(num_classes=10, in_channels=1, width=1 / 32, pool_size=2, hidden=16,
                     dropout=0.5)
        missing, unexpected = model.load_state_dict(load_pytorch(FIX / name))
        assert list(missing) == list(unexpected) == []
        model.eval()
        with tg.no_grad():
            y = model(tg.Tensor(x)).data
        np.testing.assert_allclose(y, expected[out], rtol=1e-5, atol=1e-5)


# ---- safetensors --------------------------------------------------------------------------------
DTYPES = [np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8, np.uint8,
          np.uint16, np.uint32, np.uint64, np.bool_]


@st.composite
def tensor_dicts(draw):
    names = draw(st.lists(st.text(min_size=1, max_size=6).filter(lambda s: s != "__metadata__"),
                          min_size=0, max_size=4, unique=True))
    out = {}
    for name in names:
        dtype = np.dtype(draw(st.sampled_from(DTYPES)))
        if draw(st.booleans()) and dtype.itemsize > 1:
            dtype = dtype.newbyteorder(">")  # big-endian input: written little-endian
        shape = draw(tst.shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
        array = draw(hnp.arrays(dtype, shape))
        out[name] = array.T if draw(st.booleans()) else array  # non-contiguous input too
    return out


@given(tensor_dicts(), st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2))
def test_safetensors_round_trip(tmp_path_factory, tensors, metadata):
    path = tmp_path_factory.mktemp("st") / "t.safetensors"
    before = {k: (v.copy(), v.dtype, v.strides) for k, v in tensors.items()}
    save_safetensors(tensors, path, metadata=metadata)
    got, meta = load_safetensors(path, with_metadata=True)
    assert sorted(got) == sorted(tensors) and meta == metadata
    for k, (copy, dtype, strides) in before.items():
        assert got[k].dtype == dtype.newbyteorder("=") and got[k].shape == copy.shape
        np.testing.assert_array_equal(got[k], copy)
        assert tensors[k].dtype == dtype and tensors[k].strides == strides  # caller's untouched
        np.testing.assert_array_equal(tensors[k], copy)
    n = int.from_bytes(path.read_bytes()[:8], "little")
    assert n % 8 == 0 and os.listdir(path.parent) == ["t.safetensors"]


def test_safetensors_package_reads_our_files(tmp_path):
    safetensors = pytest.importorskip("safetensors")
    from safetensors.numpy import load_file
    tensors = {str(i): np.arange(6).reshape(2, 3).astype(d) for i, d in enumerate(DTYPES)}
    tensors["t"] = tg.Tensor(np.ones((2, 2), np.float32))
    save_safetensors(tensors, tmp_path / "w.safetensors", metadata={"epoch": "3"})
    theirs = load_file(str(tmp_path / "w.safetensors"))
    for k, v in tensors.items():
        want = v.data if isinstance(v, tg.Tensor) else v
        assert theirs[k].dtype == want.dtype
        np.testing.assert_array_equal(theirs[k], want)
    with safetensors.safe_open(str(tmp_path / "w.safetensors"), framework="np") as f:
        assert f.metadata() == {"epoch": "3"}


def raw_safetensors(path, header, buffer=b"", length=None):
    """A safetensors file with this header (a dict, or bytes as they are), length and buffer;
    ``header=None``: ``buffer`` is the whole file."""
    if header is None:
        path.write_bytes(buffer)
        return path
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(head) if length is None else length) + head + buffer)
    return path


def test_bfloat16_safetensors_load_as_float32(tmp_path):
    values = np.array([1.0, -3.5, 2.0**-10], np.float32)
    bits = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    path = raw_safetensors(tmp_path / "b.safetensors", {
        "b": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}, bits)
    got = load_safetensors(path)["b"]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, values)


def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


@pytest.mark.parametrize("header, buffer, length, match", [
    (None, b"\x05\x00", None, r"2 bytes, fewer than the 8"),
    ({"a": entry()}, bytes(8), 10**9, r"header length 1000000000 is beyond"),
    (b"{not json", b"", None, r"not valid UTF-8 JSON"),
    ([1, 2], b"", None, r"JSON list, not an object"),
    (b'{"a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}, "a": 1}', b"", None,
     r"duplicate keys \['a'\]"),
    ({"a": entry("F8_E4M3")}, bytes(8), None, r"tensor 'a' has unknown dtype 'F8_E4M3'"),
    ({"a": entry(shape=(-2,))}, bytes(8), None, r"tensor 'a' has shape \[-2\]"),
    ({"a": {"dtype": "F32", "shape": [2]}}, bytes(8), None, r"tensor 'a': its entry"),
    ({"a": entry(offsets=(8, 0))}, bytes(8), None, r"tensor 'a' has data_offsets \[8, 0\]"),
    ({"a": entry(shape=(3,))}, bytes(8), None, r"tensor 'a' .*needs 12 bytes.* span 8"),
    ({"a": entry(offsets=(8, 16))}, bytes(8), None, r"'a' begins at byte 8 .*not at 0"),
    ({"a": entry(), "b": entry(offsets=(4, 12))}, bytes(12), None, r"'b' begins at byte 4"),
    ({"a": entry()}, bytes(4), None, r"end at byte 8 of the buffer, but it holds 4"),
    ({"__metadata__": {"k": 1}}, b"", None, r"__metadata__ is not an object of strings"),
    ({"a": entry("BOOL", offsets=(0, 2))}, b"\x01\x02", None, r"'a' \(BOOL\) holds bytes"),
])
def test_bad_safetensors_are_refused(tmp_path, header, buffer, length, match):
    path = raw_safetensors(tmp_path / "bad.safetensors", header, buffer, length)
    with pytest.raises(ValueError, match=rf"bad\.safetensors.*{match}"):
        load_safetensors(path)


@pytest.mark.parametrize("tensors, metadata, match", [
    ({"a": np.ones(2, np.complex64)}, None, r"tensor 'a' has dtype complex64"),
    ({"a": np.ones(2), "b": np.array(["x"])}, None, r"tensor 'b' has dtype <U1"),
    ({"a": [1.0, 2.0]}, None, r"tensor 'a' is a list"),
    ({3: np.ones(2)}, None, r"tensor name 3"),
    ({"__metadata__": np.ones(2)}, None, r"'__metadata__'"),
    ({"a": np.ones(2)}, {"epoch": 3}, r"metadata must be a dict str -> str"),
    ([np.ones(2)], None, r"must be a dict name -> array"),
])
def test_bad_saves_change_no_file(tmp_path, tensors, metadata, match):
    old = tmp_path / "old.safetensors"
    save_safetensors({"w": np.ones(3, np.float32)}, old)
    before = old.read_bytes()
    with pytest.raises(TypeError, match=match):
        save_safetensors(tensors, old, metadata=metadata)
    with pytest.raises(TypeError, match=match):
        save_safetensors(tensors, tmp_path / "new.safetensors", metadata=metadata)
    assert old.read_bytes() == before and os.listdir(tmp_path) == ["old.safetensors"]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    save_safetensors({"w": np.ones(3, np.float32)}, path)
    before = path.read_bytes()
    (tmp_path / ".w.safetensors.abcd1234.tmp").write_bytes(b"left by a killed save")

    def fail(fd):
        raise OSError("disk full")
    monkeypatch.setattr(interop.os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        save_safetensors({"w": np.zeros(5, np.float64)}, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["w.safetensors"]
