"""Learning-rate schedules: the lr sequences they produce, resuming, errors."""
import copy
import math

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import optim
from tinygrad_edu.optim import lr_scheduler


def make_optimizer(lrs=(0.1,)):
    groups = [{"params": [tg.Tensor(np.zeros(2), requires_grad=True)], "lr": lr} for lr in lrs]
    return optim.SGD(groups, lr=1.0)


def lr_sequence(scheduler, epochs):
    """The lr of group 0 used in epochs 0, 1, ..., epochs-1 (step() at the end of each)."""
    out = []
    for _ in range(epochs):
        out.append(scheduler.optimizer.param_groups[0]["lr"])
        assert scheduler.get_last_lr()[0] == out[-1]
        scheduler.step()
    return out


@pytest.mark.parametrize("make, expected", [
    (lambda o: lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
     [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025]),
    (lambda o: lr_scheduler.MultiStepLR(o, milestones=[2, 5], gamma=0.1),
     [0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001, 0.001]),
    (lambda o: lr_scheduler.ExponentialLR(o, gamma=0.5),
     [0.1, 0.05, 0.025, 0.0125, 0.00625, 0.003125, 0.0015625, 0.00078125]),
    (lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=4, eta_min=0.02),
     [0.1, 0.02 + 0.08 * (1 + math.cos(math.pi / 4)) / 2, 0.06,
      0.02 + 0.08 * (1 + math.cos(3 * math.pi / 4)) / 2, 0.02,
      0.02 + 0.08 * (1 + math.cos(5 * math.pi / 4)) / 2, 0.06,
      0.02 + 0.08 * (1 + math.cos(7 * math.pi / 4)) / 2]),
    (lambda o: lr_scheduler.LambdaLR(o, lambda epoch: 1.0 / (1 + epoch)),
     [0.1 / k for k in range(1, 9)]),
], ids=["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LambdaLR"])
def test_lr_sequences(make, expected):
    np.testing.assert_allclose(lr_sequence(make(make_optimizer()), 8), expected, rtol=1e-12)


def test_every_group_is_scheduled_from_its_own_base_lr():
    opt = make_optimizer((0.1, 1.0))
    scheduler = lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    scheduler.step()
    scheduler.step()
    assert scheduler.get_last_lr() == [0.025, 0.25]
    assert [g["lr"] for g in opt.param_groups] == [0.025, 0.25]
    assert isinstance(scheduler.get_last_lr()[0], float)


def test_one_lambda_per_group():
    opt = make_optimizer((0.1, 1.0))
    scheduler = lr_scheduler.LambdaLR(opt, [lambda e: 1.0, lambda e: 0.5 ** e])
    scheduler.step()
    assert scheduler.get_last_lr() == [0.1, 0.5]
    with pytest.raises(ValueError, match="2 functions for 1 parameter groups"):
        lr_scheduler.LambdaLR(make_optimizer(), [lambda e: 1.0] * 2)


@pytest.mark.parametrize("make", [
    lambda o: lr_scheduler.StepLR(o, step_size=2, gamma=0.3),
    lambda o: lr_scheduler.MultiStepLR(o, milestones=[1, 4], gamma=0.5),
    lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=5),
    lambda o: lr_scheduler.LambdaLR(o, lambda epoch: 0.9 ** epoch),
], ids=["StepLR", "MultiStepLR", "CosineAnnealingLR", "LambdaLR"])
def test_resume_continues_the_sequence(make):
    expected = lr_sequence(make(make_optimizer((0.1, 0.2))), 8)
    opt = make_optimizer((0.1, 0.2))
    scheduler = make(opt)
    first = lr_sequence(scheduler, 3)
    saved = copy.deepcopy({"optimizer": opt.state_dict(), "scheduler": scheduler.state_dict()})
    assert "optimizer" not in saved["scheduler"] and "lr_lambdas" not in saved["scheduler"]
    opt = make_optimizer((0.1, 0.2))
    scheduler = make(opt)
    opt.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    assert first + lr_sequence(scheduler, 5) == expected


def test_bad_arguments():
    with pytest.raises(ValueError, match="step_size"):
        lr_scheduler.StepLR(make_optimizer(), step_size=0)
    with pytest.raises(ValueError, match="increasing"):
        lr_scheduler.MultiStepLR(make_optimizer(), milestones=[5, 2])
    with pytest.raises(TypeError, match="not an optimizer"):
        lr_scheduler.StepLR([tg.Tensor([1.0])], step_size=1)
    scheduler = lr_scheduler.StepLR(make_optimizer((0.1, 0.2)), step_size=1)
    with pytest.raises(ValueError, match="2 base learning rates.*has 1 groups"):
        lr_scheduler.StepLR(make_optimizer(), step_size=1).load_state_dict(scheduler.state_dict())
