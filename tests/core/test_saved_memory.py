"""A node keeps only what its backward reads (``Function.keeps`` / ``needs_output``): inputs
nobody reads are recorded as shells, so their arrays are freed during the forward pass, while
gradients, grad() and the graph stay exactly as before."""
import importlib
import tracemalloc
import weakref

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import Function
from tinygrad_edu.nn import functional as F
from tinygrad_edu.tensor import _key

tensor_module = importlib.import_module("tinygrad_edu.tensor")  # (tg.tensor is the function)


@pytest.fixture(autouse=True)
def shells_for_every_size(monkeypatch):
    """Tiny arrays are kept whole (a shell would cost more time than it saves memory); these
    tests use small arrays, so they lower the threshold."""
    monkeypatch.setattr(tensor_module, "SHELL_MIN_SIZE", 0)


def conv_block(x, w, b):
    z = F.conv2d(x, w, b, padding=1)
    return z, F.max_pool2d(F.relu(z), 2)


def params(rng, dtype=np.float32):
    x = tg.Tensor(rng.standard_normal((2, 3, 8, 8)).astype(dtype))
    w = tg.Tensor(rng.standard_normal((4, 3, 3, 3)).astype(dtype), requires_grad=True)
    b = tg.Tensor(rng.standard_normal(4).astype(dtype), requires_grad=True)
    return x, w, b


def test_relu_records_the_conv_output_as_a_shell_and_its_array_is_freed():
    x, w, b = params(np.random.default_rng(0))
    z, y = conv_block(x, w, b)
    relu_node = y._ctx.inputs[0]._ctx           # max_pool's input is ReLU's output: kept
    assert y._ctx.inputs[0].data.strides != (0, 0, 0, 0)   # ReLU's backward reads its output
    shell = relu_node.inputs[0]
    assert shell is not z and _key(shell) == _key(z) and shell._ctx is z._ctx
    assert shell.shape == z.shape and shell.dtype == z.dtype and shell.requires_grad
    assert shell.data.strides == (0, 0, 0, 0) and np.isnan(shell.data).all()
    gone = weakref.ref(z.data)
    del z
    assert gone() is None                       # nothing holds the conv output any more
    y.sum().backward()
    assert w.grad is not None and b.grad is not None


def test_gradients_are_those_of_keeping_everything():
    """The same graph with every op forced to keep all its inputs gives the same gradients."""
    rng = np.random.default_rng(1)
    x, w, b = params(rng, np.float64)
    v = tg.Tensor(rng.standard_normal((2, 4, 4, 4)), requires_grad=True)

    def loss():
        z, y = conv_block(x, w, b)
        return ((y * v).tanh() + z.mean() + F.dropout(y, 0.3)).sum()

    tg.manual_seed(0)
    loss().backward()
    shed = [p.grad.numpy().copy() for p in (w, b, v)]
    for p in (w, b, v):
        p.grad = None
    classes = [c for c in _all_functions() if c.keeps != "all" or not c.needs_output]
    saved = [(c, c.__dict__.get("keeps"), c.__dict__.get("needs_output")) for c in classes]
    try:
        for c in classes:
            c.keeps, c.needs_output = "all", True
        tg.manual_seed(0)
        loss().backward()
    finally:
        for c, keeps, needs in saved:
            for name, value in (("keeps", keeps), ("needs_output", needs)):
                if value is None:
                    delattr(c, name)
                else:
                    setattr(c, name, value)
    for got, p in zip(shed, (w, b, v)):
        np.testing.assert_array_equal(got, p.grad.numpy())


def _all_functions():
    found, todo = [], [Function]
    while todo:
        c = todo.pop()
        found.append(c)
        todo += c.__subclasses__()
    return found[1:]


def test_a_tensor_used_by_a_shedding_and_a_keeping_op_gets_one_summed_gradient():
    a = tg.Tensor([1.0, -2.0, 3.0], requires_grad=True)
    z = a * 2                       # Mul: its output values are not needed by its backward
    y = z.relu() + z * z            # ReLU holds a shell of z, the second Mul holds z itself
    (ga,) = tg.grad(y.sum(), a)
    zz = 2 * np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(ga.numpy(), 2 * ((zz > 0) + 2 * zz))


def test_grad_with_respect_to_a_tensor_that_only_shells_refer_to():
    x, w, b = params(np.random.default_rng(2), np.float64)
    z, y = conv_block(x, w, b)
    (gz,) = tg.grad(y.sum(), z)                 # z reached through ReLU's shell
    (gz_again,) = tg.grad(F.max_pool2d(F.relu(z), 2).sum(), z)
    np.testing.assert_array_equal(gz.numpy(), gz_again.numpy())
    assert gz.shape == z.shape and (gz.numpy() >= 0).all()


def test_gradcheck_and_second_derivatives_go_through_shells():
    rng = np.random.default_rng(3)
    a = tg.Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    assert tg.gradcheck(lambda t: ((t * 3).relu().reshape(4, 3).sum(0) + 1).tanh(), [a])
    assert tg.gradgradcheck(lambda t: ((t * 3).exp().reshape(12) * 0.5).sum(), [a])


def test_dropout_keeps_a_boolean_mask_and_not_its_input():
    tg.manual_seed(0)
    x = tg.Tensor(np.random.default_rng(4).standard_normal((50, 40)).astype(np.float32),
                  requires_grad=True)
    h = x * 1.0
    y = F.dropout(h, 0.25)
    node = y._ctx
    assert node.keep.dtype == np.bool_ and node.inputs[0].data.strides == (0, 0)
    mask = (node.keep / 0.75).astype(np.float32)     # the float mask it replaces
    np.testing.assert_array_equal(y.numpy(), h.numpy() * mask)
    y.backward(tg.ones_like(y))                       # (backward frees the node's notes)
    np.testing.assert_array_equal(x.grad.numpy(), mask)


def test_a_custom_op_that_reads_an_input_it_did_not_keep_gets_nan_not_silent_garbage():
    class Square(Function):                     # wrongly says its backward reads nothing
        keeps = ()

        def forward(ctx, x):
            return x * x

        def backward(ctx, gy, y):
            return gy * 2 * ctx.inputs[0]

    a = tg.Tensor([1.0, 2.0], requires_grad=True)
    Square.apply(a * 1.0).sum().backward()      # a * 1.0: a computed input, so shelled
    assert np.isnan(a.grad.numpy()).all()
    with pytest.raises(tg.GradcheckError):
        tg.gradcheck(lambda t: Square.apply(t * 1.0), [tg.Tensor([1.0, 2.0], dtype=np.float64,
                                                                requires_grad=True)])


def test_a_convnet_block_holds_only_what_backward_needs():
    """Bytes held after the forward pass of conv -> ReLU -> max-pool -> dropout, with only the
    output referenced: ReLU's output, the pool's indices, the byte mask and the output itself,
    as PyTorch keeps; not the conv output, the pool output or a float mask."""
    rng = np.random.default_rng(5)
    x = tg.Tensor(rng.standard_normal((16, 8, 32, 32)).astype(np.float32))
    w = tg.Tensor(rng.standard_normal((16, 8, 3, 3)).astype(np.float32), requires_grad=True)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        y = F.dropout(F.max_pool2d(F.relu(F.conv2d(x, w, padding=1)), 2), 0.5)
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    pool = y._ctx.inputs[0]._ctx
    relu_out = pool.inputs[0]
    need = relu_out.data.nbytes + pool.idx.nbytes + y._ctx.keep.nbytes + y.data.nbytes
    assert held <= need + 64 * 1024, (held, need)
    assert relu_out.data.nbytes > 64 * 1024        # so keeping the conv output would fail it
    y.sum().backward()
    assert w.grad is not None


def test_tiny_inputs_are_kept_whole(monkeypatch):
    monkeypatch.setattr(tensor_module, "SHELL_MIN_SIZE", 4096)
    a = tg.Tensor(np.ones(4095, np.float32), requires_grad=True)
    small, big = (a * 2).relu(), (tg.Tensor(np.ones(4096, np.float32), requires_grad=True) * 2)
    assert small._ctx.inputs[0].data.strides == (4,)
    assert big.relu()._ctx.inputs[0].data.strides == (0,)


@pytest.mark.parametrize("op", ["Relu", "Conv2d", "Linear", "MaxPool2d", "Dropout", "Add"])
def test_the_big_ops_declare_what_they_keep(op):
    from tinygrad_edu.ops import elementwise, nn_ops
    cls = getattr(nn_ops, op, None) or getattr(elementwise, op)
    assert cls.keeps != "all"
