"""Optimizers against golden numbers, resuming from a state dict, input validation.

The toy problem: a 2x3 parameter p starting at P0, gradient g = A * p + B (the loss
sum(A p^2 / 2 + B p)), set by hand as ``p.grad`` before each step. The GOLDEN trajectories (p
after steps 1, 2, 3) were computed once, offline, by a separate NumPy scratch script that writes
each rule out of place in float64 from its published formula (PyTorch's docs, the papers cited
in the docstrings), printed with 12 significant digits (hence rtol 1e-10) and pasted here.
No reference framework runs here.
"""
import copy

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import optim
from tinygrad_edu.backend import device_of, get_xp

P0 = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -0.25]])
A = np.array([[1.0, 2.0, 0.5], [4.0, 0.1, 1.0]])
B = np.array([[0.1, -0.3, 0.0], [0.5, 0.2, -1.0]])

GOLDEN = [
    ('sgd', 'SGD', dict(lr=0.1), [
        [[0.89, -1.57, 0.475], [-0.05, 2.95, -0.125]],
        [[0.791, -1.226, 0.45125], [-0.08, 2.9005, -0.0125]],
        [[0.7019, -0.9508, 0.4286875], [-0.098, 2.851495, 0.08875]],
    ]),
    ('sgd_momentum', 'SGD', dict(lr=0.1, momentum=0.9), [
        [[0.89, -1.57, 0.475], [-0.05, 2.95, -0.125]],
        [[0.692, -0.839, 0.42875], [-0.125, 2.8555, 0.1]],
        [[0.4346, 0.0167, 0.3656875], [-0.1925, 2.721895, 0.3925]],
    ]),
    ('sgd_dampening', 'SGD', dict(lr=0.1, momentum=0.9, dampening=0.5), [
        [[0.89, -1.57, 0.475], [-0.05, 2.95, -0.125]],
        [[0.7415, -1.011, 0.440625], [-0.11, 2.88025, 0.04375]],
        [[0.565775, -0.3918, 0.398671875], [-0.167, 2.79307375, 0.2434375]],
    ]),
    ('sgd_nesterov', 'SGD', dict(lr=0.1, momentum=0.9, nesterov=True), [
        [[0.791, -1.183, 0.4525], [-0.095, 2.905, -0.0125]],
        [[0.53261, -0.32816, 0.3892625], [-0.1583, 2.771305, 0.281125]],
        [[0.2600531, 0.3829568, 0.3157313125], [-0.179162, 2.604469705, 0.59084875]],
    ]),
    ('sgd_weight_decay', 'SGD', dict(lr=0.1, momentum=0.5, weight_decay=0.1), [
        [[0.88, -1.55, 0.47], [-0.05, 2.92, -0.1225]],
        [[0.7132, -0.9695, 0.4268], [-0.1045, 2.8016, 0.054725]],
        [[0.541348, -0.445655, 0.379592], [-0.138905, 2.666368, 0.23731775]],
    ]),
    ('rmsprop', 'RMSprop', dict(lr=0.01, eps=0.01), [
        [[0.908333333333, -1.90227272727, 0.428571428571],
         [-0.0833333333333, 2.91666666667, -0.157407407407]],
        [[0.844842882993, -1.83419207316, 0.378541961497],
         [-0.110014121268, 2.85516637109, -0.093069842268]],
        [[0.79394852988, -1.77915037582, 0.338907653224],
         [-0.119597883903, 2.80398228288, -0.0413405635841]],
    ]),
    ('rmsprop_eps_inside', 'RMSprop', dict(lr=0.01, eps=0.01, eps_inside_sqrt=True), [
        [[0.92600599266, -1.9025991973, 0.475746437496],
         [-0.04472135955, 2.95527864045, -0.171913119056]],
        [[0.869098570415, -1.83432864309, 0.453254048836],
         [-0.0723522121686, 2.91472487219, -0.112724495911]],
        [[0.821625864668, -1.77905701808, 0.432290130543],
         [-0.0902049659866, 2.87735526657, -0.0635927194079]],
    ]),
    ('rmsprop_tutorial', 'RMSprop', dict(lr=0.001, alpha=0.9, eps=1e-06, eps_inside_sqrt=True), [
        [[0.996837735407, -1.99683772319, 0.496837975292],
         [-0.00316221441651, 2.99683778558, -0.246837732459]],
        [[0.994546714215, -1.9945451664, 0.494550821708],
         [-0.00542829941925, 2.99454434003, -0.244546333652]],
        [[0.992629960948, -1.99262636075, 0.492639183041],
         [-0.00731151056896, 2.99262432719, -0.242629075562]],
    ]),
    ('rmsprop_centered', 'RMSprop', dict(lr=0.01, alpha=0.9, eps=0.01, centered=True), [
        [[0.967647058824, -1.96692307692, 0.470588235294], [-0.03125, 2.96875, -0.217532467532]],
        [[0.943098329513, -1.94177096938, 0.448199042472],
         [-0.0517979452055, 2.94457192132, -0.192872285574]],
        [[0.921589728419, -1.91966556622, 0.428685580516],
         [-0.0675922100276, 2.92315486742, -0.171245343955]],
    ]),
    ('rmsprop_momentum_wd', 'RMSprop', dict(lr=0.01, alpha=0.9, momentum=0.5,
                                    weight_decay=0.1, centered=True, eps_inside_sqrt=True), [
        [[0.966666667953, -1.96666666676, 0.466666687243],
         [-0.0333333259259, 2.96666666956, -0.216666667806]],
        [[0.924888065867, -1.92469969702, 0.425361734903],
         [-0.0713040888988, 2.92461070647, -0.174865240456]],
        [[0.882289866666, -1.88161077526, 0.384029723146],
         [-0.10278566694, 2.88129257238, -0.132207179785]],
    ]),
    ('adam', 'Adam', dict(lr=0.1), [
        [[0.900000000909, -1.90000000023, 0.400000004], [-0.099999998, 2.900000002, -0.1500000008]],
        [[0.800361162773, -1.80015242228, 0.301187427874],
         [-0.180304094536, 2.80005776069, -0.0503037279828]],
        [[0.701382446219, -1.70056974862, 0.204871262098],
         [-0.211796473184, 2.70021329708, 0.0488445490372]],
    ]),
    ('adam_amsgrad', 'Adam', dict(lr=0.5, betas=(0.9, 0.5), eps=0.001, amsgrad=True), [
        [[0.500454132607, -1.50011625203, 0.00199203187251],
         [-0.499001996008, 2.50099800399, 0.249600319744]],
        [[0.0349674931161, -0.985261899153, -0.287942805908],
         [-0.279865037689, 1.99522089834, 0.732681975205]],
        [[-0.312169707485, -0.510908815268, -0.345653592154],
         [-0.0322502222158, 1.48058750183, 1.11404325572]],
    ]),
    ('adam_no_amsgrad', 'Adam', dict(lr=0.5, betas=(0.9, 0.5), eps=0.001), [
        [[0.500454132607, -1.50011625203, 0.00199203187251],
         [-0.499001996008, 2.50099800399, 0.249600319744]],
        [[-0.0205676915818, -0.985261899153, -0.407204980303],
         [-0.279865037689, 1.99522089834, 0.770364663633]],
        [[-0.546859852939, -0.439733985709, -0.406995613075],
         [0.0243178598108, 1.47728249645, 1.31919551686]],
    ]),
    ('adam_weight_decay', 'Adam', dict(lr=0.1, weight_decay=0.1), [
        [[0.900000000833, -1.90000000022, 0.400000003333],
         [-0.099999998, 2.90000000125, -0.150000000784]],
        [[0.800365305776, -1.80015303919, 0.301187426493],
         [-0.179133972978, 2.80007399734, -0.0503362558042]],
        [[0.701398913969, -1.70057209812, 0.204871259978],
         [-0.207877096439, 2.70027384775, 0.0487162898555]],
    ]),
    ('adamw', 'AdamW', dict(lr=0.1, weight_decay=0.1), [
        [[0.890000000909, -1.88000000023, 0.395000004], [-0.099999998, 2.870000002, -0.1475000008]],
        [[0.781512229518, -1.76139078386, 0.292338710449],
         [-0.179304094556, 2.74137733489, -0.0463389485119]],
        [[0.674862971878, -1.64429930626, 0.193415613746],
         [-0.20955476929, 2.61417136977, 0.0532487711036]],
    ]),
    ('adagrad', 'Adagrad', dict(lr=0.1), [
        [[0.900000000009, -1.9, 0.40000000004], [-0.09999999998, 2.90000000002, -0.150000000008]],
        [[0.832732720614, -1.83099246665, 0.3375304953],
         [-0.119611613505, 2.83000714179, -0.0822943469296]],
        [[0.779585257907, -1.77551212546, 0.290899176844],
         [-0.123834840396, 2.77321848252, -0.0285568927408]],
    ]),
    ('adagrad_options', 'Adagrad', dict(lr=0.1, lr_decay=0.5, weight_decay=0.1,
                                           initial_accumulator_value=0.1, eps=0.01), [
        [[0.90407423615, -1.90046664395, 0.432718816058],
         [-0.08311059993, 2.90807054719, -0.153674021323]],
        [[0.860242119504, -1.85459310014, 0.399262532896],
         [-0.100160572696, 2.86362117193, -0.109604703484]],
        [[0.833656007405, -1.82669265986, 0.378287979361],
         [-0.107260808197, 2.83613609693, -0.0828631211617]],
    ]),
    ('adadelta', 'Adadelta', dict(), [
        [[0.996837735407, -1.99683772319, 0.496837975292],
         [-0.00316221441651, 2.99683778558, -0.246837732459]],
        [[0.99359774886, -1.99359555872, 0.493603581038],
         [-0.00636691051472, 2.9935943962, -0.243597210375]],
        [[0.990307566351, -1.9903001749, 0.4903264601],
         [-0.00957239262534, 2.99029598823, -0.24030574868]],
    ]),
    ('adadelta_options', 'Adadelta', dict(lr=0.5, rho=0.5, eps=0.001, weight_decay=0.1), [
        [[0.977654832318, -1.97764042437, 0.477883706577],
         [-0.0222717701594, 2.97767417711, -0.227653062674]],
        [[0.952035981881, -1.95191277984, 0.452796916309],
         [-0.0460584956088, 2.95194965667, -0.202021019709]],
        [[0.92408711734, -1.92370203459, 0.425827117739],
         [-0.0688523589365, 2.9236824737, -0.174040329505]],
    ]),
]


def set_grad(p):
    xp = get_xp(p.data)  # numpy or cupy
    p.grad = tg.Tensor(xp.asarray(A, dtype=p.dtype) * p.data + xp.asarray(B, dtype=p.dtype))


def trajectory(opt, p, steps=3):
    out = []
    for _ in range(steps):
        set_grad(p)
        opt.step()
        out.append(p.numpy().copy())
    return out


@pytest.mark.parametrize("name, cls, kwargs, golden", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_first_steps_match_golden(name, cls, kwargs, golden):
    p = tg.Tensor(P0.copy(), requires_grad=True)
    for step, (got, want) in enumerate(zip(trajectory(getattr(optim, cls)([p], **kwargs), p),
                                           golden), 1):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12,
                                   err_msg=f"{name}, step {step}")


def test_eps_placement_matters():
    """The two RMSprop conventions give different steps (same eps), as the golden numbers say."""
    rows = {g[0]: np.array(g[3]) for g in GOLDEN}
    assert np.abs(rows["rmsprop"] - rows["rmsprop_eps_inside"]).max() > 1e-3
    assert np.abs(rows["adam_amsgrad"] - rows["adam_no_amsgrad"]).max() > 1e-2


def test_sgd_momentum_equals_lasagne_form_at_constant_lr():
    """Lasagne: v = mu v - lr g; p += v (Nesterov: p += mu v - lr g). Same path as PyTorch's."""
    for nesterov in (False, True):
        p = tg.Tensor(P0.copy(), requires_grad=True)
        ours = trajectory(optim.SGD([p], lr=0.1, momentum=0.9, nesterov=nesterov), p, steps=5)
        q, v = P0.copy(), np.zeros_like(P0)
        for step in range(5):
            g = A * q + B
            v = 0.9 * v - 0.1 * g
            q = q + (0.9 * v - 0.1 * g if nesterov else v)
            np.testing.assert_allclose(ours[step], q, rtol=1e-12, atol=1e-12)


EVERY_RULE = [(optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
              (optim.RMSprop, dict(momentum=0.5, centered=True, weight_decay=0.01)),
              (optim.RMSprop, dict(eps_inside_sqrt=True)),
              (optim.Adam, dict(amsgrad=True, weight_decay=0.01)),
              (optim.AdamW, dict()),
              (optim.Adagrad, dict(lr_decay=0.1, initial_accumulator_value=0.1)),
              (optim.Adadelta, dict(weight_decay=0.01))]
RULE_IDS = [f"{cls.__name__}-{i}" for i, (cls, _) in enumerate(EVERY_RULE)]


@pytest.mark.parametrize("cls, kwargs", EVERY_RULE, ids=RULE_IDS)
def test_float32_stays_float32(cls, kwargs):
    """Hyperparameters given as float64 NumPy scalars must not promote float32 parameters."""
    kwargs = {k: np.float64(v) if isinstance(v, float) else v for k, v in kwargs.items()}
    if "lr" in kwargs or cls is optim.SGD:
        kwargs["lr"] = np.float64(kwargs.get("lr", 0.01))
    p32 = tg.Tensor(P0.astype(np.float32), requires_grad=True)
    p64 = tg.Tensor(P0.copy(), requires_grad=True)
    opt32, opt64 = cls([p32], **kwargs), cls([p64], **kwargs)
    for got, want in zip(trajectory(opt32, p32), trajectory(opt64, p64)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert p32.dtype == np.float32 and p32.is_leaf and p32.requires_grad
    for value in opt32.state[p32].values():
        assert not hasattr(value, "dtype") or value.dtype == np.float32


def test_zero_grad_and_params_without_grad_are_skipped():
    p, q = (tg.Tensor(P0.copy(), requires_grad=True) for _ in range(2))
    opt = optim.Adam([p, q], lr=0.1)
    set_grad(p)
    opt.step()
    np.testing.assert_array_equal(q.data, P0)  # no gradient: untouched, and no state made
    assert p in opt.state and q not in opt.state
    assert not np.array_equal(p.data, P0)
    opt.zero_grad()
    assert p.grad is None and q.grad is None
    set_grad(p)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.data, 0)
    assert q.grad is None


def test_step_is_off_the_tape_and_invalidates_old_graphs():
    p = tg.Tensor(P0.copy(), requires_grad=True)
    y = (p * p).sum()  # Mul saved p
    opt = optim.SGD([p], lr=0.1)
    set_grad(p)
    opt.step()
    assert p.grad_fn is None and p.requires_grad
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


def test_with_a_real_backward_and_closure():
    p = tg.Tensor(P0.copy(), requires_grad=True)
    opt = optim.SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (tg.Tensor(A / 2) * p * p + tg.Tensor(B) * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(float((A / 2 * P0 ** 2 + B * P0).sum()))
    np.testing.assert_allclose(p.data, GOLDEN[0][3][0], rtol=1e-12)


def test_param_groups_get_their_own_hyperparameters():
    p, q = (tg.Tensor(P0.copy(), requires_grad=True) for _ in range(2))
    opt = optim.SGD([{"params": [p]}, {"params": q, "lr": 0.01, "momentum": 0.9}], lr=0.1)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["momentum"] == 0
    set_grad(p), set_grad(q)
    opt.step()
    np.testing.assert_allclose(p.data, P0 - 0.1 * (A * P0 + B))
    np.testing.assert_allclose(q.data, P0 - 0.01 * (A * P0 + B))


def roundtrip(obj, tmp_path):
    """Through a file with tg.save/tg.load when the serialization module exists, else a copy."""
    if hasattr(tg, "save") and hasattr(tg, "load"):
        tg.save(obj, tmp_path / "checkpoint")
        return tg.load(tmp_path / "checkpoint")
    return copy.deepcopy(obj)


@pytest.mark.parametrize("cls, kwargs", EVERY_RULE, ids=RULE_IDS)
def test_resume_is_bit_exact(cls, kwargs, tmp_path):
    """Train 5 steps, save, rebuild everything, load, train 4 more == 9 steps in one go."""
    def fresh():
        ps = [tg.Tensor(P0.astype(np.float32), requires_grad=True),
              tg.Tensor(P0[::-1].astype(np.float32), requires_grad=True)]
        return ps, cls([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.05}], **kwargs)

    def train(ps, opt, steps):
        for _ in range(steps):
            for p in ps:
                set_grad(p)
            opt.step()

    ps, opt = fresh()
    train(ps, opt, 9)
    uninterrupted = [p.numpy().copy() for p in ps]

    ps, opt = fresh()
    train(ps, opt, 5)
    saved = roundtrip({"params": [p.numpy() for p in ps], "optimizer": opt.state_dict()}, tmp_path)
    train(ps, opt, 2)  # work done after the checkpoint must not leak into it
    ps, opt = fresh()
    for p, data in zip(ps, saved["params"]):
        p.data[...] = data
    opt.load_state_dict(saved["optimizer"])
    train(ps, opt, 4)
    for got, want in zip(ps, uninterrupted):
        np.testing.assert_array_equal(got.data, want)
        assert got.dtype == np.float32


def test_state_dict_layout_and_string_keys():
    p, q = (tg.Tensor(P0.copy(), requires_grad=True) for _ in range(2))
    opt = optim.Adam([{"params": [p]}, {"params": [q], "lr": 0.5}], lr=0.1)
    set_grad(q)
    opt.step()
    sd = opt.state_dict()
    assert sd["param_groups"][1]["params"] == [1] and sd["param_groups"][1]["lr"] == 0.5
    assert list(sd["state"]) == [1] and sd["state"][1]["step"] == 1
    assert set(sd["state"][1]) == {"step", "exp_avg", "exp_avg_sq"}
    # as a JSON-like format would give it back: string keys, lists for tuples, 0-d arrays
    sd["state"] = {str(k): v for k, v in sd["state"].items()}
    sd["param_groups"][0]["betas"] = [0.8, 0.9]
    sd["param_groups"][0]["lr"] = np.array(0.25)
    opt2 = optim.Adam([{"params": [p]}, {"params": [q]}])
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["betas"] == (0.8, 0.9) and opt2.param_groups[0]["lr"] == 0.25
    assert type(opt2.param_groups[0]["lr"]) is float
    assert opt2.state[q]["step"] == 1 and p not in opt2.state


@pytest.mark.parametrize("make, match", [
    (lambda p: optim.SGD([p], lr=-0.1), "learning rate|lr"),
    (lambda p: optim.SGD([p]), "needs a value for \\['lr'\\]"),
    (lambda p: optim.SGD([p], lr=0.1, momentum=-1), "momentum"),
    (lambda p: optim.SGD([p], lr=0.1, nesterov=True), "Nesterov"),
    (lambda p: optim.Adam([p], betas=(0.9, 1.0)), "betas"),
    (lambda p: optim.RMSprop([p], alpha=1.5), "alpha"),
    (lambda p: optim.Adagrad([p], eps=-1), "eps"),
    (lambda p: optim.Adam([{"params": [p], "lr": -1.0}]), "lr"),
    (lambda p: optim.SGD([p, p], lr=0.1), "more than once"),
    (lambda p: optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1), "more than once"),
    (lambda p: optim.SGD([], lr=0.1), "empty"),
    (lambda p: optim.SGD([tg.Tensor([1, 2])], lr=0.1), "dtype int64"),
    (lambda p: optim.SGD([p * 2], lr=0.1), "not a leaf"),
])
def test_bad_arguments_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make(tg.Tensor(P0.copy(), requires_grad=True))


def test_bad_types_raise_type_error():
    p = tg.Tensor(P0.copy(), requires_grad=True)
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(TypeError, match="not a Tensor"):
        optim.SGD([P0], lr=0.1)


def test_gradient_of_wrong_shape_is_reported():
    p = tg.Tensor(P0.copy(), requires_grad=True)
    p.grad = tg.Tensor(np.ones(3))
    with pytest.raises(ValueError, match=r"shape \(2, 3\).*gradient of shape \(3,\)"):
        optim.SGD([p], lr=0.1).step()


def _trained(cls=optim.Adam, n=2, **kwargs):
    ps = [tg.Tensor(P0.copy(), requires_grad=True) for _ in range(n)]
    opt = cls([{"params": ps[:1]}, {"params": ps[1:]}], lr=0.1, **kwargs)
    for p in ps:
        set_grad(p)
    opt.step()
    return ps, opt


@pytest.mark.parametrize("corrupt, match", [
    (lambda sd: sd["param_groups"].pop(), "1 parameter groups.*this optimizer has 2"),
    (lambda sd: sd["param_groups"][1]["params"].append(2), "group 1 has 2 parameters"),
    (lambda sd: sd["state"][1].update(exp_avg=np.zeros(3)), r"exp_avg.*shape \(3,\)"),
    (lambda sd: sd["state"].update({7: {}}), "parameter 7"),
    (lambda sd: sd["param_groups"][0].pop("amsgrad"), "another optimizer"),
    (lambda sd: sd.pop("state"), "keys 'state' and 'param_groups'"),
])
def test_load_mismatch_raises_before_changing_anything(corrupt, match):
    ps, opt = _trained()
    sd = opt.state_dict()
    for group in sd["param_groups"]:
        group["lr"] = 0.5  # would be applied if loading went ahead
    corrupt(sd)
    before = opt.state_dict()
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(sd)
    after = opt.state_dict()
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.1]
    for j in before["state"]:
        for k, v in before["state"][j].items():
            np.testing.assert_array_equal(after["state"][j][k], v)


def test_loading_sgd_state_into_adam_fails():
    _, sgd = _trained(optim.SGD, momentum=0.9)
    _, adam = _trained()
    with pytest.raises(ValueError, match="another optimizer"):
        adam.load_state_dict(sgd.state_dict())


@pytest.mark.gpu
@pytest.mark.skipif(not tg.cuda_available(), reason="needs CuPy and a CUDA GPU")
@pytest.mark.parametrize("cls, kwargs", EVERY_RULE, ids=RULE_IDS)
def test_gpu_matches_cpu(cls, kwargs):
    cpu = tg.Tensor(P0.astype(np.float32), requires_grad=True)
    gpu = tg.Tensor(P0.astype(np.float32), requires_grad=True, device="cuda")
    opt_cpu, opt_gpu = cls([cpu], **kwargs), cls([gpu], **kwargs)
    for got, want in zip(trajectory(opt_gpu, gpu), trajectory(opt_cpu, cpu)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert gpu.device == "cuda" and all(
        device_of(v) == "cuda" for v in opt_gpu.state[gpu].values() if hasattr(v, "shape"))
    sd = opt_gpu.state_dict()  # a GPU state dict loads into a CPU optimizer and vice versa
    opt_cpu.load_state_dict(sd)
    assert all(isinstance(v, np.ndarray)
               for v in opt_cpu.state[cpu].values() if hasattr(v, "shape"))
