"""Sequential as PyTorch's: item assignment in place, deletion and insertion (renumbering), slices
that keep their names, extend, and errors that change nothing."""
from collections import OrderedDict

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import nn, optim


def layout(model):
    """(name, module identity) of every child, and the parameter names: what an error must not
    change."""
    return ([(name, id(m)) for name, m in model.named_children()],
            [name for name, _ in model.named_parameters()])


def five():
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2))


class Net(nn.Module):
    """VGG's layout in small: features, then a 7-layer classifier whose last layer is [6]."""
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU())
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Linear(2 * 4 * 4, 16), nn.ReLU(), nn.Dropout(), nn.Linear(16, 4096), nn.ReLU(),
            nn.Dropout(), nn.Linear(4096, 1000))

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


def test_replacing_the_head_keeps_its_name_and_place():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    old = net.classifier[6]
    net.classifier[6] = nn.Linear(4096, 21)
    assert net.classifier[6] is not old and len(net.classifier) == 7
    assert [n for n, _ in net.named_parameters()] == names  # same names, same order
    state = net.state_dict()
    assert state["classifier.6.weight"].shape == (21, 4096) and state["classifier.6.bias"].shape \
        == (21,)
    net.eval()
    assert net(tg.Tensor(np.ones((2, 1, 4, 4), np.float32))).shape == (2, 21)
    opt = optim.SGD(net.classifier[6].parameters(), lr=0.1)
    assert opt.param_groups[0]["params"][0].name == "classifier.6.weight"


def test_setitem_negative_index_and_the_dict_names():
    model = nn.Sequential(OrderedDict([("conv", nn.Conv2d(1, 1, 1)), ("act", nn.ReLU()),
                                       ("fc", nn.Linear(2, 2))]))
    assert [n for n, _ in model.named_children()] == ["conv", "act", "fc"]
    new = nn.Linear(2, 3)
    model[-1] = new
    assert model.fc is new and model[2] is new
    assert [n for n, _ in model.named_parameters()][-2:] == ["fc.weight", "fc.bias"]
    assert [n for n, _ in nn.Sequential({"b": nn.ReLU(), "a": nn.Tanh()}).named_children()] \
        == ["b", "a"]  # a plain dict keeps its order too


def test_slices_keep_the_names():
    model = five()
    part = model[2:5]
    assert isinstance(part, nn.Sequential)
    assert [n for n, _ in part.named_children()] == ["2", "3", "4"]
    assert list(part) == list(model)[2:5] and part[0] is model[2]  # positions, not names
    assert list(part.state_dict()) == ["2.weight", "2.bias", "4.weight", "4.bias"]
    assert [n for n, _ in model[::2].named_children()] == ["0", "2", "4"]
    assert [n for n, _ in model[-2:].named_children()] == ["3", "4"]
    assert len(model[5:]) == 0
    x = tg.Tensor(np.ones((2, 4), np.float32))
    np.testing.assert_array_equal(part(x).numpy(), model[4](model[3](model[2](x))).numpy())


def test_delitem_renumbers_as_pytorch_2():
    model = five()
    layers = list(model)
    del model[1]
    assert [n for n, _ in model.named_children()] == ["0", "1", "2", "3"]
    assert list(model) == [layers[0]] + layers[2:]
    del model[-1]
    assert list(model) == [layers[0], layers[2], layers[3]]
    del model[0:2]
    assert [n for n, _ in model.named_children()] == ["0"] and model[0] is layers[3]
    named = nn.Sequential(OrderedDict(a=nn.ReLU(), b=nn.Tanh(), c=nn.Sigmoid()))
    del named[1]  # PyTorch 2 renumbers custom names too
    assert [n for n, _ in named.named_children()] == ["0", "1"]
    model = five()
    del model[::2]
    assert [type(m).__name__ for m in model] == ["ReLU", "Tanh"]
    assert [n for n, _ in model.named_children()] == ["0", "1"]


def test_insert_append_extend():
    model = nn.Sequential(nn.ReLU(), nn.Tanh())
    first, last, middle = nn.Sigmoid(), nn.Identity(), nn.Linear(2, 2)
    assert model.insert(0, first) is model
    model.insert(len(model), last)
    model.insert(-1, middle)  # before the last one, as list.insert
    assert [type(m).__name__ for m in model] == ["Sigmoid", "ReLU", "Tanh", "Linear", "Identity"]
    assert [n for n, _ in model.named_children()] == ["0", "1", "2", "3", "4"]
    assert [n for n, _ in model.named_parameters()] == ["3.weight", "3.bias"]
    more = nn.Sequential(nn.ReLU(), nn.Tanh())
    assert model.extend(more) is model and model.extend([nn.Sigmoid()]) is model
    assert len(model) == 8 and model[5] is more[0] and model[7].__class__ is nn.Sigmoid
    assert model.append(nn.ReLU()) is model and [n for n, _ in model.named_children()][-1] == "8"


@pytest.mark.parametrize("change, error, match", [
    (lambda m: m[5], IndexError, "index 5 is out of range for 5 modules"),
    (lambda m: m[-6], IndexError, "index -6 is out of range for 5 modules"),
    (lambda m: m.__setitem__(5, nn.ReLU()), IndexError, "index 5 is out of range for 5"),
    (lambda m: m.__delitem__(7), IndexError, "index 7 is out of range for 5"),
    (lambda m: m.insert(6, nn.ReLU()), IndexError, "index 6 is out of range for 5"),
    (lambda m: m.insert(-6, nn.ReLU()), IndexError, "index -6 is out of range for 5"),
    (lambda m: m.__setitem__(0, tg.relu), TypeError,
     "cannot assign a function as module 0 \\('0'\\); a Module is needed"),
    (lambda m: m.__setitem__(1, tg.ones(2)), TypeError, "cannot assign a Tensor"),
    (lambda m: m.__setitem__(slice(0, 2), nn.ReLU()), TypeError, "index must be an integer"),
    (lambda m: m["0"], TypeError, "index must be an integer .* got str"),
    (lambda m: m[1.0], TypeError, "got float"),
    (lambda m: m.__delitem__(True), TypeError, "got bool"),
    (lambda m: m.insert(0, "relu"), TypeError, "element '0' is a str, not a Module"),
    (lambda m: m.append(3), TypeError, "element '5' is a int, not a Module"),
    (lambda m: m.extend([nn.ReLU(), np.ones(2)]), TypeError, "element '6' is a ndarray"),
])
def test_errors_change_nothing(change, error, match):
    model = five()
    before = layout(model)
    weights = [p.numpy().copy() for p in model.parameters()]
    with pytest.raises(error, match=match):
        change(model)
    assert layout(model) == before and len(model) == 5
    for p, w in zip(model.parameters(), weights):
        np.testing.assert_array_equal(p.numpy(), w)


def test_bad_child_names_are_refused():
    for name in ("a.b", "", 1):
        with pytest.raises(KeyError, match="a child's name must be a non-empty string"):
            nn.Sequential({"ok": nn.ReLU(), name: nn.Tanh()})
    model = nn.Sequential(OrderedDict([("1", nn.ReLU())]))  # "1" taken: append cannot name it
    with pytest.raises(KeyError, match="already an attribute named '1'"):
        model.extend([nn.Tanh()])
    assert [n for n, _ in model.named_children()] == ["1"]
