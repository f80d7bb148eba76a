"""Module and Parameter: discovery order, names, buffers, modes, state dicts, devices, repr."""
import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import nn, optim
from tinygrad_edu.backend import cuda_available, device_of
from tinygrad_edu.nn import Module, Parameter


class Affine(Module):
    """A Linear-like layer written the way a learner would."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = Parameter(np.arange(n_in * n_out, dtype=np.float32).reshape(n_out, n_in))
        self.bias = Parameter(np.zeros(n_out, dtype=np.float32))

    def forward(self, x):
        return x @ self.weight.T + self.bias

    def extra_repr(self):
        return f"{self.weight.shape[1]} -> {self.weight.shape[0]}"


class Net(Module):
    def __init__(self):
        super().__init__()
        self.first = Affine(3, 4)
        self.blocks = [Affine(4, 4), [Affine(4, 4)]]
        self.heads = {"a": Affine(4, 2), "b": Affine(4, 1)}
        self.scale = Parameter([2.0])
        self.register_buffer("steps", tg.zeros(1))
        self.not_a_parameter = tg.ones(3, requires_grad=True)  # plain Tensors are ignored

    def forward(self, x):
        for block in [self.first, self.blocks[0], self.blocks[1][0]]:
            x = block(x)
        return self.heads["a"](x) * self.scale


NET_PARAMETERS = ["first.weight", "first.bias", "blocks.0.weight", "blocks.0.bias",
                  "blocks.1.0.weight", "blocks.1.0.bias", "heads.a.weight", "heads.a.bias",
                  "heads.b.weight", "heads.b.bias", "scale"]


def test_parameter_is_a_lean_tensor_that_requires_grad():
    p = Parameter(np.ones((2, 3), dtype=np.float32))
    assert isinstance(p, tg.Tensor) and p.requires_grad and p.is_leaf
    assert not hasattr(p, "__dict__")  # __slots__ = (): no per-object dict
    assert type(p * 2) is tg.Tensor and type(p.detach()) is tg.Tensor
    assert Parameter([1.0, 2.0]).dtype == np.float32
    assert not Parameter([1.0], requires_grad=False).requires_grad
    assert repr(p).startswith("Parameter containing:\nTensor(")
    with pytest.raises(TypeError, match="floating-point"):
        Parameter([1, 2])


def test_parameters_follow_attribute_order_and_get_dotted_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == NET_PARAMETERS
    assert [id(p) for p in net.parameters()] == [id(p) for _, p in net.named_parameters()]
    assert all(p.name == n for n, p in net.named_parameters())
    assert [n for n, _ in net.named_buffers()] == ["steps"] and net.steps.name == "steps"
    assert net.num_parameters() == 12 + 4 + 20 + 20 + 10 + 5 + 1
    assert [n for n, _ in net.named_children()] == ["first", "blocks.0", "blocks.1.0", "heads.a",
                                                   "heads.b"]
    assert [n for n, _ in net.named_modules()][:3] == ["", "first", "blocks.0"]
    assert len(net.modules()) == 6 and net.modules()[0] is net


def test_names_are_set_on_assignment_and_extended_by_enclosing_modules():
    layer = Affine(2, 2)
    assert layer.weight.name == "weight"        # named as soon as it is assigned
    seq = nn.Sequential(layer)
    assert layer.weight.name == "0.weight"      # extended when put into a container
    outer = Module()
    outer.features = seq
    assert layer.weight.name == "features.0.weight"
    seq.parameters()                            # listing from an inner module keeps the long name
    assert layer.weight.name == "features.0.weight"
    own = Affine(2, 2)
    own.weight.name = "W"                       # a name chosen by hand is kept
    outer.other = own
    assert own.weight.name == "W" and own.bias.name == "other.bias"


def test_shared_parameters_and_modules_are_listed_once():
    shared = Affine(2, 2)
    m = Module()
    m.a, m.b = shared, shared
    m.tied = shared.weight
    assert [n for n, _ in m.named_parameters()] == ["a.weight", "a.bias"]
    assert list(m.state_dict()) == ["a.weight", "a.bias"]
    assert len(m.modules()) == 2


def test_a_module_without_super_init_still_works():
    class Lazy(Module):
        def __init__(self):
            self.w = Parameter([1.0])

    m = Lazy()
    assert m.training and m.parameters()[0] is m.w
    with pytest.raises(NotImplementedError, match="Lazy has no forward"):
        m(tg.ones(1))


def test_register_buffer_checks_its_arguments():
    m = Affine(2, 2)
    with pytest.raises(TypeError, match="not a Parameter"):
        m.register_buffer("b2", Parameter([1.0]))
    with pytest.raises(ValueError, match="without '.'"):
        m.register_buffer("a.b", tg.zeros(1))
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("weight", tg.zeros(1))
    m.register_buffer("empty", None)  # allowed, and skipped
    assert list(m.state_dict()) == ["weight", "bias"]


def test_train_and_eval_reach_every_submodule():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net and not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.blocks[1][0].train(False)
    assert not net.blocks[1][0].training and net.first.training


def test_zero_grad_sets_every_grad_to_none():
    net = Net()
    net(tg.ones(2, 3)).sum().backward()
    assert all(p.grad is not None for p in [net.first.weight, net.scale])
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_apply_visits_children_before_parents():
    net, seen = Net(), []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen[-1] == "Net" and seen.count("Affine") == 5


def test_state_dict_is_ordered_and_holds_copies():
    net = Net()
    sd = net.state_dict()
    assert list(sd) == NET_PARAMETERS[:-1] + ["scale", "steps"]
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    sd["first.weight"][...] = -1
    assert net.first.weight.data.min() == 0  # the module is not changed through the copy


def test_load_state_dict_copies_in_place_and_keeps_the_objects():
    src, dst = Net(), Net()
    for p in src.parameters():
        p.data[...] = np.random.default_rng(0).standard_normal(p.shape)
    src.steps.data[...] = 7
    weight = dst.first.weight
    opt = optim.SGD(dst.parameters(), lr=0.1)
    result = dst.load_state_dict(src.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert dst.first.weight is weight and dst.steps.data[0] == 7
    for (name, a), (_, b) in zip(src.state_dict().items(), dst.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    dst(tg.ones(1, 3)).sum().backward()  # the optimizer still drives the same Parameter objects
    before = weight.numpy().copy()
    opt.step()
    assert not np.array_equal(before, weight.numpy())


def test_load_state_dict_accepts_tensors_and_casts_dtype():
    m = Affine(2, 3)
    m.load_state_dict({"weight": tg.Tensor(np.ones((3, 2))), "bias": np.arange(3.0)})
    assert m.weight.dtype == np.float32 and m.bias.dtype == np.float32
    np.testing.assert_array_equal(m.bias.data, [0, 1, 2])


def test_loading_bumps_versions_so_stale_graphs_refuse_backward():
    m = Affine(2, 2)
    y = m(tg.ones(1, 2)).sum()
    m.load_state_dict(m.state_dict())
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


@pytest.mark.parametrize("change, expected", [
    (lambda sd: sd.pop("heads.a.bias"), ["missing key: heads.a.bias"]),
    (lambda sd: sd.update(extra=np.zeros(2)), ["unexpected key: extra"]),
    (lambda sd: sd.update(scale=np.zeros((1, 1))), ["scale: shape (1, 1) in the state dict, (1,)"]),
    (lambda sd: (sd.pop("scale"), sd.update({"blocks.0.weight": np.zeros(3), "zzz": 1.0})),
     ["missing key: scale", "unexpected key: zzz", "blocks.0.weight: shape (3,)"]),
])
def test_strict_load_lists_every_problem_and_changes_nothing(change, expected):
    net = Net()
    sd = {k: v + 1 for k, v in net.state_dict().items()}
    change(sd)
    before = net.state_dict()
    with pytest.raises(ValueError) as info:
        net.load_state_dict(sd)
    message = str(info.value)
    assert "Net.load_state_dict: nothing was loaded" in message
    for part in expected:
        assert part in message
    for (k, a), b in zip(before.items(), net.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=k)


def test_non_strict_load_reports_keys_but_still_checks_shapes():
    m = Affine(2, 2)
    result = m.load_state_dict({"weight": np.full((2, 2), 5.0), "other": np.zeros(1)}, strict=False)
    assert result == (["bias"], ["other"])
    assert (m.weight.data == 5).all()
    with pytest.raises(ValueError, match=r"weight: shape \(3,\)"):
        m.load_state_dict({"weight": np.zeros(3)}, strict=False)
    with pytest.raises(TypeError, match="expected a dict"):
        m.load_state_dict([1, 2])


def test_to_cpu_keeps_the_objects_and_returns_self():
    net = Net()
    params = net.parameters()
    assert net.to("cpu") is net and net.cpu() is net
    assert all(a is b for a, b in zip(params, net.parameters()))
    assert all(p.device == "cpu" for p in net.parameters())
    with pytest.raises(ValueError, match="unknown device"):
        net.to("tpu")


def test_repr_is_nested_like_pytorch():
    net = Module()
    net.body = nn.Sequential(Affine(3, 4), nn.Sequential(Affine(4, 2)))
    net.head = Affine(2, 1)
    assert repr(net) == (
        "Module(\n"
        "  (body): Sequential(\n"
        "    (0): Affine(3 -> 4)\n"
        "    (1): Sequential(\n"
        "      (0): Affine(4 -> 2)\n"
        "    )\n"
        "  )\n"
        "  (head): Affine(2 -> 1)\n"
        ")")


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA GPU")
def test_to_cuda_and_a_gpu_state_dict_loads_on_cpu():
    gpu, cpu = Net().to("cuda"), Net()
    assert all(t.device == "cuda" for t in gpu.parameters() + gpu.buffers())
    gpu.first.weight.data += 1
    sd = gpu.state_dict()
    assert device_of(sd["first.weight"]) == "cuda"
    cpu.load_state_dict(sd)
    assert cpu.first.weight.device == "cpu"
    np.testing.assert_array_equal(cpu.first.weight.data, sd["first.weight"].get())
    gpu.load_state_dict(Net().state_dict())  # and the other way
    assert gpu.first.weight.device == "cuda"
