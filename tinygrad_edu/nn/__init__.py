"""Neural-network building blocks, PyTorch's ``torch.nn``.

* :mod:`.module`: ``Module`` (finds parameters by walking attributes) and ``Parameter``;
* :mod:`.layers`: Linear, Conv2d, pooling (adaptive too), Dropout, Embedding, BatchNorm,
  activations, Identity, Sequential;
* :mod:`.rnn`: the recurrent layers RNN, LSTM and GRU (backpropagation through time, one tape
  node per layer and direction) and their one-step cells RNNCell, LSTMCell and GRUCell;
* :mod:`.loss`: the loss modules CrossEntropyLoss, NLLLoss, MSELoss, L1Loss, BCELoss and
  BCEWithLogitsLoss (each with ``reduction`` "mean", "sum" or "none");
* :mod:`.functional` (also ``nn.F``): the stateless functions the layers and losses call;
* :mod:`.init`: initializers (Lasagne's formulas, PyTorch's names);
* :mod:`.utils`: gradient clipping (``torch.nn.utils``);
* :mod:`.regularization`: L1/L2 weight penalties for the loss (``lasagne.regularization``).
"""
from . import functional, init, regularization, rnn, utils
from . import functional as F
from .module import Module, Parameter
from .layers import (AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d,
                     Conv2d, Dropout, Embedding, Flatten, Identity, Linear, LogSoftmax, MaxPool2d,
                     ReLU, Sequential, Sigmoid, Softmax, Tanh)
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from .rbm import RBM
from .autoencoder import DeepAutoencoder, TiedAutoencoder
from . import autoencoder, rbm
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss

__all__ = ["Module", "Parameter", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d",
           "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "Identity", "Dropout",
           "Embedding", "BatchNorm1d", "BatchNorm2d", "ReLU", "Sigmoid", "Tanh", "Softmax",
           "LogSoftmax", "Flatten", "Sequential", "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell",
           "GRUCell", "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "BCELoss",
           "BCEWithLogitsLoss", "RBM", "TiedAutoencoder", "DeepAutoencoder", "rbm", "autoencoder",
           "functional", "F", "init", "rnn", "regularization", "utils"]
