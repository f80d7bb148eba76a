"""Freezing for transfer learning: Module.requires_grad_, what backward and the ops skip, and
optimizers holding frozen parameters and parameter groups with their own learning rates."""
import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import nn, optim
from tinygrad_edu.optim.lr_scheduler import StepLR

RNG = np.random.default_rng(0)
X = tg.Tensor(RNG.standard_normal((4, 1, 4, 4)).astype(np.float32))
LABELS = tg.Tensor(np.array([0, 1, 2, 1]))


def model():
    """A body (conv, BN, ReLU) and a head (flatten, linear), as in fine-tuning."""
    tg.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU())
    head = nn.Sequential(nn.Flatten(), nn.Linear(32, 3))
    return body, head, nn.Sequential(body, head)


def loss_of(net):
    return nn.functional.cross_entropy(net(X), LABELS)


def arrays(module):
    return [p.numpy().copy() for p in module.parameters()]


def test_requires_grad_sets_every_parameter_and_returns_self():
    body, head, net = model()
    assert body.requires_grad_(False) is body
    assert [p.requires_grad for p in net.parameters()] == [False] * 4 + [True] * 2
    assert net.num_parameters(trainable_only=True) == 32 * 3 + 3
    assert all(b.requires_grad is False for b in body.buffers())  # buffers are left alone
    net.requires_grad_()
    assert all(p.requires_grad for p in net.parameters())


def test_requires_grad_refuses_integer_parameters_and_changes_nothing():
    layer = nn.Linear(2, 2)
    layer.steps = nn.Parameter(np.array([3]), requires_grad=False)
    layer.requires_grad_(False)
    with pytest.raises(TypeError, match=r"Linear.requires_grad_: only floating-point parameters "
                                        r"can require gradients, not steps \(int64\)"):
        layer.requires_grad_(True)
    assert [p.requires_grad for p in layer.parameters()] == [False, False, False]


def test_frozen_parameters_get_no_gradient_and_the_body_records_no_graph():
    body, head, net = model()
    body.requires_grad_(False)
    features = body(X)
    assert not features.requires_grad and features.grad_fn is None  # nothing on the tape
    loss_of(net).backward()
    assert all(p.grad is None for p in body.parameters())
    assert all(p.grad is not None for p in head.parameters())


def test_conv2d_with_a_frozen_weight_skips_the_weight_gradient(monkeypatch):
    """A frozen layer behind a trainable one: backward needs dx, not dw, so the im2col of the
    weight gradient is never made (it is when the weight trains)."""
    from tinygrad_edu.ops import cpu_kernels
    made, real = [], cpu_kernels.im2col

    def counted(*args):
        made.append(1)
        return real(*args)

    monkeypatch.setattr(cpu_kernels, "im2col", counted)
    x = tg.Tensor(RNG.standard_normal((2, 3, 5, 5)), requires_grad=True)
    w = tg.Tensor(RNG.standard_normal((4, 3, 3, 3)))
    for frozen, count in ((True, 0), (False, 1)):
        w.requires_grad = not frozen
        y = nn.functional.conv2d(x, w).sum()
        made.clear()
        y.backward()
        assert len(made) == count and (w.grad is None) == frozen


def test_linear_with_a_frozen_weight_does_one_matmul_in_backward(monkeypatch):
    # counted on the recorded backward (create_graph=True), whose products are Tensor matmuls;
    # a plain backward takes the same branches on arrays (same gradients, checked below)
    real, calls = tg.Tensor.__matmul__, []
    x = tg.Tensor(RNG.standard_normal((5, 3)).astype(np.float32), requires_grad=True)
    layer = nn.Linear(3, 2)
    y = layer(x).sum()
    monkeypatch.setattr(tg.Tensor, "__matmul__", lambda a, b: calls.append(1) or real(a, b))
    layer.requires_grad_(False)
    y.backward(retain_graph=True, create_graph=True)
    assert len(calls) == 1 and layer.weight.grad is None and x.grad is not None
    recorded = x.grad.numpy().copy()
    x.grad = None
    y.backward(retain_graph=True)
    assert layer.weight.grad is None and np.array_equal(x.grad.numpy(), recorded)
    layer.requires_grad_(True)  # gy @ w and gy^T @ x
    calls.clear()
    y.backward(retain_graph=True, create_graph=True)
    assert len(calls) == 2 and layer.weight.grad is not None


OPTIMIZERS = [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
    lambda ps: optim.Adam(ps, lr=0.1, weight_decay=0.1),
    lambda ps: optim.AdamW(ps, lr=0.1),
    lambda ps: optim.RMSprop(ps, lr=0.1, momentum=0.5, weight_decay=0.1),
    lambda ps: optim.Adagrad(ps, lr=0.1, weight_decay=0.1),
    lambda ps: optim.Adadelta(ps, weight_decay=0.1),
]
IDS = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta"]


@pytest.mark.parametrize("make", OPTIMIZERS, ids=IDS)
def test_an_optimizer_may_hold_frozen_parameters_and_never_moves_them(make):
    body, head, net = model()
    body.requires_grad_(False)
    frozen, trained = arrays(body), arrays(head)
    opt = make(net.parameters())  # PyTorch's way: all parameters, some frozen
    for _ in range(2):
        opt.zero_grad()
        loss_of(net).backward()
        opt.step()
    for p, old in zip(body.parameters(), frozen):
        np.testing.assert_array_equal(p.numpy(), old)  # weight decay did not move them
    assert all(p not in opt.state for p in body.parameters())
    assert not any(np.array_equal(p.numpy(), old) for p, old in zip(head.parameters(), trained))


@pytest.mark.parametrize("set_to_none", [True, False])
@pytest.mark.parametrize("make", OPTIMIZERS, ids=IDS)
def test_a_parameter_frozen_after_the_optimizer_was_made_is_skipped(make, set_to_none):
    body, head, net = model()
    opt = make(net.parameters())
    loss_of(net).backward()
    opt.step()  # everything trains once: momentum and other state exist for the body too
    body.requires_grad_(False)
    frozen = arrays(body)
    opt.zero_grad(set_to_none=set_to_none)
    assert all(p.grad is None for p in body.parameters())  # even with set_to_none=False
    loss_of(net).backward()
    opt.step()
    for p, old in zip(body.parameters(), frozen):
        np.testing.assert_array_equal(p.numpy(), old)


def test_non_leaf_integer_and_repeated_parameters_are_still_refused():
    body, head, net = model()
    body.requires_grad_(False)
    opt = optim.SGD(head.parameters(), lr=0.1)
    groups = [dict(g, params=list(g["params"])) for g in opt.param_groups]
    frozen = body[0].weight
    for group, match in [({"params": [frozen, frozen]}, "appears more than once"),
                         ({"params": head.parameters()}, "appears more than once"),
                         ({"params": [head[1].weight * 2]}, "is not a leaf"),
                         ({"params": [tg.Tensor(np.array([1, 2]))]}, "dtype int64")]:
        with pytest.raises(ValueError, match=match):
            opt.add_param_group(group)
        assert opt.param_groups == groups
    opt.add_param_group({"params": body.parameters(), "lr": 0.0})  # frozen: accepted
    assert len(opt.param_groups) == 2


def issue_example():
    """The optimizer of the issue, over a body and a head, and hand-set gradients."""
    body, head = nn.Linear(2, 2), nn.Linear(2, 1)
    opt = optim.SGD([{"params": head.parameters(), "lr": 1e-2}, {"params": body.parameters()}],
                    lr=1e-3, momentum=0.9)
    return body, head, opt


def set_grads(params, k):
    for i, p in enumerate(params):
        p.grad = tg.Tensor(np.full(p.shape, 0.5 * k + 0.25 * i, np.float32))


def test_the_issue_example_moves_each_group_by_its_own_lr():
    body, head, opt = issue_example()
    assert [g["lr"] for g in opt.param_groups] == [1e-2, 1e-3]
    assert [g["momentum"] for g in opt.param_groups] == [0.9, 0.9]
    assert opt.param_groups[0]["params"] == head.parameters()
    assert opt.param_groups[1]["params"] == body.parameters()
    params = head.parameters() + body.parameters()
    start = [p.numpy().astype(np.float64) for p in params]
    lrs = [1e-2, 1e-2, 1e-3, 1e-3]
    scheduler = StepLR(opt, step_size=1, gamma=0.1)
    velocity = [0.0] * 4
    want = list(start)
    for k in range(1, 4):  # v = 0.9 v + g (v = g at first), p = p - lr v; StepLR after step 2
        set_grads(params, k)
        opt.step()
        for i in range(4):
            g = 0.5 * k + 0.25 * i
            velocity[i] = g if k == 1 else 0.9 * velocity[i] + g
            want[i] = want[i] - lrs[i] * velocity[i]
        for p, w in zip(params, want):
            np.testing.assert_allclose(p.numpy(), w, rtol=1e-6, atol=1e-7)
        if k == 2:
            scheduler.step()
            lrs = [lr * 0.1 for lr in lrs]
            np.testing.assert_allclose([g["lr"] for g in opt.param_groups], [1e-3, 1e-4])


def test_state_dict_into_a_fresh_optimizer_gives_bit_identical_steps():
    body, head, opt = issue_example()
    params = head.parameters() + body.parameters()
    for k in (1, 2):
        set_grads(params, k)
        opt.step()
    saved, weights = opt.state_dict(), [p.numpy().copy() for p in params]
    set_grads(params, 3)
    opt.step()
    want = [p.numpy().copy() for p in params]
    with tg.no_grad():
        for p, w in zip(params, weights):
            p.copy_(w)
    fresh = optim.SGD([{"params": head.parameters(), "lr": 0.5}, {"params": body.parameters()}],
                      lr=0.5, momentum=0.0)
    fresh.load_state_dict(saved)
    assert [g["lr"] for g in fresh.param_groups] == [1e-2, 1e-3]
    assert fresh.param_groups[1]["momentum"] == 0.9
    set_grads(params, 3)
    fresh.step()
    for p, w in zip(params, want):
        np.testing.assert_array_equal(p.numpy(), w)
