"""Engine semantics: how gradients accumulate, when the graph is kept or freed, deep graphs,
memory, no_grad and detach, tg.grad and higher derivatives, in-place changes, custom Functions.
"""
import gc
import sys
import weakref

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import nn, optim


def leaf(*values):
    return tg.Tensor(np.array(values, dtype=np.float64), requires_grad=True)


def assert_close(t, want, tol=1e-10):
    np.testing.assert_allclose(t.numpy(), want, rtol=tol, atol=tol)


# ---- accumulation -------------------------------------------------------------------------------
def test_square_uses_both_operands():
    x = leaf(1.0, -2.0, 3.0)
    (x * x).sum().backward()
    assert_close(x.grad, [2.0, -4.0, 6.0])


def test_tensor_used_in_many_places_sums_all_paths():
    x = leaf(0.5, -1.0)
    y = x * 2 + x.exp() * x - x  # d/dx = 2 + e^x (1 + x) - 1
    y.sum().backward()
    v = x.numpy()
    assert_close(x.grad, 1 + np.exp(v) * (1 + v))


def test_diamond_graph():
    x = leaf(1.0, 2.0)
    a = x * 3
    (a * a + a).sum().backward()  # d/dx = (2a + 1) * 3
    assert_close(x.grad, (2 * 3 * x.numpy() + 1) * 3)


def test_each_leaf_gets_a_gradient_of_its_own():
    """A leaf's .grad is a writable array that nothing else holds: not another leaf's gradient,
    not a read-only view of a broadcast, not a view of the gradient the caller passed in."""
    a, b = leaf(1.0, 2.0), leaf(3.0, 4.0)
    (a + b).sum().backward()  # Add hands one gradient object (a broadcast view) to both inputs
    a.grad *= 10              # a gradient does not require grad, so this is allowed
    assert_close(b.grad, [1.0, 1.0])
    b.grad.zero_()

    m, v = tg.Tensor(np.zeros((2, 2)), requires_grad=True), leaf(0.0, 0.0, 0.0, 0.0)
    g = tg.Tensor(np.ones(4))
    (m.reshape(4) + v).backward(g)  # m's gradient is g reshaped back: a view of g's array
    g *= 7
    assert_close(m.grad, np.ones((2, 2)))
    assert_close(v.grad, np.ones(4))


def test_two_backward_calls_accumulate_and_none_resets():
    x = leaf(1.0, 2.0)
    (x * x).sum().backward()
    (x * 3).sum().backward()
    assert_close(x.grad, [2 + 3, 4 + 3])
    x.grad = None
    (x * 3).sum().backward()
    assert_close(x.grad, [3.0, 3.0])


def test_module_and_optimizer_zero_grad():
    layer = nn.Linear(3, 2)
    opt = optim.SGD(layer.parameters(), lr=0.1)
    layer(tg.ones(4, 3)).sum().backward()
    assert all(p.grad is not None for p in layer.parameters())
    layer.zero_grad()
    assert all(p.grad is None for p in layer.parameters())
    layer(tg.ones(4, 3)).sum().backward()
    opt.zero_grad()
    assert all(p.grad is None for p in layer.parameters())


# ---- retain_graph, freed graphs, deep graphs, memory --------------------------------------------
def test_retain_graph_allows_a_second_backward_then_the_graph_is_freed():
    x = leaf(1.0, 2.0)
    loss = (x.tanh() * x).sum()
    loss.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    loss.backward()  # this one frees the graph
    assert_close(x.grad, 2 * first)
    with pytest.raises(RuntimeError, match="a second time.*retain_graph=True"):
        loss.backward()


def test_ten_thousand_op_chain():
    assert sys.getrecursionlimit() < 10_000  # so a recursive traversal would fail here
    x = leaf(1.0)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    assert_close(x.grad, [1.0001 ** 10_000], tol=1e-9)


def test_intermediates_are_freed_by_backward_and_by_dropping_the_output():
    """Edges point backwards only, so reference counting alone frees a graph (no cycle GC)."""
    gc.disable()
    try:
        x = leaf(1.0, 2.0)
        h = x.exp()
        loss = (h * 2).sum()
        alive = weakref.ref(h)
        del h
        assert alive() is not None  # the graph of loss still holds it
        loss.backward()
        assert alive() is None      # backward freed the graph

        h = x.exp()
        loss = (h * 2).sum()
        alive = weakref.ref(h)
        del h
        loss.backward(retain_graph=True)
        assert alive() is not None  # kept for another backward...
        del loss
        assert alive() is None      # ...until nobody holds the output
    finally:
        gc.enable()


# ---- no_grad, detach ----------------------------------------------------------------------------
def test_no_grad_context_records_nothing_and_restores_the_mode():
    x = leaf(1.0, 2.0)
    with tg.no_grad():
        assert not tg.is_grad_enabled()
        y = x * 2
        with tg.enable_grad():
            z = x * 2
    assert tg.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None
    with pytest.raises(ZeroDivisionError), tg.no_grad():
        1 / 0
    assert tg.is_grad_enabled()


def test_no_grad_decorator():
    @tg.no_grad()
    def double(t):
        return t * 2

    x = leaf(1.0)
    y = double(x)
    assert not y.requires_grad and y.grad_fn is None
    assert tg.is_grad_enabled()


def test_detach_shares_data_and_cuts_the_tape():
    x = leaf(1.0, 2.0)
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None
    assert np.shares_memory(d.numpy(), x.numpy())
    (d * x).sum().backward()  # d is a constant here: dx = d, not 2x
    assert_close(x.grad, x.numpy())


# ---- backward() on non-scalars, tg.grad ---------------------------------------------------------
def test_backward_of_a_non_scalar_needs_a_gradient():
    x = leaf(1.0, 2.0)
    y = x * x
    with pytest.raises(RuntimeError, match=r"one-element.*shape \(2,\)"):
        y.backward()
    y.backward(gradient=tg.Tensor(np.array([10.0, 100.0])))
    assert_close(x.grad, [20.0, 400.0])


def test_grad_returns_gradients_without_touching_dot_grad():
    x, w = leaf(1.0, 2.0), leaf(3.0, -1.0)
    gx, gw = tg.grad((x * w).sum(), [x, w])
    assert_close(gx, w.numpy())
    assert_close(gw, x.numpy())
    assert x.grad is None and w.grad is None

    y = x * x
    (gx,) = tg.grad(y, x, grad_outputs=tg.Tensor(np.array([10.0, 100.0])))
    assert_close(gx, [20.0, 400.0])


def test_grad_of_several_outputs_and_unused_inputs():
    x, unused = leaf(1.0, 2.0), leaf(5.0)
    (gx,) = tg.grad([(x * x).sum(), (x * 3).sum()], [x])
    assert_close(gx, 2 * x.numpy() + 3)
    with pytest.raises(ValueError, match="input 1.*not used"):
        tg.grad((x * x).sum(), [x, unused])
    gx, gu = tg.grad((x * x).sum(), [x, unused], allow_unused=True)
    assert gu is None


# ---- higher derivatives -------------------------------------------------------------------------
def test_second_and_third_derivative_of_cube():
    x = leaf(-1.5, 0.5, 2.0)
    (g,) = tg.grad((x ** 3).sum(), x, create_graph=True)
    assert_close(g, 3 * x.numpy() ** 2)
    (h,) = tg.grad(g.sum(), x, create_graph=True)
    assert_close(h, 6 * x.numpy())
    (k,) = tg.grad(h.sum(), x)
    assert_close(k, [6.0, 6.0, 6.0])


def test_second_derivative_of_tanh_through_backward_create_graph():
    x = leaf(-1.0, 0.3, 2.0)
    x.tanh().sum().backward(create_graph=True)
    g = x.grad
    assert g.grad_fn is not None  # the gradient is itself on the tape
    x.grad = None
    g.sum().backward()
    t = np.tanh(x.numpy())
    assert_close(x.grad, -2 * t * (1 - t ** 2))


def test_hessian_vector_product_of_an_mlp_matches_finite_differences():
    rng = np.random.default_rng(0)
    data, target = tg.Tensor(rng.standard_normal((5, 3))), tg.Tensor(rng.standard_normal((5, 1)))
    w1 = tg.Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    w2 = tg.Tensor(rng.standard_normal((4, 1)), requires_grad=True)
    v1, v2 = rng.standard_normal((3, 4)), rng.standard_normal((4, 1))

    def gradient(create_graph=False):
        loss = (((data @ w1).tanh() @ w2 - target) ** 2).mean()
        return tg.grad(loss, [w1, w2], create_graph=create_graph)

    g1, g2 = gradient(create_graph=True)
    hv1, hv2 = tg.grad((g1 * tg.Tensor(v1)).sum() + (g2 * tg.Tensor(v2)).sum(), [w1, w2])

    eps, w1_0, w2_0 = 1e-5, w1.data.copy(), w2.data.copy()
    w1.data, w2.data = w1_0 + eps * v1, w2_0 + eps * v2
    up = [g.numpy() for g in gradient()]
    w1.data, w2.data = w1_0 - eps * v1, w2_0 - eps * v2
    down = [g.numpy() for g in gradient()]
    for hv, u, d in zip([hv1, hv2], up, down):
        np.testing.assert_allclose(hv.numpy(), (u - d) / (2 * eps), rtol=1e-5, atol=1e-8)


def test_gradgradcheck_on_a_composite_function():
    x, w = leaf(0.3, -0.7, 1.2), leaf(0.5, 2.0, -1.0)
    assert tg.gradgradcheck(lambda a, b: (a * b).tanh() * a.exp() / (1 + b * b), [x, w])


# ---- in-place changes ---------------------------------------------------------------------------
def test_in_place_change_of_a_tensor_that_requires_grad_is_refused():
    w = leaf(1.0, 2.0)
    with pytest.raises(RuntimeError, match=r"\+=: in-place change.*no_grad"):
        w += 1
    assert_close(w, [1.0, 2.0])
    with tg.no_grad():  # how an optimizer updates a parameter
        w -= 0.5
    assert_close(w, [0.5, 1.5])


def test_backward_refuses_a_saved_tensor_changed_in_place():
    a, w = tg.Tensor(np.array([1.0, 2.0])), leaf(3.0, 4.0)
    y = a * w  # Mul saves a to compute dy/dw
    a *= 2     # allowed: a does not require grad
    with pytest.raises(RuntimeError, match="input 0 .* of Mul was modified in place"):
        y.sum().backward()


def test_a_view_shares_the_version_of_its_base():
    a, w = tg.Tensor(np.arange(4.0)), leaf(1.0, 2.0, 3.0, 4.0)
    y = a.reshape(2, 2).reshape(4) * w
    a[0] = 10.0  # changes the view that Mul saved, too
    with pytest.raises(RuntimeError, match="modified in place"):
        y.sum().backward()


def test_optimizer_updates_data_in_place_between_steps_but_not_mid_step():
    w = leaf(1.0, -2.0)
    opt = optim.SGD([w], lr=0.25)
    for _ in range(2):  # forward, backward, step: the usual loop works
        opt.zero_grad()
        (w * w).sum().backward()
        opt.step()
    assert_close(w, [0.25, -0.5])  # w <- w - 0.25 * 2w, twice

    loss = (w * w).sum()
    opt.step()  # a step between forward and backward would make the gradient wrong
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


# ---- custom Functions ---------------------------------------------------------------------------
class Softplus(tg.Function):
    """y = log(1 + e^x);  dy/dx = sigmoid(x)."""
    def forward(ctx, x):
        return np.logaddexp(0, x)

    def backward(ctx, gy, y):
        return gy * ctx.inputs[0].sigmoid()


class SoftplusWrongBackward(Softplus):
    def backward(ctx, gy, y):
        return gy * ctx.inputs[0].tanh()  # a plausible slip: tanh for sigmoid


class CubeOnceDifferentiable(tg.Function):
    """y = x^3 with the right first derivative, computed on arrays: a constant of the tape,
    so the second derivative silently comes out 0."""
    def forward(ctx, x):
        return x ** 3

    def backward(ctx, gy, y):
        return gy * tg.Tensor(3 * ctx.inputs[0].data ** 2)


def test_custom_function_forward_backward_and_second_derivative():
    x = leaf(-30.0, -1.0, 0.0, 2.0, 30.0)
    assert_close(Softplus.apply(x), np.log1p(np.exp(x.numpy())))
    assert tg.gradcheck(Softplus.apply, [x])
    assert tg.gradgradcheck(Softplus.apply, [x])


def test_gradcheck_catches_a_wrong_custom_backward():
    x = leaf(-1.0, 0.5, 2.0)
    with pytest.raises(tg.GradcheckError, match="analytic .* numeric"):
        tg.gradcheck(SoftplusWrongBackward.apply, [x])


def test_gradgradcheck_catches_a_backward_that_is_not_differentiable():
    x = leaf(-1.0, 0.5, 2.0)
    assert tg.gradcheck(CubeOnceDifferentiable.apply, [x])  # first derivative: right
    with pytest.raises(tg.GradcheckError):                    # second: 0 instead of 6x
        tg.gradgradcheck(CubeOnceDifferentiable.apply, [x])
