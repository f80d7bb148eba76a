"""Loss modules, PyTorch's names and defaults: each calls its ``nn.functional`` loss.

``loss_fn = nn.CrossEntropyLoss(); loss = loss_fn(logits, labels)``. Each takes
``reduction``: "mean" (the default) averages the per-element losses, "sum" adds them, "none"
returns them all; anything else is a ValueError when the module is made. ``reduction`` is
keyword-only: PyTorch's other arguments (``weight``, ``ignore_index``, ``label_smoothing``,
``pos_weight`` and the deprecated ``size_average``/``reduce``) are not supported, so a
positional argument meant as one of them fails loudly instead of being taken as another.
Inputs follow ``nn.functional``'s rule (Tensors, or array data, which is converted).
"""
from . import functional as F
from .module import Module


class _Loss(Module):
    function = None  # the nn.functional loss, called as function(input, target, reduction)

    def __init__(self, *, reduction="mean"):
        super().__init__()
        F._check_reduction(type(self).__name__, reduction)
        self.reduction = reduction

    def forward(self, input, target):  # noqa: A002 (PyTorch's name)
        return type(self).function(input, target, self.reduction)

    def extra_repr(self):
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class CrossEntropyLoss(_Loss):
    """-log softmax(input)[target] per row: input (N, K) logits, target (N,) class indices in
    [0, K). Fused, stable and twice differentiable (``F.cross_entropy``)."""
    function = F.cross_entropy


class NLLLoss(_Loss):
    """-input[n, target_n]: input (N, K) log-probabilities (e.g. from ``LogSoftmax(1)``),
    target (N,) class indices; ``NLLLoss()(LogSoftmax(1)(z), t) == CrossEntropyLoss()(z, t)``."""
    function = F.nll_loss


class MSELoss(_Loss):
    """(input - target)^2 elementwise, input and target of one shape."""
    function = F.mse_loss


class L1Loss(_Loss):
    """|input - target| elementwise, input and target of one shape (gradient 0 where equal)."""
    function = F.l1_loss


class BCELoss(_Loss):
    """-(t log p + (1 - t) log(1 - p)) for probabilities p = input in [0, 1] and targets t of
    the same shape; the logs are clamped, so p = 0 or 1 gives a large finite loss."""
    function = F.binary_cross_entropy


class BCEWithLogitsLoss(_Loss):
    """BCELoss of sigmoid(input), computed stably from the logits: max(z, 0) - z t +
    log(1 + exp(-|z|)); prefer it to Sigmoid followed by BCELoss."""
    function = F.binary_cross_entropy_with_logits


__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "BCELoss", "BCEWithLogitsLoss"]
