"""MNIST: reading the IDX files, finding them on disk, downloading them once.

    from tinygrad_edu.data import load_mnist, mnist_split
    data = load_mnist()              # the tutorials' split: 50,000 train, 10,000 valid, 10,000 test
    X, y = data.train                # X: (50000, 784) float32 in [0, 1];  y: (50000,) int64
    X_test, y_test = mnist_split("test", flatten=False)   # X_test: (10000, 1, 28, 28)

The IDX format (the one MNIST is distributed in) is a big-endian header followed by raw bytes:

    bytes 0-1   zero
    byte 2      element type: 0x08 = unsigned byte (the only type MNIST uses)
    byte 3      number of dimensions d: 3 for images, 1 for labels
    then        d big-endian uint32 sizes: (count, rows, cols) or (count,)
    then        count * rows * cols bytes, row-major

Read as one big-endian integer, the first four bytes are the "magic number": 0x00000803 = 2051 for
image files, 0x00000801 = 2049 for label files. The header fixes the file's length exactly, so a
truncated download is caught by comparing the two.

Where the files come from (the first folder holding all four wins):

1. ``root``, when given: that folder or its ``mnist/`` subfolder, and nothing else;
2. the folder named by the environment variable ``TINYGRAD_EDU_DATA``, or its ``mnist/``;
3. the repository's own ``data/mnist/`` (present in a source checkout);
4. the user cache ``$XDG_CACHE_HOME/tinygrad_edu/mnist`` (``~/.cache/tinygrad_edu/mnist``);
5. otherwise, with ``download=True``, the missing files are fetched from :data:`MIRRORS` into
   ``root`` (when given) or the cache. A file is kept only if the MD5 of its *uncompressed* bytes
   matches :data:`FILES` (gzip wrappers differ between copies, the content does not) and it is
   written to a temporary file first and renamed, so an interrupted run never leaves half a file.

Decoded files are kept in memory (keyed by path, size and modification time), so loading MNIST a
second time only converts bytes to floats.
"""
import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.request
import zlib
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple, Optional, Tuple

import numpy as np

# Two long-lived public copies of the original files.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",       # the copy torchvision reads
    "https://storage.googleapis.com/cvdf-datasets/mnist/",  # the copy TensorFlow reads
)

# role -> (file name, MD5 of the uncompressed content)
FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "6bbc9ace898e44ae57da46a324031adb"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "a25bea736e30d166cdddb491f175f624"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "2646ac647ad5339dbf082846283269ea"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "27ae3e4e09519cfbb04c329615203637"),
}
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
_KIND = {IMAGE_MAGIC: "images", LABEL_MAGIC: "labels"}
ENV_VAR = "TINYGRAD_EDU_DATA"
# <checkout>/tinygrad_edu/data/mnist.py -> <checkout>/data/mnist (absent in an installed wheel)
REPO_DIR = Path(__file__).resolve().parents[2] / "data" / "mnist"
SPLITS = ("train", "valid", "test")

_urlopen = urllib.request.urlopen  # the one door to the network; tests replace it


class MNISTFormatError(ValueError):
    """A file that is not a valid MNIST IDX file: bad gzip, wrong magic, wrong length, ..."""


class MNISTDownloadError(OSError):
    """No mirror gave a file with the right checksum (offline, blocked or corrupt)."""


class Split(NamedTuple):
    """Images ``X`` (float32 in [0, 1]) and labels ``y`` (int64 in 0..9)."""
    X: np.ndarray
    y: np.ndarray


class MNIST(NamedTuple):
    """The three splits; ``valid`` is None when ``validation_size=0``."""
    train: Split
    valid: Optional[Split]
    test: Split


# ---------------------------------------------------------------------------------------------
# Reading IDX files

def parse_idx(raw: bytes, name: str = "<bytes>", magic: Optional[int] = None) -> np.ndarray:
    """The uint8 array stored in the uncompressed IDX bytes ``raw`` (see the module docstring).

    ``magic`` (2051 or 2049), when given, must match the header. The header's sizes must account
    for the length of ``raw`` exactly. Errors are :class:`MNISTFormatError` naming ``name``.
    """
    if len(raw) < 4:
        raise MNISTFormatError(f"{name}: {len(raw)} bytes is too short for an IDX header")
    found = int.from_bytes(raw[:4], "big")
    if magic is not None and found != magic:
        raise MNISTFormatError(f"{name}: magic number {found}, expected {magic} "
                               f"(an MNIST {_KIND.get(magic, 'IDX')} file)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise MNISTFormatError(f"{name}: magic number {found} is not an unsigned-byte IDX file")
    ndim = raw[3]
    start = 4 + 4 * ndim
    if len(raw) < start:
        raise MNISTFormatError(f"{name}: truncated header ({len(raw)} bytes, need {start})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = start + int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "trailing bytes after the data"
        raise MNISTFormatError(f"{name}: {what}: header says shape {shape}, i.e. {expected} "
                               f"bytes, but the file holds {len(raw)}")
    return np.frombuffer(raw, np.uint8, offset=start).reshape(shape)  # read-only view


def read_idx(path, magic: Optional[int] = None) -> np.ndarray:
    """The array in the IDX file ``path``, gunzipped first when the name ends in ``.gz``.

    Raises :class:`MNISTFormatError` (a ValueError) naming the file when it is not valid gzip or
    not a consistent IDX file; see :func:`parse_idx`.
    """
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
            raise MNISTFormatError(f"{path}: not a valid gzip file ({e})") from e
    return parse_idx(raw, str(path), magic)


@lru_cache(maxsize=8)
def _read_cached(path: str, size: int, mtime_ns: int, magic: int) -> np.ndarray:
    # size and mtime are only part of the key: a replaced file is read again
    return read_idx(path, magic)


def _read(path: Path, magic: int) -> np.ndarray:
    st = path.stat()
    return _read_cached(str(path), st.st_size, st.st_mtime_ns, magic)


# ---------------------------------------------------------------------------------------------
# Finding and downloading the files

def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/tinygrad_edu/mnist``, with ``~/.cache`` when the variable is unset."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tinygrad_edu" / "mnist"


def _file(directory: Path, name: str) -> Optional[Path]:
    """``directory/name``, or its gunzipped twin (``name`` without ``.gz``), if either exists."""
    for candidate in (directory / name, directory / name[:-len(".gz")]):
        if candidate.is_file():
            return candidate
    return None


def _complete(directory: Path) -> bool:
    return all(_file(directory, name) for name, _ in FILES.values())


def search_path(root=None) -> list:
    """The folders :func:`find_mnist_dir` looks in, in order (see the module docstring)."""
    if root is not None:
        return [Path(root), Path(root) / "mnist"]
    env = os.environ.get(ENV_VAR)
    dirs = [Path(env), Path(env) / "mnist"] if env else []
    return dirs + [REPO_DIR, cache_dir()]


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename: readers see all or nothing."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the data is not
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _where_to_put_them(directory: Path) -> str:
    names = ", ".join(name for name, _ in FILES.values())
    return (f"Without network access, copy the four files ({names}) into {directory}, or into a "
            f"folder named by ${ENV_VAR}, or pass root=<folder>. They are at "
            + " and ".join(MIRRORS) + ".")


def download_mnist(directory=None, mirrors=MIRRORS, timeout: float = 30.0) -> Path:
    """Fetch the files missing from ``directory`` (default :func:`cache_dir`); returns the folder.

    Each mirror is tried in turn; a file is kept only when the MD5 of its uncompressed bytes is the
    one in :data:`FILES`, and it is written atomically. Raises :class:`MNISTDownloadError` (an
    OSError) listing every failed URL and saying where to put the files by hand.
    """
    directory = Path(directory) if directory is not None else cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    for name, md5 in FILES.values():
        if _file(directory, name):
            continue
        errors = []
        for mirror in mirrors:
            url = mirror + name
            try:
                with _urlopen(url, timeout=timeout) as response:
                    data = response.read()
                digest = hashlib.md5(gzip.decompress(data)).hexdigest()
            except (OSError, EOFError, zlib.error, http.client.HTTPException) as e:
                errors.append(f"  {url}: {e}")  # URLError, timeouts and bad gzip are OSErrors
                continue
            if digest != md5:
                errors.append(f"  {url}: MD5 of the uncompressed data is {digest}, "
                              f"expected {md5}")
                continue
            _write_atomically(directory / name, data)
            break
        else:
            raise MNISTDownloadError(f"could not download the MNIST file {name}:\n"
                                     + "\n".join(errors) + "\n" + _where_to_put_them(directory))
    return directory


def find_mnist_dir(root=None, download: bool = True) -> Path:
    """The folder the four MNIST files are read from, downloading them if none holds them."""
    searched = search_path(root)
    for directory in searched:
        if _complete(directory):
            return directory
    target = Path(root) if root is not None else cache_dir()
    if not download:
        raise FileNotFoundError("MNIST files not found in any of: "
                                + ", ".join(map(str, searched)) + ". download=True fetches them "
                                f"into {target}. " + _where_to_put_them(target))
    return download_mnist(target)


# ---------------------------------------------------------------------------------------------
# Loading

def _raw(part: str, directory: Path) -> Tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 28, 28) and labels (N,) of ``part`` ("train" or "test"), checked."""
    images_path = _file(directory, FILES[part + "_images"][0])
    labels_path = _file(directory, FILES[part + "_labels"][0])
    images, labels = _read(images_path, IMAGE_MAGIC), _read(labels_path, LABEL_MAGIC)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise MNISTFormatError(f"{images_path}: images of shape {images.shape[1:]}, "
                               "expected (28, 28)")
    if labels.ndim != 1 or len(labels) != len(images):
        raise MNISTFormatError(f"{labels_path} holds {labels.shape} labels but {images_path} "
                               f"holds {len(images)} images")
    if labels.size and labels.max() > 9:
        raise MNISTFormatError(f"{labels_path}: label {labels.max()} is not a digit")
    return images, labels


def _split(images: np.ndarray, labels: np.ndarray, flatten: bool) -> Split:
    # x / 255 computed straight into float32: 255 maps to exactly 1.0
    X = np.divide(images, np.float32(255), dtype=np.float32)
    X = X.reshape(len(X), 28 * 28) if flatten else X.reshape(len(X), 1, 28, 28)
    return Split(X, labels.astype(np.int64))


def _check_validation_size(validation_size: int, n_train: int) -> None:
    if not isinstance(validation_size, (int, np.integer)) or not 0 <= validation_size < n_train:
        raise ValueError(f"validation_size must be an integer in [0, {n_train}), "
                         f"got {validation_size!r}")


def load_mnist(root=None, *, flatten: bool = True, validation_size: int = 10_000,
               download: bool = True) -> MNIST:
    """MNIST as ``MNIST(train, valid, test)``, each a ``Split(X, y)`` of NumPy arrays.

    * ``X``: float32 pixel intensities x = byte / 255 in [0, 1], shape (N, 784) with ``flatten``,
      else (N, 1, 28, 28); ``y``: int64 digits 0..9, shape (N,).
    * The 60,000 training images are split as in the classic tutorials: the first
      ``60000 - validation_size`` for ``train``, the last ``validation_size`` (default 10,000) for
      ``valid``; ``validation_size=0`` keeps all 60,000 in ``train`` and sets ``valid`` to None.
    * ``test``: the 10,000 test images.
    * ``root`` and ``download``: where the files come from, see the module docstring.

    Every call returns fresh arrays, so they may be modified in place.
    """
    directory = find_mnist_dir(root, download)
    train_images, train_labels = _raw("train", directory)
    _check_validation_size(validation_size, len(train_images))
    n = len(train_images) - validation_size
    valid = _split(train_images[n:], train_labels[n:], flatten) if validation_size else None
    return MNIST(_split(train_images[:n], train_labels[:n], flatten), valid,
                 _split(*_raw("test", directory), flatten))


def mnist_split(split: str = "train", root=None, *, flatten: bool = True, validation_size: int = 10_000,
          download: bool = True) -> Split:
    """One split, ``"train"``, ``"valid"`` or ``"test"``, as ``Split(X, y)`` (see load_mnist).

    Only the requested split is converted to float32, so ``mnist_split("test")`` is cheap.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    directory = find_mnist_dir(root, download)
    if split == "test":
        return _split(*_raw("test", directory), flatten)
    images, labels = _raw("train", directory)
    _check_validation_size(validation_size, len(images))
    n = len(images) - validation_size
    if split == "train":
        return _split(images[:n], labels[:n], flatten)
    if validation_size == 0:
        raise ValueError('split="valid" needs validation_size > 0')
    return _split(images[n:], labels[n:], flatten)
