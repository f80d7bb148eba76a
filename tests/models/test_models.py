"""tinygrad_edu.models: torchvision's names and sizes, forward shapes on small images, the
tutorial convnet, and that a residual block's shortcut is what it says."""
import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import models, nn

# torchvision.models.vgg11().state_dict().keys() and the parameter counts torchvision documents
VGG11_KEYS = ["features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias",
              "features.6.weight", "features.6.bias", "features.8.weight", "features.8.bias",
              "features.11.weight", "features.11.bias", "features.13.weight", "features.13.bias",
              "features.16.weight", "features.16.bias", "features.18.weight", "features.18.bias",
              "classifier.0.weight", "classifier.0.bias", "classifier.3.weight",
              "classifier.3.bias", "classifier.6.weight", "classifier.6.bias"]


def test_vgg11_has_torchvisions_names_and_size():
    net = models.vgg11(init_weights=False)
    assert list(net.state_dict()) == VGG11_KEYS
    assert net.num_parameters() == 132_863_336
    assert net.avgpool.output_size in (7, (7, 7))


def test_vgg16_bn_and_resnet18_parameter_counts_match_torchvision():
    bn = models.vgg16_bn(init_weights=False)
    assert bn.num_parameters() == 138_365_992
    assert "features.1.running_mean" in bn.state_dict()
    r = models.resnet18()
    assert r.num_parameters() == 11_689_512
    keys = list(r.state_dict())
    assert keys[:6] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean",
                        "bn1.running_var", "bn1.num_batches_tracked"]
    assert "layer2.0.downsample.0.weight" in keys and "fc.bias" == keys[-1]


@pytest.mark.parametrize("make", [models.vgg11, models.vgg13_bn, models.vgg16, models.vgg19_bn])
def test_small_vggs_run_on_mnist_sized_images(make):
    tg.manual_seed(0)
    net = make(num_classes=7, in_channels=1, width=1 / 32, hidden=8, pool_size=1, image_size=28)
    y = net(tg.randn(2, 1, 28, 28))
    assert y.shape == (2, 7)
    y.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_resnet_small_input_and_imagenet_stem():
    tg.manual_seed(0)
    small = models.resnet18(num_classes=10, in_channels=1, width=1 / 16, small_input=True)
    assert small(tg.randn(2, 1, 28, 28)).shape == (2, 10)
    big = models.resnet34(num_classes=3, width=1 / 16)
    assert big(tg.randn(1, 3, 64, 64)).shape == (1, 3)


def test_basic_block_adds_its_input_back():
    """With the residual branch's last batch norm scaled to 0, F(x) = 0 and y = relu(x)."""
    block = models.BasicBlock(3, 3)
    nn.init.zeros_(block.bn2.weight)
    x = tg.randn(2, 3, 5, 5)
    np.testing.assert_allclose(block(x).numpy(), np.maximum(x.numpy(), 0), atol=1e-6)
    down = models.BasicBlock(3, 6, stride=2)
    assert down(x).shape == (2, 6, 3, 3) and down.downsample is not None


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="width"):
        models.vgg11(width=0)
    with pytest.raises(ValueError, match="layers"):
        models.ResNet([2, 2, 2])


def test_mnist_convnet_is_the_tutorial_net():
    net = models.mnist_convnet()
    assert net.num_parameters() == (32 * 9 + 32) + (64 * 32 * 9 + 64) + (128 * 64 * 9 + 128) \
        + (2048 * 625 + 625) + (625 * 10 + 10)
    assert net(tg.randn(3, 1, 28, 28)).shape == (3, 10)
