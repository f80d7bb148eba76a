"""Optimizers (update rules on ``.data``, outside the tape) and learning-rate schedules.

    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss.backward(); opt.step(); opt.zero_grad()
"""
from .optimizer import Optimizer
from .sgd import SGD
from .adaptive import Adadelta, Adagrad, Adam, AdamW, RMSprop
from . import lr_scheduler

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "Adadelta", "lr_scheduler"]
