"""Bad inputs raise ValueError or TypeError whose message names the op and the shapes (or dtypes)
involved, and they raise before anything changes: no gradient, no version bump, no lost graph.
"""
import operator

import numpy as np
import pytest

import tinygrad_edu as tg


def param(*shape, dtype=np.float64):
    """A leaf that requires grad, as a parameter would."""
    return tg.Tensor(np.ones(shape, dtype=dtype), requires_grad=True)


def const(*shape, dtype=np.float64):
    return tg.Tensor(np.ones(shape, dtype=dtype))


def case(name, make, op, error, pattern):
    """``op(*make())`` must raise ``error`` with a message matching ``pattern``."""
    return pytest.param(make, op, error, pattern, id=name)


CASES = [
    # broadcasting and shapes
    case("add shapes", lambda: [param(3), param(4)], operator.add,
         ValueError, r"Add with input shapes \(3,\), \(4,\)"),
    case("mul shapes", lambda: [param(2, 3), param(3, 2)], operator.mul,
         ValueError, r"Mul with input shapes \(2, 3\), \(3, 2\)"),
    case("where shapes", lambda: [param(3), param(4)],
         lambda a, b: tg.where(np.ones(3, bool), a, b),
         ValueError, r"Where with input shapes \(3,\), \(3,\), \(4,\)"),
    case("matmul inner dims", lambda: [param(2, 3), param(2, 3)], operator.matmul,
         ValueError, r"matmul: shapes \(2, 3\) and \(2, 3\) do not align \(3 != 2\)"),
    case("matmul batch dims", lambda: [param(2, 3, 4), param(5, 4, 2)], operator.matmul,
         ValueError, r"MatMul with input shapes \(2, 3, 4\), \(5, 4, 2\)"),
    case("matmul 0-d", lambda: [param(), param(3)], tg.matmul,
         ValueError, r"matmul: .*at least 1 dim.*\(\) and \(3,\)"),
    case("reshape size", lambda: [param(2, 3)], lambda x: x.reshape(4, 2),
         ValueError, r"Reshape with input shapes \(2, 3\): .*size 6 into shape \(4, ?2\)"),
    case("expand", lambda: [param(2, 3)], lambda x: x.expand(3, 3),
         ValueError, r"BroadcastTo with input shapes \(2, 3\): .*\(3, ?3\)"),
    case("expand -1 on a new axis", lambda: [param(3)], lambda x: x.expand(-1, 3),
         ValueError, r"expand: -1 in \(-1, 3\) .*shape \(3,\)"),
    case("cat shapes", lambda: [param(2, 3), param(2, 4)], lambda a, b: tg.cat([a, b]),
         ValueError, r"Concatenate with input shapes \(2, 3\), \(2, 4\)"),
    case("cat ranks", lambda: [param(2, 3), param(3)], lambda a, b: tg.cat([a, b]),
         ValueError, r"cat: shapes \(2, 3\) and \(3,\) have different ranks"),
    case("cat nothing", lambda: [], lambda: tg.cat([]), ValueError, r"cat: needs at least one"),
    case("stack shapes", lambda: [param(3), param(4)], lambda a, b: tg.stack([a, b]),
         ValueError, r"stack: shapes \(3,\) and \(4,\) differ"),
    case("pad pairs", lambda: [param(2, 3)], lambda x: x.pad((1,)),
         ValueError, r"pad: \(1,\) .*pairs .*shape \(2, 3\)"),
    case("pad negative", lambda: [param(2, 3)], lambda x: x.pad((1, -1)),
         ValueError, r"pad: \(1, -1\) must be non-negative"),
    case("pad too many axes", lambda: [param(3)], lambda x: x.pad((1, 1, 1, 1)),
         ValueError, r"pad: .*at most 1 axes of shape \(3,\)"),
    case("index out of bounds", lambda: [param(2, 3)], lambda x: x[5],
         IndexError, r"GetItem with input shapes \(2, 3\): index 5 is out of bounds"),
    case("mask shape", lambda: [param(2, 3)], lambda x: x[np.ones(4, bool)],
         IndexError, r"GetItem with input shapes \(2, 3\): boolean index did not match"),
    # axes and dims
    case("sum axis", lambda: [param(2, 3)], lambda x: x.sum(axis=2),
         ValueError, r"sum: axis 2 is out of range for a tensor with 2 dims"),
    case("mean negative dim", lambda: [param(2, 3)], lambda x: x.mean(dim=-3),
         ValueError, r"mean: axis -3 is out of range"),
    case("max repeated axis", lambda: [param(2, 3)], lambda x: x.max(axis=(1, -1)),
         ValueError, r"max: repeated axis in \(1, -1\)"),
    case("argmin axis", lambda: [param(2, 3)], lambda x: x.argmin(axis=3),
         ValueError, r"argmin: axis 3 is out of range"),
    case("float axis", lambda: [param(2, 3)], lambda x: x.var(axis=1.0),
         TypeError, r"var: axis must be an int"),
    case("axis and dim", lambda: [param(2, 3)], lambda x: x.sum(axis=0, dim=0),
         TypeError, r"sum: give axis= or dim=, not both"),
    case("max of nothing", lambda: [param(0, 3)], lambda x: x.max(),
         ValueError, r"max: empty tensor of shape \(0, 3\)"),
    case("permute repeats", lambda: [param(2, 3)], lambda x: x.permute(0, 0),
         ValueError, r"permute: \(0, 0\) is not an order of the 2 axes of shape \(2, 3\)"),
    case("permute too few", lambda: [param(2, 3, 4)], lambda x: x.permute(1, 0),
         ValueError, r"permute: \(1, 0\) is not an order of the 3 axes"),
    case("permute dim", lambda: [param(2, 3)], lambda x: x.permute(0, 2),
         ValueError, r"permute: dim 2 is out of range for a tensor with 2 dims"),
    case("transpose", lambda: [param(2, 3)], lambda x: x.transpose(0, 2),
         ValueError, r"transpose: axes 0, 2 out of range for shape \(2, 3\)"),
    case("mT of 1-d", lambda: [param(3)], lambda x: x.mT,
         ValueError, r"transpose: axes -2, -1 out of range for shape \(3,\)"),
    case("flatten dim", lambda: [param(2, 3)], lambda x: x.flatten(2),
         ValueError, r"flatten: dim 2 is out of range for a tensor with 2 dims"),
    case("flatten order", lambda: [param(2, 3, 4)], lambda x: x.flatten(2, 1),
         ValueError, r"flatten: start_dim 2 comes after end_dim 1 for shape \(2, 3, 4\)"),
    case("squeeze dim", lambda: [param(2, 1)], lambda x: x.squeeze(2),
         ValueError, r"squeeze: dim 2 is out of range"),
    case("unsqueeze dim", lambda: [param(2)], lambda x: x.unsqueeze(3),
         ValueError, r"unsqueeze: dim 3 out of range for shape \(2,\)"),
    case("cat axis", lambda: [param(2), param(2)], lambda a, b: tg.cat([a, b], axis=1),
         ValueError, r"cat: axis 1 out of range for shape \(2,\)"),
    case("stack axis", lambda: [param(3), param(3)], lambda a, b: tg.stack([a, b], axis=3),
         ValueError, r"stack: axis 3 out of range for 2 tensors of shape \(3,\)"),
    # dtypes
    case("float64 + float32", lambda: [param(3), param(3, dtype=np.float32)], operator.add,
         TypeError, r"add: dtypes differ \(float64 and float32\)"),
    case("float * int", lambda: [param(3), const(3, dtype=np.int64)], operator.mul,
         TypeError, r"mul: dtypes differ \(float64 and int64\)"),
    case("matmul dtypes", lambda: [param(2, 2), param(2, 2, dtype=np.float32)], tg.matmul,
         TypeError, r"matmul: dtypes differ \(float64 and float32\)"),
    case("maximum dtypes", lambda: [param(2, dtype=np.float32), param(2)], tg.maximum,
         TypeError, r"maximum: dtypes differ \(float32 and float64\)"),
    case("cat dtypes", lambda: [param(2), param(2, dtype=np.float32)],
         lambda a, b: tg.cat([a, b]), TypeError, r"cat: dtypes differ \(float64 and float32\)"),
    case("int tensor, float number", lambda: [const(2, dtype=np.int64)], lambda x: x * 2.5,
         TypeError, r"mul: a float operand with a int64 tensor"),
    case("mean of ints", lambda: [const(2, dtype=np.int64)], lambda x: x.mean(),
         TypeError, r"mean: needs a floating-point tensor, not int64"),
    case("where condition", lambda: [param(3)], lambda x: tg.where(x, x, x),
         TypeError, r"where: condition must be bool, got float64"),
    # not tensors at all, missing arguments
    case("add two numbers", lambda: [], lambda: tg.add(2.0, 3.0),
         TypeError, r"add: at least one operand must be a Tensor, got float and float"),
    case("where two numbers", lambda: [], lambda: tg.where(np.ones(2, bool), 1.0, 2.0),
         TypeError, r"where: at least one of a and b must be a Tensor"),
    case("matmul with an array", lambda: [param(2, 2)], lambda x: x @ np.ones((2, 2)),
         TypeError, r"matmul: both operands must be Tensors"),
    case("clip without bounds", lambda: [param(3)], lambda x: x.clip(),
         ValueError, r"clip: give at least one of min and max"),
    # in-place changes
    case("+= shapes", lambda: [const(2, 3), const(4)], operator.iadd,
         ValueError, r"\+= on a tensor of shape \(2, 3\): .*\(4,\)"),
    case("setitem shapes", lambda: [const(2, 3)], lambda x: x.__setitem__(0, np.ones(5)),
         ValueError, r"__setitem__ on a tensor of shape \(2, 3\): .*\(5,\)"),
    case("copy_ shapes", lambda: [const(2, 3), const(3, 2)], lambda x, y: x.copy_(y),
         ValueError, r"copy_: source shape \(3, 2\) != destination \(2, 3\)"),
    case("+= on a parameter", lambda: [param(2)], lambda x: operator.iadd(x, 1),
         RuntimeError, r"\+=: in-place change of a tensor that requires grad"),
]


@pytest.mark.parametrize("make, op, error, pattern", CASES)
def test_bad_input_raises_a_clear_error_and_changes_nothing(make, op, error, pattern):
    tensors = make()
    before = [(t.data.copy(), t._version[0]) for t in tensors]
    with pytest.raises(error, match=pattern):
        op(*tensors)
    assert tg.is_grad_enabled()
    for t, (data, version) in zip(tensors, before):
        assert t.grad is None and t.grad_fn is None and t._version[0] == version
        np.testing.assert_array_equal(t.numpy(), data)


@pytest.mark.parametrize("name, data", [("a string", ["a"]), ("an object", [object()])])
def test_tensor_of_unsupported_data(name, data):
    with pytest.raises(TypeError, match="cannot make a Tensor from an array of dtype"):
        tg.Tensor(data)


def test_only_floats_can_require_grad():
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients, "
                                        "not int64"):
        tg.Tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="not bool"):
        tg.Tensor([True]).requires_grad_()


# ---- backward -----------------------------------------------------------------------------------
def test_failed_backward_leaves_grads_and_graph_as_they_were():
    x = param(2)
    y = x * x
    with pytest.raises(RuntimeError, match=r"one-element output, this one has shape \(2,\)"):
        y.backward()
    with pytest.raises(ValueError, match=r"gradient has shape \(3,\).*output has shape \(2,\)"):
        y.backward(gradient=np.ones(3))
    with pytest.raises(ValueError, match=r"dtype float32.*output has shape \(2,\), dtype float64"):
        y.backward(gradient=tg.Tensor(np.ones(2, dtype=np.float32)))
    assert x.grad is None and tg.is_grad_enabled()
    y.backward(gradient=np.array([1.0, 2.0]))  # the graph was not freed by the failures
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])


def test_backward_of_a_tensor_without_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        (const(2) * 2).sum().backward()


class ForgetsToSumTo(tg.Function):
    """y = a + b with a backward that does not undo broadcasting."""
    def forward(ctx, a, b):
        return a + b

    def backward(ctx, gy, y):
        return gy, gy


def test_a_gradient_of_the_wrong_shape_names_the_op():
    a, b = param(2, 3), param(3)
    with pytest.raises(RuntimeError, match=r"ForgetsToSumTo.backward returned a gradient of "
                                           r"shape \(2, 3\) .* for input 1 of shape \(3,\)"):
        ForgetsToSumTo.apply(a, b).sum().backward()
    assert tg.is_grad_enabled()


def test_grad_argument_errors():
    x, c = param(2), const(2)
    y = (x * x).sum()
    with pytest.raises(ValueError, match=r"grad\(\): input 0 \(shape \(2,\)\) does not require"):
        tg.grad(y, [c])
    with pytest.raises(ValueError, match=r"grad\(\): 1 outputs but 2 grad_outputs"):
        tg.grad(y, [x], grad_outputs=[None, None])
    with pytest.raises(RuntimeError, match=r"grad\(\): output of shape \(2,\) does not depend"):
        tg.grad(c * 2, [x])
