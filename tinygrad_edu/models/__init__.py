"""Ready-made networks: the tutorial convnet, VGG and residual networks (the last two with
torchvision's layout and parameter names, so torchvision weights load into them).

    from tinygrad_edu import models
    net = models.mnist_convnet()                                 # the Theano tutorial's convnet
    vgg = models.vgg16(num_classes=21)                           # torchvision's VGG-16 layout
    small = models.vgg11(num_classes=10, in_channels=1, width=1/8, hidden=128, pool_size=1,
                         image_size=28)                          # the same, sized for MNIST
"""
from .convnet import mnist_convnet
from .resnet import BasicBlock, ResNet, resnet18, resnet34
from .vgg import (VGG, make_layers, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19,
                  vgg19_bn)

__all__ = ["mnist_convnet", "VGG", "make_layers", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn",
           "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "BasicBlock", "ResNet", "resnet18",
           "resnet34"]
