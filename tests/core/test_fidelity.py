"""What a PyTorch user expects of the core: copy and share rules, per-thread grad mode,
re-entrant context managers, clear errors for non-numeric data, PyTorch's names."""
import subprocess
import sys
import threading
import traceback

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_edu as tg
from tinygrad_edu.testing import strategies as tst


# ---- data is never changed behind the user's back --------------------------------------------
def test_constructor_copies_and_from_numpy_shares():
    a = np.ones(3, np.float32)
    t = tg.Tensor(a, requires_grad=True)
    with tg.no_grad():
        t -= 1.0  # what an optimizer step does
    assert (a == 1).all() and (t.numpy() == 0).all()
    assert not np.shares_memory(tg.tensor(a).data, a)
    assert tg.tensor(a, dtype=np.float64, requires_grad=True).dtype == np.float64
    shared = tg.from_numpy(a)
    shared.data[0] = 7
    assert a[0] == 7 and shared.numpy() is a  # .numpy() shares on the CPU, as in PyTorch
    copy_of_tensor = tg.Tensor(shared)
    assert not np.shares_memory(copy_of_tensor.data, a)


def test_from_numpy_takes_only_arrays():
    with pytest.raises(TypeError, match="from_numpy: expected a numpy.ndarray, got list"):
        tg.from_numpy([1.0, 2.0])
    with pytest.raises(TypeError, match="dtype complex128"):
        tg.from_numpy(np.ones(2, complex))


@pytest.mark.parametrize("data, dtype, pattern", [
    ([1.0], object, "dtype must be a real number type or bool, not object"),
    ([1.0], str, "dtype must be a real number type or bool, not <U"),
    ([1.0], complex, "not complex128"),
    (np.array(["a", "b"]), None, "dtype <U1"),
    (np.ones(2, complex), None, "dtype complex128"),
    ([None, 1.0], None, "dtype object"),
    ("text", None, "dtype <U4"),
])
def test_non_numeric_data_and_dtypes_are_refused(data, dtype, pattern):
    with pytest.raises(TypeError, match=pattern):
        tg.Tensor(data, dtype=dtype)


@pytest.mark.parametrize("operand", [None, "2", object(), [None], np.array(["a"]), 1j,
                                     np.ones(1, complex)])
def test_non_numeric_operands_are_refused(operand):
    x = tg.Tensor([1.0, 2.0])
    for fn in (lambda: x + operand, lambda: operand * x, lambda: x < operand,
               lambda: tg.maximum(x, operand)):
        with pytest.raises(TypeError, match="operand"):
            fn()
    assert x.tolist() == [1.0, 2.0]


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "tanh", "sigmoid"])
@pytest.mark.parametrize("data", [[1, 2], [True, False]])
def test_float_ops_on_integer_and_bool_tensors_give_float32(name, data):
    x = tg.Tensor(data)
    y = getattr(x, name)()
    assert y.dtype == np.float32
    want = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "tanh": np.tanh,
            "sigmoid": lambda a: 1 / (1 + np.exp(-a))}[name](np.asarray(data, np.float32))
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-6)


# ---- grad mode is per thread; the context managers nest and re-enter -----------------------
def _train(seed, steps=15, evaluate_meanwhile=None):
    """A small MLP trained with SGD from weights and data drawn from a local generator."""
    rng = np.random.default_rng(seed)
    model = tg.nn.Sequential(tg.nn.Linear(6, 8), tg.nn.Tanh(), tg.nn.Linear(8, 3))
    with tg.no_grad():
        for p in model.parameters():
            p.copy_(rng.standard_normal(p.shape).astype(np.float32) * 0.5)
    X = tg.Tensor(rng.standard_normal((16, 6)).astype(np.float32))
    y = tg.Tensor(rng.integers(0, 3, 16))
    opt = tg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(steps):
        loss = tg.nn.functional.cross_entropy(model(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.numpy().copy() for p in model.parameters()]


def _evaluate_forever(stop):
    model = tg.nn.Linear(6, 3)
    x = tg.Tensor(np.ones((4, 6), np.float32))
    while not stop.is_set():
        with tg.no_grad():
            assert not tg.is_grad_enabled()
            assert not model(x).requires_grad


def test_two_threads_train_while_a_third_evaluates_under_no_grad():
    want = {seed: _train(seed) for seed in (1, 2)}
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(10):
            got, errors, stop = {}, [], threading.Event()

            def run(seed):
                try:
                    got[seed] = _train(seed)
                except BaseException as e:  # noqa: BLE001 (reported below)
                    errors.append(e)

            evaluator = threading.Thread(target=_evaluate_forever, args=(stop,))
            trainers = [threading.Thread(target=run, args=(s,)) for s in (1, 2)]
            evaluator.start()
            for t in trainers:
                t.start()
            for t in trainers:
                t.join()
            stop.set()
            evaluator.join()
            assert not errors, errors
            for seed in (1, 2):
                for a, b in zip(got[seed], want[seed]):
                    np.testing.assert_array_equal(a, b)
    finally:
        sys.setswitchinterval(interval)
    assert tg.is_grad_enabled()


def test_grad_mode_set_in_one_thread_is_not_seen_in_another():
    seen = []
    with tg.no_grad():
        t = threading.Thread(target=lambda: seen.append(tg.is_grad_enabled()))
        t.start()
        t.join()
        assert not tg.is_grad_enabled()
    assert seen == [True]


def test_a_decorated_recursive_function_restores_grad_mode():
    @tg.no_grad()
    def depth(n):
        assert not tg.is_grad_enabled()
        return 0 if n == 0 else 1 + depth(n - 1)

    assert depth(5) == 5
    assert tg.is_grad_enabled()


def test_managers_nest_and_one_instance_re_enters():
    off, on = tg.no_grad(), tg.enable_grad()
    with off:
        with on:
            assert tg.is_grad_enabled()
            with off:  # the same instance again, while it is active
                assert not tg.is_grad_enabled()
            assert tg.is_grad_enabled()
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()
    with tg.inference_mode():
        assert not tg.is_grad_enabled()
        with tg.set_grad_enabled(True):
            assert tg.is_grad_enabled()
    anomaly = tg.detect_anomaly()
    with anomaly:
        with anomaly:
            pass
        x = tg.Tensor([0.0], requires_grad=True)
        with pytest.raises(FloatingPointError):
            (x / x).sum()  # 0/0 is still caught: the inner exit did not switch anomaly mode off


def test_anomaly_mode_is_off_after_the_managers():
    from tinygrad_edu.debug import ANOMALY
    from tinygrad_edu.tensor import _GradMode
    with tg.detect_anomaly():
        with tg.detect_anomaly():
            pass
        assert _GradMode.hooks == (ANOMALY,)
    assert _GradMode.hooks == ()


# ---- errors keep the user's line -------------------------------------------------------------
class BadForward(tg.Function):
    def forward(ctx, x):
        return x.reshape(7, 7)  # the user's line that fails

    def backward(ctx, gy, y):
        return gy


def test_an_error_in_a_custom_forward_keeps_the_users_line():
    with pytest.raises(ValueError, match="BadForward with input shapes \\(3,\\)") as info:
        BadForward.apply(tg.Tensor([1.0, 2.0, 3.0]))
    text = "".join(traceback.format_exception(info.value))
    assert "return x.reshape(7, 7)  # the user's line that fails" in text


def test_an_error_in_an_in_place_op_keeps_numpys_error_chained():
    x = tg.Tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="\\+= on a tensor of shape \\(2, 3\\)") as info:
        x += np.ones((4, 3))
    assert isinstance(info.value.__cause__, ValueError)
    assert (x.numpy() == 0).all() and x._version[0] == 0


@pytest.mark.parametrize("result, pattern", [
    (lambda x: [1.0, 2.0], "returned a list; forward must return one NumPy or CuPy array"),
    (lambda x: tg.Tensor(x), "returned a Tensor \\(return its .data\\)"),
    (lambda x: None, "returned a NoneType"),
])
def test_a_forward_must_return_an_array(result, pattern):
    class Op(tg.Function):
        def forward(ctx, x):
            return result(x)

    with pytest.raises(TypeError, match="Op.forward " + pattern):
        Op.apply(tg.Tensor([1.0, 2.0], requires_grad=True))


# ---- PyTorch's names -------------------------------------------------------------------------
def test_size_numel_dim():
    x = tg.Tensor(np.zeros((2, 3, 4)))
    assert x.size() == (2, 3, 4) and x.size(1) == 3 and x.size(-1) == 4
    assert x.numel() == 24 and x.dim() == 3 and tg.Tensor(1.0).size() == ()


def test_max_with_dim_returns_values_and_indices():
    x = tg.Tensor([[1.0, 5.0, 5.0], [4.0, 0.0, 2.0]], requires_grad=True)
    out = x.max(1)
    values, indices = out
    assert out.values is values and out.indices is indices
    np.testing.assert_array_equal(values.numpy(), [5.0, 4.0])
    np.testing.assert_array_equal(indices.numpy(), [1, 0])
    assert indices.dtype == np.int64
    values.sum().backward()  # PyTorch: the gradient goes to the index returned, ties included
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 1, 0], [1, 0, 0]])
    m = tg.min(x, dim=0, keepdim=True)
    np.testing.assert_array_equal(m.values.numpy(), [[1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(m.indices.numpy(), [[0, 1, 1]])
    assert isinstance(x.max(), tg.Tensor) and x.max().item() == 5.0
    np.testing.assert_array_equal(x.max(axis=1).numpy(), [5.0, 4.0])  # NumPy's keyword: values
    np.testing.assert_array_equal(tg.max(x, tg.Tensor(3.0)).numpy(), [[3, 5, 5], [4, 3, 3]])
    scalar = tg.Tensor(2.0).max(0)
    assert scalar.values.item() == 2.0 and scalar.indices.item() == 0


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_max_along_dim_matches_numpy_and_passes_gradcheck(data):
    shape = data.draw(tst.shapes(min_dims=1, max_dims=3, max_side=3))
    x = tg.Tensor(data.draw(tst.arrays(shape, domain="distinct")), requires_grad=True)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    keep = data.draw(st.booleans())
    for fn, ref, arg in ((tg.max, np.max, np.argmax), (tg.min, np.min, np.argmin)):
        values, indices = fn(x, dim, keep)
        np.testing.assert_array_equal(values.numpy(), ref(x.numpy(), axis=dim, keepdims=keep))
        want = arg(x.numpy(), axis=dim)
        np.testing.assert_array_equal(indices.numpy(),
                                      np.expand_dims(want, dim) if keep else want)
        tg.gradcheck(lambda t: fn(t, dim, keep).values, [x])


def test_amax_amin_and_empty_tensors():
    x = tg.Tensor(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(x.amax(1).numpy(), [2, 5])
    np.testing.assert_array_equal(x.amin(dim=0, keepdim=True).numpy(), [[0, 1, 2]])
    empty = tg.Tensor(np.zeros((0, 5), np.float32), requires_grad=True)
    assert empty.amax(1).shape == (0,) and empty.max(1).values.shape == (0,)
    assert empty.max(axis=1).shape == (0,) and empty.softmax(1).shape == (0, 5)
    assert empty.log_softmax(-1).shape == (0, 5)
    empty.amax(1).sum().backward()
    assert empty.grad.shape == (0, 5)
    for fn in (lambda: empty.amax(0), lambda: empty.max(), lambda: empty.max(0)):
        with pytest.raises(ValueError, match="empty"):
            fn()


def test_clone_contiguous_cpu_dot_masked_fill():
    x = tg.Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    c = x.clone()
    assert c.data is not x.data and c.grad_fn is not None
    assert x.contiguous() is x
    t = x.T.contiguous()
    assert t.data.flags.c_contiguous and t.tolist() == [[1, 3], [2, 4]]
    assert x.cpu() is x and x.cpu().device == "cpu"
    v = tg.Tensor([1.0, 2.0], requires_grad=True)
    assert tg.dot(v, v).item() == 5.0 and v.dot(v).shape == ()
    with pytest.raises(ValueError, match="dot: needs two 1-D tensors of one length"):
        tg.dot(v, x)
    filled = x.masked_fill(tg.Tensor([True, False]), -1.0)
    assert filled.tolist() == [[-1, 2], [-1, 4]]
    (filled * tg.Tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    assert x.grad.tolist() == [[0, 2], [0, 4]]
    with pytest.raises(ValueError, match="mask of shape \\(3,\\) does not broadcast"):
        x.masked_fill(tg.Tensor([True, False, True]), 0.0)
    with pytest.raises(TypeError, match="mask must be bool"):
        x.masked_fill(tg.Tensor([1, 0]), 0.0)
    np.testing.assert_allclose(x.softmax(1).numpy().sum(1), [1, 1], rtol=1e-6)
    np.testing.assert_allclose(x.log_softmax(1).exp().numpy().sum(1), [1, 1], rtol=1e-6)


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_new_differentiable_methods_pass_gradcheck(data):
    shape = data.draw(tst.shapes(min_dims=1, max_dims=3, max_side=3))
    x = tg.Tensor(data.draw(tst.arrays(shape)), requires_grad=True)
    mask = data.draw(st.lists(st.booleans(), min_size=shape[-1], max_size=shape[-1]))
    tg.gradcheck(lambda t: t.clone(), [x])
    tg.gradcheck(lambda t: t.T.contiguous(), [x])
    tg.gradcheck(lambda t: t.masked_fill(tg.Tensor(mask), 0.5), [x])
    flat = x.detach().reshape(-1).requires_grad_()
    tg.gradcheck(lambda a, b: tg.dot(a, b), [flat, (flat * 2).detach().requires_grad_()])


def test_dlpack_shares_memory_both_ways():
    t = tg.Tensor([1.0, 2.0, 3.0])
    a = np.from_dlpack(t)
    a[0] = 9.0
    assert t.tolist() == [9.0, 2.0, 3.0]
    assert t.__dlpack_device__() == (1, 0)
    b = np.arange(4.0)
    u = tg.from_dlpack(b)
    u.data[1] = -1.0
    assert b[1] == -1.0
    with pytest.raises(RuntimeError, match="requires grad.*detach"):
        np.from_dlpack(tg.Tensor([1.0], requires_grad=True))


def test_every_public_subpackage_is_reachable_after_import():
    code = ("import tinygrad_edu as tg\n"
            "print(tg.optim.SGD, tg.optim.lr_scheduler.StepLR, tg.data.DataLoader, tg.nn.F.relu,"
            " tg.nn.init.zeros_, tg.data.load_mnist, tg.training.fit, tg.testing,"
            " tg.viz.pp)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
