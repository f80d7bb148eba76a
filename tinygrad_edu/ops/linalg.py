"""Matrix multiplication with NumPy's shape rules (1-D, 2-D and batched operands)."""
from ..tensor import Function, Tensor
from .broadcast import sum_to
from .elementwise import _operands


class MatMul(Function):
    """y = a @ b;  ga = gy @ b^T, gb = a^T @ gy.

    For the general case a 1-D ``a`` is treated as a row (1, k) and a 1-D ``b`` as a column
    (k, 1), the missing axes are put back into ``gy``, and the batch axes that broadcasting
    added are summed away (``sum_to``) before the temporary axes are dropped again.
    """
    needs_output = False
    def forward(ctx, a, b): return a @ b

    def backward(ctx, gy, y):
        a, b = ctx.inputs
        if a.ndim == 2 and b.ndim == 2:  # the common case, without any reshaping
            return (gy @ b.mT if a.requires_grad else None,
                    a.mT @ gy if b.requires_grad else None)
        a2 = a.unsqueeze(0) if a.ndim == 1 else a
        b2 = b.unsqueeze(-1) if b.ndim == 1 else b
        gy2 = gy.unsqueeze(-1) if b.ndim == 1 else gy
        gy2 = gy2.unsqueeze(-2) if a.ndim == 1 else gy2
        ga = sum_to(gy2 @ b2.mT, a2.shape).reshape(a.shape) if a.requires_grad else None
        gb = sum_to(a2.mT @ gy2, b2.shape).reshape(b.shape) if b.requires_grad else None
        return ga, gb


def matmul(a, b):
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError("matmul: both operands must be Tensors")
    a, b = _operands("matmul", a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least 1 dim, got shapes {a.shape} and {b.shape}")
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if a.shape[-1] != k_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align "
                         f"({a.shape[-1]} != {k_b})")
    return MatMul.apply(a, b)


def dot(a, b):
    """The inner product of two 1-D tensors of one length (``torch.dot``), a 0-d tensor."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError("dot: both operands must be Tensors")
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"dot: needs two 1-D tensors of one length, got shapes {a.shape} and "
                         f"{b.shape}")
    return matmul(a, b)
