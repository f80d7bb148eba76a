"""The Theano tutorial's convnet for MNIST (``5_convolutional_net.py``), PyTorch-style.

Three blocks of 3x3 convolution (32, 64, 128 filters, padding 1), ReLU, 2x2 max-pooling in ceil
mode (Theano's ``ignore_border=False``) and dropout; then a 625-unit dense layer with dropout
and a linear output of ``num_classes`` scores (the softmax is in the loss)::

    (N, 1, 28, 28) -> 32 x 14 x 14 -> 64 x 7 x 7 -> 128 x 4 x 4 -> 2048 -> 625 -> 10

The layers are children "0", "1", ... of one ``Sequential`` (``features`` first, then the
classifier), so ``model[0]`` is the first convolution and ``model[:4]`` the first block.
"""
from .. import nn


def _block(c_in, c_out, dropout):
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Dropout(dropout)]


def mnist_convnet(num_classes=10, in_channels=1, conv_dropout=0.2, dropout=0.5):
    """The tutorial convnet (see the module docstring) for 28 x 28 images."""
    return nn.Sequential(
        *_block(in_channels, 32, conv_dropout), *_block(32, 64, conv_dropout),
        *_block(64, 128, conv_dropout),                       # 28 -> 14 -> 7 -> 4
        nn.Flatten(), nn.Linear(128 * 4 * 4, 625), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(625, num_classes))
