"""The backward engine's contract: the leaf rule, grad() walks only the part of the graph it
needs, a failed backward changes no .grad, and the core depends on nothing above it."""
import ast
import pathlib

import numpy as np
import pytest

import tinygrad_edu as tg


class Counted(tg.Function):
    """y = 2x, counting how often its backward runs."""
    calls = 0

    def forward(ctx, x):
        return x * 2

    def backward(ctx, gy, y):
        Counted.calls += 1
        return gy * 2


class FailsInBackward(tg.Function):
    def forward(ctx, x):
        return x.copy()

    def backward(ctx, gy, y):
        raise ArithmeticError("this backward always fails")


def test_grad_runs_no_backward_off_the_path_to_its_inputs():
    a = tg.Tensor([1.0, 2.0], requires_grad=True)
    b = tg.Tensor([3.0, 4.0], requires_grad=True)
    off_path = Counted.apply(b)  # needed for the loss, but leads only to b
    loss = (a * off_path).sum()
    Counted.calls = 0
    (ga,) = tg.grad(loss, a, retain_graph=True)
    np.testing.assert_array_equal(ga.numpy(), [6.0, 8.0])
    assert Counted.calls == 0 and a.grad is None and b.grad is None
    (gb,) = tg.grad(loss, b)
    assert Counted.calls == 1
    np.testing.assert_array_equal(gb.numpy(), [2.0, 4.0])


def test_grad_of_an_intermediate_stops_there():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    h = Counted.apply(x)
    loss = (h * h).sum()
    Counted.calls = 0
    (gh,) = tg.grad(loss, h)
    np.testing.assert_array_equal(gh.numpy(), [4.0, 8.0])
    assert Counted.calls == 0 and x.grad is None


def test_a_failed_backward_changes_no_grad_and_a_retry_says_why():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    v = tg.Tensor([3.0, 4.0], requires_grad=True)
    w.grad = tg.Tensor([10.0, 10.0])
    loss = (w * 3).sum() + (FailsInBackward.apply(v * w)).sum()
    with pytest.raises(ArithmeticError, match="always fails"):
        loss.backward()
    assert w.grad.tolist() == [10.0, 10.0] and v.grad is None
    with pytest.raises(RuntimeError, match="unusable because an earlier backward through it "
                                           "failed \\(ArithmeticError: this backward always"):
        loss.backward()


def test_a_second_backward_still_says_second_time():
    x = tg.Tensor([1.0], requires_grad=True)
    y = (x * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="a second time"):
        y.backward()


def test_each_leaf_gets_a_gradient_of_its_own():
    a = tg.Tensor([1.0, 2.0], requires_grad=True)
    b = tg.Tensor([3.0, 4.0], requires_grad=True)
    ((a + b) * 2).sum().backward()  # Add hands one gradient object to both inputs
    assert a.grad is not b.grad and not np.shares_memory(a.grad.data, b.grad.data)
    c = tg.Tensor(np.ones((2, 3)), requires_grad=True)
    c.sum().backward()  # the gradient is a broadcast view: c gets a writable copy
    assert c.grad.data.base is None and c.grad.data.flags.writeable
    d = tg.Tensor([1.0, 2.0], requires_grad=True)
    upstream = tg.Tensor([5.0, 6.0])
    d.backward(upstream)  # the caller's gradient stays the caller's
    assert d.grad is not upstream and not np.shares_memory(d.grad.data, upstream.data)
    d.grad.data[0] = 0.0
    assert upstream.tolist() == [5.0, 6.0]


def test_a_fresh_gradient_is_kept_without_a_copy():
    w = tg.Tensor(np.ones((3, 2)), requires_grad=True)
    x = tg.Tensor(np.ones((4, 3)))
    y = (x @ w).sum()
    y.backward()
    assert w.grad.data.base is None  # the matmul's own result: nothing to copy


def test_tensor_py_imports_only_the_backend():
    source = pathlib.Path(tg.Tensor.__module__.replace(".", "/") + ".py")
    path = pathlib.Path(__file__).resolve().parents[2] / source
    tree = ast.parse(path.read_text())
    internal = [node.module for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.level > 0]
    assert internal == ["backend"]
    external = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    assert external <= {"contextlib", "threading", "numpy"}


def test_grad_through_a_freed_graph_says_second_time():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    loss = (x * x).sum()
    tg.grad(loss, x)
    with pytest.raises(RuntimeError, match="a second time"):
        tg.grad(loss, x)


def test_grad_leaves_the_graph_outside_its_part_alone():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    w = tg.Tensor([3.0, 4.0], requires_grad=True)
    h = x * w                      # below the target h: not walked, so not freed
    loss = (h * h).sum()
    (gh,) = tg.grad(loss, h)
    np.testing.assert_array_equal(gh.numpy(), [6.0, 16.0])
    (gw,) = tg.grad(h.sum(), w)    # the Mul under h still has its inputs
    np.testing.assert_array_equal(gw.numpy(), [1.0, 2.0])
