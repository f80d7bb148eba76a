"""tg.save / tg.load safety: stale temporary files, symbolic links, zip bombs, no pickle."""
import io
import os
import pathlib
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import serialization

ROOT = pathlib.Path(tg.__file__).resolve().parent.parent


def temps(directory):
    return sorted(p.name for p in pathlib.Path(directory).iterdir() if p.name.endswith(".tmp"))


# ---- temporary files of killed saves ------------------------------------------------------------
KILLED_SAVE = """
import sys, time
import numpy as np
from tinygrad_edu import serialization
real = serialization._write_array
def stuck(zf, name, array):  # write one array, then hang until killed
    real(zf, name, array)
    print("writing", flush=True)
    time.sleep(60)
serialization._write_array = stuck
serialization.save({"w": np.ones(100000)}, sys.argv[1])
"""


def test_a_save_removes_the_temporary_files_of_killed_saves(tmp_path):
    path = tmp_path / "ckpt.npz"
    tg.save({"epoch": 1}, path)
    before = path.read_bytes()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for kill in range(3):  # kill -9 in the middle of writing, as a crash or an OOM killer would
        proc = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(path)], env=env,
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline() == "writing\n"
        finally:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        assert path.read_bytes() == before  # the checkpoint is untouched
        stale = temps(tmp_path)  # each save removed the one before it: never more than one
        assert len(stale) == 1 and stale[0].startswith(".ckpt.npz."), (kill, stale)
        assert (tmp_path / stale[0]).stat().st_size > 100000 * 8
    tg.save({"epoch": 2}, path)
    assert temps(tmp_path) == [] and tg.load(path) == {"epoch": 2}


def test_only_the_targets_own_temporary_names_are_removed(tmp_path):
    path = tmp_path / "ckpt.npz"
    ours = [".ckpt.npz.0a1b2c3d.tmp",   # this version's names: 8 hex digits
            ".ckpt.npz.k_9zq0x1.tmp"]   # the tempfile module's, from earlier versions
    others = [".ckpt.npz.a.0a1b2c3d.tmp",  # a save to "ckpt.npz.a"
              ".ckpt.npz.notes.tmp", ".ckpt.npz.0a1b2c3d9.tmp", "ckpt.npz.0a1b2c3d.tmp",
              ".other.0a1b2c3d.tmp", ".ckpt.npz.0A1B2C3D.tmp"]
    for name in ours + others:
        (tmp_path / name).write_bytes(b"partial checkpoint")
    tg.save([1], path)
    assert temps(tmp_path) == sorted(others)
    assert tg.load(path) == [1]


def test_at_most_one_temporary_file_exists_while_saving(tmp_path, monkeypatch):
    path = tmp_path / "ckpt"
    (tmp_path / ".ckpt.deadbeef.tmp").write_bytes(b"stale")
    seen, real = [], serialization._write_array

    def spy(zf, name, array):
        seen.append(temps(tmp_path))
        real(zf, name, array)

    monkeypatch.setattr(serialization, "_write_array", spy)
    tg.save({"a": np.ones(3), "b": np.zeros(2)}, path)
    assert [len(s) for s in seen] == [1, 1] and seen[0][0] != ".ckpt.deadbeef.tmp"
    assert temps(tmp_path) == []


# ---- symbolic links -------------------------------------------------------------------------------
def test_saving_through_a_symbolic_link_writes_its_target(tmp_path):
    real_dir, link_dir = tmp_path / "runs", tmp_path / "latest"
    real_dir.mkdir()
    link_dir.mkdir()
    target = real_dir / "ckpt-7.npz"
    tg.save({"step": 6}, target)
    os.chmod(target, 0o600)
    link = link_dir / "ckpt.npz"
    link.symlink_to(os.path.relpath(target, link_dir))  # a relative link
    chain = tmp_path / "chain.npz"
    chain.symlink_to(link)  # a link to the link
    (link_dir / ".ckpt.npz.0a1b2c3d.tmp").write_bytes(b"stale, beside the link")
    for via, step in ((link, 7), (chain, 8)):
        tg.save({"step": step}, via)
        assert link.is_symlink() and chain.is_symlink()
        assert os.readlink(link) == os.path.relpath(target, link_dir)
        assert tg.load(target) == {"step": step} and tg.load(via) == {"step": step}
        assert os.stat(target).st_mode & 0o777 == 0o600
        assert temps(real_dir) == temps(link_dir) == temps(tmp_path) == []


def test_a_dangling_link_gets_its_target_created_and_a_loop_is_an_error(tmp_path):
    link = tmp_path / "ckpt"
    link.symlink_to(tmp_path / "new.npz")
    tg.save([1], link)
    assert link.is_symlink() and tg.load(tmp_path / "new.npz") == [1]
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(OSError, match="symbolic links"):
        tg.save([1], tmp_path / "a")
    assert (tmp_path / "a").is_symlink() and temps(tmp_path) == []


# ---- zip bombs and members that lie about their size ----------------------------------------------
def npy_header(shape, descr="<f8"):
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False,
                                              "shape": shape})
    return f.getvalue()


def zip_bomb(path, megabytes=16):
    """One float64 zeros member of ``megabytes`` MB, deflated at level 9 (~1000:1)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("zeros.npy", npy_header((megabytes * 2**17,)) + bytes(megabytes * 2**20))
    return path


def test_a_zip_bomb_is_refused_before_anything_is_inflated(tmp_path, monkeypatch):
    bomb = zip_bomb(tmp_path / "bomb.npz")
    assert bomb.stat().st_size < 2**20 // 16  # 16 MB in under 64 KB
    monkeypatch.setattr(serialization, "ALWAYS_ALLOWED_BYTES", 2**20)  # keep the test small

    def no_reading(*args, **kwargs):
        raise AssertionError("a member was opened")

    with monkeypatch.context() as m:
        m.setattr(zipfile.ZipFile, "open", no_reading)
        with pytest.raises(ValueError, match=r"refusing checkpoint .*'zeros.npy'.*zip bomb"):
            tg.load(bomb)
    monkeypatch.setattr(serialization, "MAX_COMPRESSION_RATIO", 2000)  # deflate's limit is ~1032
    assert tg.load(bomb)["zeros"].shape == (16 * 2**17,)


def test_real_compressed_arrays_stay_within_the_default_limits(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"w": rng.standard_normal((300, 300)).astype(np.float32),
              "b": np.zeros(300, np.float32), "steps": np.arange(10)}
    np.savez_compressed(tmp_path / "c.npz", **arrays)
    loaded = tg.load(tmp_path / "c.npz")
    for k, v in arrays.items():
        np.testing.assert_array_equal(loaded[k], v)


@pytest.mark.parametrize("shape, extra", [
    ((10**12,), 64),   # a header that asks for 8 TB: refused before allocating it
    ((4,), 32 + 1000),  # more bytes than the array needs
    ((4,), 16),         # fewer
], ids=["8TB", "more", "fewer"])
def test_a_member_whose_size_disagrees_with_its_header_is_refused(tmp_path, shape, extra):
    path = tmp_path / "lying.npz"
    header = npy_header(shape)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x.npy", header + bytes(extra))
    needs = len(header) + 8 * shape[0]
    with pytest.raises(ValueError, match=rf"'x.npy' declares {len(header) + extra} bytes, but "
                                         rf"its .npy header \(shape .*\) needs {needs}"):
        tg.load(path)


# ---- no pickle, no half-written files ------------------------------------------------------------
class Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


@pytest.mark.parametrize("layout", ["npz", "checkpoint"])
def test_loading_never_unpickles(tmp_path, layout):
    marker, path = tmp_path / "code-ran", tmp_path / "evil.npz"
    evil = np.array([Payload(marker)], dtype=object)
    if layout == "npz":
        np.savez(path, evil=evil)  # np.savez pickles object arrays
    else:
        tg.save({"w": np.zeros(2)}, path)
        with zipfile.ZipFile(path, "a") as zf, zf.open("w.npy~1", "w") as f:
            np.lib.format.write_array(f, evil, allow_pickle=True)
        with zipfile.ZipFile(path) as zf:  # point the structure at the pickled member
            members = {n: zf.read(n) for n in zf.namelist()}
        members["structure.json"] = members["structure.json"].replace(b'"w.npy"', b'"w.npy~1"')
        with zipfile.ZipFile(path, "w") as zf:
            for n, b in members.items():
                zf.writestr(n, b)
    with pytest.raises(ValueError, match="Python objects .*pickle"):
        tg.load(path)
    assert not marker.exists()
    with np.load(path, allow_pickle=True) as npz:  # the payload is real: pickle would run it
        npz[npz.files[-1]]
    assert marker.exists()


def test_an_interrupted_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "ckpt"
    tg.save({"w": np.zeros(3)}, path)
    before = path.read_bytes()

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(serialization.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tg.save({"w": np.ones(3)}, path)
    assert path.read_bytes() == before and temps(tmp_path) == []
