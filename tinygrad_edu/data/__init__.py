"""Everything about data, as PyTorch's ``torch.utils.data`` plus the data sets and transforms:

* :mod:`.loader`: ``Dataset``, ``TensorDataset`` and ``DataLoader`` (mini-batches of Tensors);
* :mod:`.transforms`: ``Standardize``, ``PCAWhitening`` and ``random_shift``, on NumPy arrays;
* :mod:`.mnist`: reading, finding and downloading MNIST (``load_mnist``, ``mnist_split``).

    from tinygrad_edu.data import DataLoader, load_mnist
    train, valid, test = load_mnist()          # Split(X, y) each, NumPy arrays
    for xb, yb in DataLoader(train, batch_size=128, shuffle=True):
        ...
"""
from .loader import DataLoader, Dataset, TensorDataset
from .mnist import (MIRRORS, MNIST, MNISTDownloadError, MNISTFormatError, Split, cache_dir,
                    download_mnist, find_mnist_dir, load_mnist, mnist_split, read_idx)
from .transforms import PCAWhitening, Standardize, random_shift
from .images import tile_images
from .augment import (Compose, ElasticDistortion, GaussianNoise, RandomAffine,
                      RandomHorizontalFlip, RandomRotation, resize)

__all__ = ["Dataset", "TensorDataset", "DataLoader", "Standardize", "PCAWhitening",
           "random_shift", "MIRRORS", "MNIST", "MNISTDownloadError", "MNISTFormatError", "Split",
           "cache_dir", "download_mnist", "find_mnist_dir", "load_mnist", "mnist_split",
           "read_idx", "tile_images", "Compose", "ElasticDistortion", "GaussianNoise",
           "RandomAffine", "RandomHorizontalFlip", "RandomRotation", "resize"]
