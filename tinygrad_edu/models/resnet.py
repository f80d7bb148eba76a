"""Residual networks (He, Zhang, Ren & Sun, CVPR 2016), with torchvision's layout and names.

Deep plain stacks of convolutions train worse as they get deeper, even on the training set.
A residual block learns a correction F(x) to its input instead of a whole new map, and adds the
input back through a *shortcut connection*::

    y = relu(F(x) + shortcut(x)),   F(x) = bn2(conv2(relu(bn1(conv1(x)))))

The shortcut is the identity when the shapes agree, else a 1x1 convolution with the block's
stride and a batch norm (``downsample``, the paper's option B). Because y = x + F(x), the
gradient reaching x is dL/dy (1 + dF/dx): it always has a direct path back, however deep the net.

The module is built as torchvision's ``torchvision.models.ResNet`` with ``BasicBlock``s
(ResNet-18 and -34), so their state dicts load unchanged: ``conv1``, ``bn1``, ``layer1`` ...
``layer4`` (Sequentials of blocks with ``conv1, bn1, conv2, bn2, downsample``), ``fc``.
Small images (MNIST, CIFAR) lose too much to the ImageNet stem (7x7 stride-2 convolution and a
max-pool: 224 -> 56); ``small_input=True`` uses a 3x3 stride-1 convolution and no pool instead,
as the paper's CIFAR-10 nets do; ``width`` scales the channel counts (64, 128, 256, 512)::

    net = resnet18(num_classes=10, in_channels=1, width=1/4, small_input=True)
"""
from .. import nn


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm, plus the shortcut (torchvision's ``BasicBlock``)."""
    expansion = 1

    def __init__(self, in_channels, channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class ResNet(nn.Module):
    """``ResNet(layers, num_classes=1000, in_channels=3, width=1.0, small_input=False)``:
    ``layers`` blocks per stage (ResNet-18: [2, 2, 2, 2]); stages 2 to 4 halve the image and
    double the channels. Initialization as torchvision's: convolutions He-normal with fan-out,
    batch-norm scale 1 and shift 0 (the final dense layer keeps the engine's default)."""

    def __init__(self, layers, num_classes=1000, in_channels=3, width=1.0, small_input=False):
        super().__init__()
        if not width > 0:
            raise ValueError(f"ResNet: width must be > 0, got {width!r}")
        if len(layers) != 4 or not all(isinstance(n, int) and n >= 1 for n in layers):
            raise ValueError(f"ResNet: layers must be 4 positive ints, got {layers!r}")
        c = [max(1, round(v * width)) for v in (64, 128, 256, 512)]
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, c[0], 3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, c[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(c[0])
        self.relu = nn.ReLU()
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._stage(c[0], c[0], layers[0], stride=1)
        self.layer2 = self._stage(c[0], c[1], layers[1], stride=2)
        self.layer3 = self._stage(c[1], c[2], layers[2], stride=2)
        self.layer4 = self._stage(c[2], c[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(c[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _stage(in_channels, channels, blocks, stride):
        first = BasicBlock(in_channels, channels, stride)
        return nn.Sequential(first, *[BasicBlock(channels, channels) for _ in range(blocks - 1)])

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def resnet18(**kwargs):
    """ResNet-18: [2, 2, 2, 2] basic blocks. Keyword arguments: ``num_classes=1000,
    in_channels=3, width=1.0, small_input=False``."""
    return ResNet([2, 2, 2, 2], **kwargs)


def resnet34(**kwargs):
    """ResNet-34: [3, 4, 6, 3] basic blocks; arguments as :func:`resnet18`."""
    return ResNet([3, 4, 6, 3], **kwargs)
