"""tg.save / tg.load: round trips, types and dtypes, atomic writes, corrupt files, devices."""
import os
import zipfile

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import nn, optim, serialization
from tinygrad_edu.backend import cuda_available, device_of


def same(a, b):
    """Deep equality that also checks types and dtypes."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert type(k) is type(next(x for x in b if x == k))
            same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            same(x, y)
    elif isinstance(a, tg.Tensor):
        assert a.requires_grad == b.requires_grad
        same(a.data, b.data)
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


NESTED = {
    "model": {"0.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
              "0.bias": np.zeros(2, dtype=np.float64),
              "1.num_batches_tracked": np.array(5, dtype=np.int64)},
    "optimizer": {"state": {0: {"step": 3, "exp_avg": np.ones(3, np.float16)}, 1: {}},
                  "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "nesterov": False,
                                    "params": [0, 1], "name": None}]},
    "masks": [np.array([True, False]), np.array([], dtype=np.int32), np.uint8(7)],
    "floats": (float("inf"), -float("inf"), float("nan"), 1e-300, 0.1),
    "tensor": tg.Tensor([1.0, 2.0], requires_grad=True),
    "numbers": [1, -2**70, 2.5, True, "text/with odd*chars", ""],
    (1, "a"): "tuple key", 2.5: "float key", None: "none key", "": {"": np.ones(1)},
}


def test_nested_round_trip_keeps_types_and_dtypes(tmp_path):
    path = tmp_path / "ckpt.npz"
    tg.save(NESTED, path)
    same(tg.load(path), NESTED)
    same(tg.load(str(path)), NESTED)
    assert list(tmp_path.iterdir()) == [path]  # no temporary files left


def test_the_file_is_an_npz_that_numpy_reads_without_pickle(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    tg.save(model.state_dict(), tmp_path / "m")  # no suffix is added
    with np.load(tmp_path / "m", allow_pickle=False) as npz:
        assert npz.files[0] == "structure.json"
        assert npz.files[1:] == list(model.state_dict())
        np.testing.assert_array_equal(npz["0.weight"], model[0].weight.data)
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.ones(2), b=np.arange(3))  # a plain npz loads as a flat dict
    same(tg.load(plain), {"a": np.ones(2), "b": np.arange(3)})


def test_model_and_optimizer_checkpoint_resume(tmp_path):
    def make():
        tg.manual_seed(0)
        m = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2))
        return m, optim.Adam(m.parameters(), lr=0.01)

    def step(m, opt, seed):
        x = tg.Tensor(np.random.default_rng(seed).standard_normal((8, 4)).astype(np.float32))
        opt.zero_grad()
        m(x).sum().backward()
        opt.step()

    m, opt = make()
    for s in range(5):
        step(m, opt, s)
    want = m.state_dict()
    m, opt = make()
    for s in range(3):
        step(m, opt, s)
    tg.save({"model": m.state_dict(), "optimizer": opt.state_dict()}, tmp_path / "ckpt")
    m, opt = make()
    state = tg.load(tmp_path / "ckpt")
    m.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    for s in range(3, 5):
        step(m, opt, s)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, want[k], err_msg=k)


def test_a_crash_mid_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    tg.save({"w": np.zeros(3)}, path)
    before = path.read_bytes()
    real, calls = serialization._write_array, []

    def crash_on_second(zf, name, array):
        calls.append(name)
        if len(calls) == 2:
            raise OSError("disk full")
        real(zf, name, array)

    monkeypatch.setattr(serialization, "_write_array", crash_on_second)
    with pytest.raises(OSError, match="disk full"):
        tg.save({"w": np.ones(3), "v": np.ones(1000), "u": np.ones(2)}, path)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]
    monkeypatch.setattr(serialization, "_write_array", real)

    def interrupted(*args):  # KeyboardInterrupt between the write and the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(serialization.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tg.save({"w": np.ones(3)}, path)
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]


def test_unsupported_objects_fail_before_touching_the_disk(tmp_path):
    path = tmp_path / "ckpt"
    with pytest.raises(TypeError, match="cannot save a Sequential .*state_dict"):
        tg.save({"model": nn.Sequential()}, path)
    with pytest.raises(TypeError, match="cannot save a set"):
        tg.save([{1, 2}], path)
    with pytest.raises(TypeError, match="dtype object"):
        tg.save({"a": np.array([None, 1], dtype=object)}, path)
    with pytest.raises(TypeError, match="dict key"):
        tg.save({frozenset(): 1}, path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip", "bad-json"])
def test_corrupt_files_give_a_clear_error_naming_the_file(tmp_path, damage):
    path = tmp_path / "ckpt.npz"
    tg.save({"w": np.arange(1000.0)}, path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[:len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    elif damage == "flip":  # a byte inside the array: the zip CRC check catches it
        i = data.index(b"\x00\x00\x00\x00\x00\x00\xf0?")  # 1.0 as float64
        path.write_bytes(data[:i] + b"\x11" + data[i + 1:])
    else:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("structure.json", "{not json")
    with pytest.raises(ValueError, match=f"cannot read checkpoint '{path}'"):
        tg.load(path)


def test_missing_file_and_bad_device(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        tg.load(tmp_path / "nothing.npz")
    tg.save([1], tmp_path / "x")
    with pytest.raises(ValueError, match="unknown device"):
        tg.load(tmp_path / "x", device="tpu")


def test_saving_over_an_existing_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "ckpt"
    tg.save([1], path)
    assert os.stat(path).st_mode & 0o777 == 0o644
    os.chmod(path, 0o600)
    tg.save([2], path)
    assert os.stat(path).st_mode & 0o777 == 0o600 and tg.load(path) == [2]


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA GPU")
def test_gpu_arrays_are_saved_from_the_host_and_loaded_onto_a_device(tmp_path):
    import cupy
    obj = {"a": cupy.arange(4, dtype=cupy.float32), "t": tg.ones(2, device="cuda")}
    tg.save(obj, tmp_path / "g")
    on_cpu = tg.load(tmp_path / "g")
    assert isinstance(on_cpu["a"], np.ndarray) and on_cpu["t"].device == "cpu"
    np.testing.assert_array_equal(on_cpu["a"], np.arange(4))
    on_gpu = tg.load(tmp_path / "g", device="cuda")
    assert device_of(on_gpu["a"]) == "cuda" and on_gpu["t"].device == "cuda"
