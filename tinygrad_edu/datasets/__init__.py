"""Datasets as plain NumPy arrays (no Tensor involved): MNIST for now.

    from tinygrad_edu.datasets import load_mnist
    (X, y), (X_valid, y_valid), (X_test, y_test) = load_mnist()

Note: ``tinygrad_edu.datasets.mnist`` is the function :func:`mnist`; the module that defines it
is ``importlib.import_module("tinygrad_edu.datasets.mnist")``.
"""
from .mnist import (MIRRORS, MNIST, MNISTDownloadError, MNISTFormatError, Split, cache_dir,
                    download_mnist, find_mnist_dir, load_mnist, mnist, read_idx)

__all__ = ["MIRRORS", "MNIST", "MNISTDownloadError", "MNISTFormatError", "Split", "cache_dir",
           "download_mnist", "find_mnist_dir", "load_mnist", "mnist", "read_idx"]
