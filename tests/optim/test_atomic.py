"""Optimizer.step and Optimizer.load_state_dict change all or nothing.

Each error test trains a little (so momentum buffers and step counts exist), breaks one thing,
and checks the message and that every parameter, all optimizer state and every hyperparameter
are bit-identical afterwards.
"""
import copy

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_edu as tg
from tinygrad_edu import optim

RULES = [(optim.SGD, dict(lr=0.1, momentum=0.9)),
         (optim.RMSprop, dict(momentum=0.5, centered=True)),
         (optim.Adam, dict(amsgrad=True)),
         (optim.AdamW, dict()),
         (optim.Adagrad, dict()),
         (optim.Adadelta, dict())]
IDS = [cls.__name__ for cls, _ in RULES]
SHAPES = [(2, 3), (3,), (), (4, 1)]  # a 0-d parameter too


def set_grads(ps, seed=0):
    rng = np.random.default_rng(seed)
    for p in ps:
        p.grad = tg.Tensor._wrap(rng.standard_normal(p.shape))


def trained(cls, kwargs, steps=2):
    """Four float64 parameters in two groups, after ``steps`` steps."""
    rng = np.random.default_rng(1)
    ps = [tg.Tensor(rng.standard_normal(s), requires_grad=True) for s in SHAPES]
    opt = cls([{"params": ps[:2]}, {"params": ps[2:]}], **kwargs)
    for s in range(steps):
        set_grads(ps, s)
        opt.step()
    return ps, opt


def snapshot(ps, opt):
    return ([p.data.copy() for p in ps], copy.deepcopy([opt.state.get(p) for p in ps]),
            [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups])


def assert_unchanged(before, ps, opt):
    params, states, groups = before
    for a, p in zip(params, ps):
        assert a.dtype == p.dtype and np.array_equal(a, p.data)
    assert len(opt.state) == sum(s is not None for s in states)
    for s, p in zip(states, ps):
        if s is None:
            assert p not in opt.state
            continue
        assert set(s) == set(opt.state[p])
        for k, v in s.items():
            w = opt.state[p][k]
            assert type(v) is type(w) and np.array_equal(v, w), k
            assert getattr(v, "dtype", None) == getattr(w, "dtype", None), k
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == groups


class FakeGpuArray:
    """Enough of a CuPy array for Tensor.device to say "cuda" (no GPU needed)."""

    def __init__(self, like):
        self.shape, self.dtype, self.ndim = like.shape, like.dtype, like.ndim


BAD_GRADS = {
    "shape": (lambda p: tg.Tensor._wrap(np.ones(p.shape + (2,))), r"gradient of shape \("),
    "dtype": (lambda p: tg.Tensor._wrap(np.ones(p.shape, np.float32)), "dtype float32"),
    "device": (lambda p: tg.Tensor._wrap(FakeGpuArray(p.data)), "on cuda"),
    "not a Tensor": (lambda p: np.ones(p.shape), "is a ndarray, not a Tensor"),
}


# ---- step ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(BAD_GRADS))
@pytest.mark.parametrize("cls, kwargs", RULES, ids=IDS)
@given(bad=st.integers(0, len(SHAPES) - 1), fresh=st.sampled_from([None, 3]))
def test_a_bad_gradient_anywhere_changes_nothing(cls, kwargs, kind, bad, fresh):
    ps, opt = trained(cls, kwargs)
    if fresh is not None:  # a parameter with no state yet must not get one either
        opt.state.pop(ps[fresh])
    set_grads(ps, 5)
    make, match = BAD_GRADS[kind]
    ps[bad].grad = make(ps[bad])
    before = snapshot(ps, opt)
    versions = [p._version[0] for p in ps]
    with pytest.raises(ValueError, match=f"parameter {bad % 2} of group {bad // 2}.*{match}"):
        opt.step()
    assert_unchanged(before, ps, opt)
    assert [p._version[0] for p in ps] == versions


@pytest.mark.parametrize("cls, kwargs", RULES, ids=IDS)
def test_a_bad_hyperparameter_in_a_later_group_changes_nothing(cls, kwargs):
    ps, opt = trained(cls, kwargs)
    set_grads(ps, 5)
    opt.param_groups[1]["lr"] = -1.0  # e.g. a hand edit, or a schedule gone wrong
    before = snapshot(ps, opt)
    with pytest.raises(ValueError, match=r"step: group 1: .*invalid lr -1.0.*nothing was changed"):
        opt.step()
    assert_unchanged(before, ps, opt)
    del opt.param_groups[1]["lr"]
    before = snapshot(ps, opt)
    with pytest.raises(ValueError, match=r"group 1 has no \['lr'\]"):
        opt.step()
    assert_unchanged(before, ps, opt)


def test_state_that_no_longer_fits_is_refused_before_any_update():
    ps, opt = trained(optim.RMSprop, dict())
    set_grads(ps, 5)
    opt.param_groups[1]["momentum"] = 0.9  # the state was made without a momentum buffer
    before = snapshot(ps, opt)
    with pytest.raises(ValueError, match="parameter 0 of group 1 has no 'momentum_buffer'"):
        opt.step()
    assert_unchanged(before, ps, opt)
    opt.param_groups[1]["momentum"] = 0.0
    opt.state[ps[3]]["square_avg"] = opt.state[ps[3]]["square_avg"].astype(np.float32)
    before = snapshot(ps, opt)
    with pytest.raises(ValueError, match="'square_avg' is float32 on cpu, the parameter float64"):
        opt.step()
    assert_unchanged(before, ps, opt)


def test_a_gradient_in_an_ndarray_subclass_is_on_the_cpu():
    """The device is compared, not the array's exact type (a memmap or a subclass is fine)."""
    class Sub(np.ndarray):
        pass

    p = tg.Tensor(np.ones(3), requires_grad=True)
    p.grad = tg.Tensor._wrap(np.full(3, 2.0).view(Sub))
    optim.SGD([p], lr=0.5).step()
    np.testing.assert_array_equal(p.data, [0.0, 0.0, 0.0])


@pytest.mark.parametrize("cls, kwargs", RULES + [(optim.RMSprop, dict()),
                                                 (optim.Adam, dict())], ids=IDS + ["RMSprop-0",
                                                                                   "Adam-0"])
def test_declared_state_names_match_what_the_rule_keeps(cls, kwargs):
    ps, opt = trained(cls, kwargs, steps=1)
    group = opt.param_groups[0]
    keeps = set(opt.state[ps[0]])
    assert set(opt.required_state(group)) <= keeps
    assert keeps <= set(opt.state_arrays) | set(opt.state_counters)


# ---- load_state_dict ----------------------------------------------------------------------------
def _drop(key):
    return lambda sd: sd["state"][1].pop(key)


def _set(key, value):
    return lambda sd: sd["state"][1].__setitem__(key, value)


BAD_STATE = [
    (optim.Adam, dict(), _drop("exp_avg_sq"), "parameter 1 has no 'exp_avg_sq'"),
    (optim.Adam, dict(), _drop("step"), "parameter 1 has no 'step'"),
    (optim.Adam, dict(), lambda sd: sd["param_groups"][0].update(amsgrad=True),
     "parameter 1 has no 'max_exp_avg_sq'"),  # the loaded settings need a buffer it lacks
    (optim.Adam, dict(), _set("momentum_buffer", np.zeros(3)), "unknown 'momentum_buffer'"),
    (optim.Adam, dict(), _set("exp_avg", np.zeros((3, 1))), r"'exp_avg' has shape \(3, 1\)"),
    (optim.Adam, dict(), _set("exp_avg", np.zeros(3, complex)), "'exp_avg' has dtype complex128"),
    (optim.Adam, dict(), _set("exp_avg", [0.0, 0.0, 0.0]), "'exp_avg' is a list, not an array"),
    (optim.Adam, dict(), _set("step", -1), "'step' is -1, not an int >= 0"),
    (optim.Adam, dict(), _set("step", 2.5), "'step' is 2.5"),
    (optim.Adam, dict(), lambda sd: sd["state"].__setitem__(1, [1, 2]), "is a list, not a dict"),
    (optim.Adam, dict(), lambda sd: sd["state"].__setitem__("9", {}), "parameter '9', which no"),
    (optim.Adam, dict(), lambda sd: sd["state"].__setitem__("1", {}), "two states for parameter 1"),
    (optim.Adam, dict(), lambda sd: sd["param_groups"][1].update(params=[2, 2]), "listed twice"),
    (optim.Adam, dict(), lambda sd: sd["param_groups"][1].update(params=["x", 3]), "not an int"),
    (optim.Adam, dict(), lambda sd: sd["param_groups"][0].update(betas=[0.9, 0.99, 0.5]),
     "invalid betas"),
    (optim.Adam, dict(), lambda sd: sd["param_groups"][0].update(lr="fast"), "invalid lr"),
    (optim.Adam, dict(), lambda sd: sd.update(param_groups=[1, 2]), "list of dicts"),
    (optim.Adam, dict(), lambda sd: sd.update(state=[]), "'state' must be a dict"),
    (optim.SGD, dict(lr=0.1, momentum=0.9), _set("momentum_buffer", np.zeros(4)),
     r"'momentum_buffer' has shape \(4,\)"),
    (optim.SGD, dict(lr=0.1, momentum=0.9), _set("step", 3), "unknown 'step'"),
    (optim.RMSprop, dict(centered=True), _drop("grad_avg"), "has no 'grad_avg'"),
    (optim.Adadelta, dict(), _drop("acc_delta"), "has no 'acc_delta'"),
    (optim.Adagrad, dict(), _set("sum", np.zeros((2, 3))), r"'sum' has shape \(2, 3\)"),
]


@pytest.mark.parametrize("cls, kwargs, corrupt, match", BAD_STATE,
                         ids=[f"{i}-{case[0].__name__}" for i, case in enumerate(BAD_STATE)])
def test_bad_state_is_refused_naming_the_key_and_changes_nothing(cls, kwargs, corrupt, match):
    ps, opt = trained(cls, kwargs)  # parameter 1 has shape (3,)
    sd = opt.state_dict()
    for group in sd["param_groups"]:
        group["lr"] = 0.5  # would be applied if loading went ahead
    for entry in sd["state"].values():
        for k, v in entry.items():
            if hasattr(v, "shape"):
                v += 1.0
    corrupt(sd)
    target, target_opt = trained(cls, kwargs, steps=3)
    before = snapshot(target, target_opt)
    for check in (target_opt._validate_state_dict, target_opt.load_state_dict):
        with pytest.raises(ValueError, match=match):
            check(sd)
        assert_unchanged(before, target, target_opt)


def test_validating_a_good_state_dict_changes_nothing_and_loading_applies_it():
    ps, opt = trained(optim.Adam, dict(lr=0.01))
    sd = opt.state_dict()
    sd["param_groups"][0]["lr"] = 0.5
    sd["state"] = {str(k): v for k, v in sd["state"].items()}  # as a JSON-like format gives it
    sd["state"]["1"]["step"] = np.array(2)
    target, target_opt = trained(optim.Adam, dict(lr=0.01), steps=1)
    before = snapshot(target, target_opt)
    target_opt._validate_state_dict(sd)
    assert_unchanged(before, target, target_opt)
    target_opt.load_state_dict(sd)
    assert target_opt.param_groups[0]["lr"] == 0.5
    assert target_opt.state[target[1]]["step"] == 2
    assert type(target_opt.state[target[1]]["step"]) is int


@pytest.mark.parametrize("cls, kwargs", RULES, ids=IDS)
def test_a_0d_parameter_resumes_bit_exactly(cls, kwargs, tmp_path):
    """0-d state arrays stay arrays when loaded (they used to become Python floats, which the
    in-place update then never changed)."""
    def fresh():
        p = tg.Tensor(np.array(1.5), requires_grad=True)
        return p, cls([p], **kwargs)

    def train(p, opt, seeds):
        for s in seeds:
            p.grad = tg.Tensor._wrap(np.array(np.sin(s + 1.0) + p.data))
            opt.step()

    p, opt = fresh()
    train(p, opt, range(6))
    want = p.data.copy()
    p, opt = fresh()
    train(p, opt, range(3))
    tg.save({"p": p.data, "opt": opt.state_dict()}, tmp_path / "ckpt")
    state = tg.load(tmp_path / "ckpt")
    p, opt = fresh()
    p.data[...] = state["p"]
    opt.load_state_dict(state["opt"])
    train(p, opt, range(3, 6))
    assert p.data.tobytes() == want.tobytes()
