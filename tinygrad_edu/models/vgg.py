"""VGG ("OxfordNet", Simonyan & Zisserman, ICLR 2015), with torchvision's layout and names.

A VGG net is a stack of 3x3 convolutions (padding 1, so they keep the image size) with ReLUs,
cut by 2x2 max-pools that halve it, then three dense layers. The configurations are the paper's
Table 1 columns A, B, D and E (11, 13, 16 and 19 weight layers); a number is a convolution with
that many filters, "M" a max-pool::

    A (vgg11): 64 M 128 M 256 256 M 512 512 M 512 512 M
    E (vgg19): 64 64 M 128 128 M 256 256 256 256 M 512 512 512 512 M 512 512 512 512 M

The module is built as torchvision's ``torchvision.models.VGG``, so a torchvision state dict
loads into it unchanged (read one with :func:`tinygrad_edu.interop.load_pytorch`)::

    features    Sequential: Conv2d, [BatchNorm2d,] ReLU, ... MaxPool2d   (features.0.weight, ...)
    avgpool     AdaptiveAvgPool2d((7, 7))
    classifier  Sequential: Linear(512*7*7, 4096), ReLU, Dropout, Linear(4096, 4096), ReLU,
                Dropout, Linear(4096, num_classes)          (classifier.0, .3 and .6 hold weights)

Small versions for small images use the same structure and names with fewer numbers:
``width`` scales every convolution's filter count (``max(1, round(v * width))``), ``hidden``
is the dense layers' size and ``pool_size`` the adaptive pool's output. The five max-pools
need an image of at least 32 x 32 pixels to leave one pixel; for other sizes (MNIST's 28)
pass ``image_size`` and the pools round up (``ceil_mode``: 28 -> 14 -> 7 -> 4 -> 2 -> 1)::

    net = vgg11(num_classes=10, in_channels=1, width=1/8, hidden=128, pool_size=1,
                image_size=28)
"""
from .. import nn

cfgs = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}


def make_layers(cfg, batch_norm=False, in_channels=3, width=1.0, image_size=224):
    """The ``features`` Sequential of a configuration (torchvision's ``make_layers``)."""
    if not width > 0:
        raise ValueError(f"VGG: width must be > 0, got {width!r}")
    if not (isinstance(image_size, int) and image_size >= 1):
        raise ValueError(f"VGG: image_size must be a positive int, got {image_size!r}")
    layers, c, size = [], in_channels, image_size
    for v in cfg:
        if v == "M":
            ceil = size % 2 != 0  # round up, so an odd size keeps its last row
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=ceil))
            size = (size + 1) // 2 if ceil else size // 2
        else:
            out = max(1, round(v * width))
            layers.append(nn.Conv2d(c, out, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU())
            c = out
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """``VGG(features, num_classes=1000, pool_size=7, hidden=4096, dropout=0.5,
    init_weights=True)``: torchvision's ``VGG`` (same children, names and forward), with the
    sizes of the pool and the dense layers as arguments. Use :func:`vgg11` ... :func:`vgg19_bn`.

    ``init_weights``: torchvision's initialization (convolutions He-normal with fan-out,
    dense layers N(0, 0.01), biases 0, batch-norm scale 1).
    """

    def __init__(self, features, num_classes=1000, pool_size=7, hidden=4096, dropout=0.5,
                 init_weights=True):
        super().__init__()
        convs = [m for m in features if isinstance(m, nn.Conv2d)]
        if not convs:
            raise ValueError("VGG: features has no Conv2d layer")
        channels = convs[-1].out_channels
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        self.classifier = nn.Sequential(
            nn.Linear(channels * pool_size * pool_size, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes))
        if init_weights:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(m.bias)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0.0, 0.01)
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))


def _vgg(cfg, batch_norm, num_classes=1000, in_channels=3, width=1.0, image_size=224,
         pool_size=7, hidden=4096, dropout=0.5, init_weights=True):
    features = make_layers(cfgs[cfg], batch_norm, in_channels, width, image_size)
    return VGG(features, num_classes, pool_size, hidden, dropout, init_weights)


def vgg11(**kwargs):
    """VGG 11-weight-layer model (configuration "A"). Keyword arguments: ``num_classes=1000,
    in_channels=3, width=1.0, image_size=224, pool_size=7, hidden=4096, dropout=0.5,
    init_weights=True`` (see the module docstring)."""
    return _vgg("A", False, **kwargs)


def vgg11_bn(**kwargs):
    """:func:`vgg11` with a BatchNorm2d after every convolution."""
    return _vgg("A", True, **kwargs)


def vgg13(**kwargs):
    """VGG 13-weight-layer model (configuration "B"); arguments as :func:`vgg11`."""
    return _vgg("B", False, **kwargs)


def vgg13_bn(**kwargs):
    return _vgg("B", True, **kwargs)


def vgg16(**kwargs):
    """VGG 16-weight-layer model (configuration "D"); arguments as :func:`vgg11`."""
    return _vgg("D", False, **kwargs)


def vgg16_bn(**kwargs):
    return _vgg("D", True, **kwargs)


def vgg19(**kwargs):
    """VGG 19-weight-layer model (configuration "E"); arguments as :func:`vgg11`."""
    return _vgg("E", False, **kwargs)


def vgg19_bn(**kwargs):
    return _vgg("E", True, **kwargs)
