"""MNIST loading: the IDX format, corrupt files, where files are found, downloading, real data.

No test touches the network: ``_urlopen`` is replaced by a function serving local bytes.
"""
import gzip
import hashlib
import importlib
import io
import urllib.error

import numpy as np
import pytest

from tinygrad_edu.data import (MNISTDownloadError, MNISTFormatError, find_mnist_dir,
                                   load_mnist, mnist_split, read_idx)

M = importlib.import_module("tinygrad_edu.data.mnist")
NAMES = [name for name, _ in M.FILES.values()]
REAL_DIR = M.REPO_DIR
HAVE_REAL = all((REAL_DIR / name).is_file() for name in NAMES)
needs_real = pytest.mark.skipif(not HAVE_REAL, reason=f"MNIST files not in {REAL_DIR}")


def idx_bytes(array, magic):
    """Uncompressed IDX bytes: the magic, one big-endian uint32 per dimension, the data."""
    array = np.asarray(array, np.uint8)
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_fake_mnist(directory, fill=0, n_train=6, n_test=3):
    """Four small, valid MNIST files whose pixels all equal ``fill``; returns the folder."""
    directory.mkdir(parents=True, exist_ok=True)
    for part, n in (("train", n_train), ("test", n_test)):
        images = np.full((n, 28, 28), fill, np.uint8)
        labels = np.arange(n) % 10
        (directory / M.FILES[part + "_images"][0]).write_bytes(
            gzip.compress(idx_bytes(images, M.IMAGE_MAGIC)))
        (directory / M.FILES[part + "_labels"][0]).write_bytes(
            gzip.compress(idx_bytes(labels, M.LABEL_MAGIC)))
    return directory


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No network, no user environment: empty env var, repo folder and cache."""
    def no_network(url, timeout=None):
        raise AssertionError(f"a test tried to reach the network: {url}")
    monkeypatch.setattr(M, "_urlopen", no_network)
    monkeypatch.delenv(M.ENV_VAR, raising=False)
    monkeypatch.setattr(M, "REPO_DIR", tmp_path / "repo" / "data" / "mnist")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


# --- the IDX format -----------------------------------------------------------------------------

def test_parse_idx_header_and_data(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(images, M.IMAGE_MAGIC)
    assert raw[:4] == b"\x00\x00\x08\x03" and int.from_bytes(raw[:4], "big") == 2051
    np.testing.assert_array_equal(M.parse_idx(raw, magic=2051), images)
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(path), images)
    plain = tmp_path / "x-idx3-ubyte"  # uncompressed files are read too
    plain.write_bytes(raw)
    np.testing.assert_array_equal(read_idx(plain, magic=2051), images)
    labels = M.parse_idx(idx_bytes([7, 1, 3], M.LABEL_MAGIC), magic=2049)
    assert labels.shape == (3,) and labels.tolist() == [7, 1, 3]


def test_uncompressed_files_are_found(tmp_path):
    folder = write_fake_mnist(tmp_path / "plain", fill=9)
    for name in NAMES:
        (folder / name[:-3]).write_bytes(gzip.decompress((folder / name).read_bytes()))
        (folder / name).unlink()
    X, _ = mnist_split("test", root=folder, download=False)
    assert np.all(X == np.float32(9 / 255))


def _corrupt(kind):
    """(file to damage, new uncompressed or raw bytes, whether to gzip them, message fragment)."""
    images = np.zeros((6, 28, 28), np.uint8)
    labels = np.arange(6) % 10
    good_images, good_labels = idx_bytes(images, 2051), idx_bytes(labels, 2049)
    gz_images = gzip.compress(good_images)
    train_images, train_labels = NAMES[0], NAMES[1]
    return {
        "bad gzip": (train_images, b"this is not gzip data", False, "not a valid gzip"),
        "cut gzip": (train_images, gz_images[:len(gz_images) // 2], False, "not a valid gzip"),
        "wrong magic": (train_labels, good_images, True, "magic number 2051, expected 2049"),
        "not idx": (train_images, b"\x01\x02\x03\x04" + good_images[4:], True, "magic number"),
        "short header": (train_images, good_images[:10], True, "truncated header"),
        "short data": (train_images, good_images[:-1], True, "truncated"),
        "trailing data": (train_labels, good_labels + b"\x00", True, "trailing bytes"),
        "count mismatch": (train_labels, idx_bytes(labels[:5], 2049), True, "holds (5,) labels"),
        "not 28x28": (train_images, idx_bytes(np.zeros((6, 27, 28)), 2051), True, "(27, 28)"),
        "label > 9": (train_labels, idx_bytes([0, 1, 2, 3, 4, 12], 2049), True, "label 12"),
    }[kind]


@pytest.mark.parametrize("kind", ["bad gzip", "cut gzip", "wrong magic", "not idx", "short header",
                                  "short data", "trailing data", "count mismatch", "not 28x28",
                                  "label > 9"])
def test_corrupt_files_name_the_file(tmp_path, kind):
    folder = write_fake_mnist(tmp_path / "mnist")
    name, data, compress, fragment = _corrupt(kind)
    (folder / name).write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(MNISTFormatError) as info:
        load_mnist(folder, validation_size=1, download=False)
    assert isinstance(info.value, ValueError)
    assert name in str(info.value) and fragment in str(info.value)


def test_replaced_file_is_read_again(tmp_path):
    """The in-memory cache is keyed by size and mtime, not just the path."""
    folder = write_fake_mnist(tmp_path / "mnist", fill=1)
    assert mnist_split("test", root=folder, download=False).X.max() == np.float32(1 / 255)
    write_fake_mnist(folder, fill=2, n_test=4)
    X, y = mnist_split("test", root=folder, download=False)
    assert len(X) == 4 and X.max() == np.float32(2 / 255)


# --- where the files come from ------------------------------------------------------------------

def test_search_order_root_env_repo_cache(tmp_path, monkeypatch):
    places = {"root": tmp_path / "root", "env": tmp_path / "env" / "mnist",
              "repo": M.REPO_DIR, "cache": tmp_path / "xdg" / "tinygrad_edu" / "mnist"}
    assert M.cache_dir() == places["cache"]
    for fill, folder in enumerate(places.values(), start=1):
        write_fake_mnist(folder, fill=fill)
    monkeypatch.setenv(M.ENV_VAR, str(tmp_path / "env"))  # holds mnist/, not the files
    for fill, (where, folder) in enumerate(places.items(), start=1):
        root = places["root"] if where == "root" else None
        assert find_mnist_dir(root, download=False) == folder
        X, _ = mnist_split("test", root=root, download=False)
        assert np.all(X == np.float32(fill / 255)), where
        for name in NAMES[:1]:  # an incomplete folder is skipped as a whole
            (folder / name).unlink()
    with pytest.raises(FileNotFoundError) as info:
        find_mnist_dir(download=False)
    assert str(places["cache"]) in str(info.value)


def test_env_var_may_hold_the_files_directly(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path / "direct", fill=5)
    write_fake_mnist(M.REPO_DIR, fill=6)
    monkeypatch.setenv(M.ENV_VAR, str(tmp_path / "direct"))
    assert find_mnist_dir() == tmp_path / "direct"


def test_explicit_root_is_the_only_place_searched(tmp_path, monkeypatch):
    write_fake_mnist(M.REPO_DIR)
    monkeypatch.setenv(M.ENV_VAR, str(M.REPO_DIR))
    with pytest.raises(FileNotFoundError, match="root"):
        load_mnist(tmp_path / "empty", download=False)


# --- downloading --------------------------------------------------------------------------------

def serve(files, fail=()):
    """A stand-in for urlopen serving ``files[name]``; URLs starting with a prefix in ``fail``
    raise URLError. Records the URLs asked for."""
    asked = []

    def urlopen(url, timeout=None):
        asked.append(url)
        if url.startswith(tuple(fail)):
            raise urllib.error.URLError("no route to host")
        return io.BytesIO(files[url.rsplit("/", 1)[1]])
    urlopen.asked = asked
    return urlopen


@needs_real
def test_download_verifies_and_writes_atomically(tmp_path, monkeypatch):
    real = {name: (REAL_DIR / name).read_bytes() for name in NAMES}
    opener = serve(real, fail=[M.MIRRORS[0]])  # the first mirror is down, the second works
    monkeypatch.setattr(M, "_urlopen", opener)
    folder = find_mnist_dir()  # nothing anywhere: downloads into the cache
    assert folder == M.cache_dir()
    assert sorted(p.name for p in folder.iterdir()) == sorted(NAMES)  # no temporary left over
    for name, md5 in M.FILES.values():
        assert (folder / name).read_bytes() == real[name]
        assert hashlib.md5(gzip.decompress(real[name])).hexdigest() == md5
    assert opener.asked == [m + name for name in NAMES for m in M.MIRRORS]
    opener.asked.clear()
    assert mnist_split("test").X.shape == (10000, 784) and opener.asked == []  # now found in the cache


def test_download_rejects_bad_checksums(tmp_path, monkeypatch):
    fake = {name: gzip.compress(b"not mnist") for name in NAMES}
    monkeypatch.setattr(M, "_urlopen", serve(fake))
    with pytest.raises(MNISTDownloadError) as info:
        load_mnist(tmp_path / "target")
    message = str(info.value)
    assert isinstance(info.value, OSError)
    assert NAMES[0] in message and "MD5" in message and M.FILES["train_images"][1] in message
    assert all(m + NAMES[0] in message for m in M.MIRRORS)
    assert list((tmp_path / "target").iterdir()) == []  # nothing kept, not even a temp file


def test_offline_error_says_where_to_put_the_files(monkeypatch):
    monkeypatch.setattr(M, "_urlopen", serve({}, fail=["http"]))
    with pytest.raises(OSError) as info:
        mnist_split()
    message = str(info.value)
    assert "no route to host" in message and str(M.cache_dir()) in message
    assert M.ENV_VAR in message and all(name in message for name in NAMES)


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    payload = gzip.compress(b"x")
    monkeypatch.setitem(M.FILES, "train_images", (NAMES[0], hashlib.md5(b"x").hexdigest()))
    monkeypatch.setattr(M, "_urlopen", serve({NAMES[0]: payload}))

    def crash(src, dst):
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C between write and rename
    monkeypatch.setattr(M.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        M.download_mnist(tmp_path / "target")
    assert list((tmp_path / "target").iterdir()) == []


# --- the real data ------------------------------------------------------------------------------

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@needs_real
def test_real_mnist_shapes_dtypes_ranges_and_counts():
    data = load_mnist(REAL_DIR, download=False)
    (X, y), (Xv, yv), (Xt, yt) = data
    assert X.shape == (50000, 784) and Xv.shape == (10000, 784) and Xt.shape == (10000, 784)
    for images, labels in data:
        assert images.dtype == np.float32 and labels.dtype == np.int64
        assert images.min() == 0.0 and images.max() == 1.0
    assert 0.12 < X.mean() < 0.14  # the usual mean intensity, about 0.1307
    np.testing.assert_array_equal(np.bincount(np.concatenate([y, yv])), TRAIN_COUNTS)
    np.testing.assert_array_equal(np.bincount(yt), TEST_COUNTS)
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert yt[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


@needs_real
def test_real_mnist_split_and_shapes_agree():
    full = load_mnist(REAL_DIR, validation_size=0, download=False)
    assert full.valid is None and full.train.X.shape == (60000, 784)
    valid = mnist_split("valid", root=REAL_DIR, flatten=False, download=False)
    assert valid.X.shape == (10000, 1, 28, 28)
    np.testing.assert_array_equal(valid.X.reshape(10000, 784), full.train.X[50000:])
    np.testing.assert_array_equal(valid.y, full.train.y[50000:])
    train = mnist_split("train", root=REAL_DIR, download=False)
    np.testing.assert_array_equal(train.y, full.train.y[:50000])
    train.X[:] = -1.0  # fresh arrays each call: the in-memory cache is not affected
    assert mnist_split("train", root=REAL_DIR, download=False).X.min() == 0.0


def test_bad_arguments(tmp_path):
    folder = write_fake_mnist(tmp_path / "mnist")
    with pytest.raises(ValueError, match="split"):
        mnist_split("validation", root=folder)
    with pytest.raises(ValueError, match="validation_size"):
        load_mnist(folder, validation_size=6)
    with pytest.raises(ValueError, match="validation_size > 0"):
        mnist_split("valid", root=folder, validation_size=0)
