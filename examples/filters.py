"""What the first layer learned: the MLP's 625 hidden-unit weight vectors (100 of them drawn)
and the convnet's 32 first-layer kernels, drawn as image grids (needs matplotlib).

The recipes are mlp.py's (SGD, lr 0.05) and convnet.py's (RMSprop, lr 1e-3), batch 128; this
draws a picture rather than reproducing a published figure.
    python examples/filters.py --epochs 2 --out filters.png
"""
import argparse

import numpy as np

import tinygrad_edu as tg
from tinygrad_edu import nn, optim
from tinygrad_edu.training import fit

from _common import add_compile_option, data


def build_mlp():
    """mlp.py's network: 784 -> 625 sigmoid -> 10, weights drawn from N(0, 0.01)."""
    model = nn.Sequential(nn.Linear(784, 625), nn.Sigmoid(), nn.Linear(625, 10))
    for layer in (model[0], model[2]):
        nn.init.normal_(layer.weight, std=0.01)
    return model


def build_convnet():
    """convnet.py's network: three blocks of 3x3 conv, ReLU, 2x2 max-pool and dropout 0.2, then
    625 ReLU units with dropout 0.5 and 10 outputs."""
    layers = []
    for c_in, c_out in ((1, 32), (32, 64), (64, 128)):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(),
                   nn.MaxPool2d(2, ceil_mode=True), nn.Dropout(0.2)]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(128 * 4 * 4, 625), nn.ReLU(),
                         nn.Dropout(0.5), nn.Linear(625, 10))


def grid(images, columns):
    """Tile (n, h, w) images into one array, each scaled to [0, 1], with 1-pixel gaps."""
    n, h, w = images.shape
    rows = -(-n // columns)
    out = np.ones((rows * (h + 1) - 1, columns * (w + 1) - 1))
    for k, img in enumerate(images):
        lo, hi = img.min(), img.max()
        r, c = divmod(k, columns)
        out[r * (h + 1):r * (h + 1) + h,
            c * (w + 1):c * (w + 1) + w] = (img - lo) / (hi - lo + 1e-12)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=2,
                   help="passes over the training set, for each model (default: %(default)s)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="train on the first N training images only; this example uses no "
                        "validation or test images (default: all 50,000)")
    p.add_argument("--out", default="filters.png", metavar="PNG",
                   help="where to save the picture (default: %(default)s)")
    add_compile_option(p)
    args = p.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tg.manual_seed(0)
    net = build_mlp()
    fit(net, optim.SGD(net.parameters(), lr=0.05), data(args)[0], epochs=args.epochs, verbose=False,
        compile=args.compile)
    cnn = build_convnet()
    rmsprop = optim.RMSprop(cnn.parameters(), lr=1e-3, alpha=0.9, eps=1e-6, eps_inside_sqrt=True)
    fit(cnn, rmsprop, data(args, flatten=False)[0], epochs=args.epochs, verbose=False,
        compile=args.compile)

    hidden = net[0].weight.numpy()[:100].reshape(-1, 28, 28)          # 100 of the 625 units
    kernels = cnn[0].weight.numpy()[:, 0]                                 # (32, 3, 3)
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 6))
    a.imshow(grid(hidden, 10), cmap="gray")
    a.set_title("MLP: weights of 100 hidden units")
    b.imshow(grid(kernels, 8), cmap="gray")
    b.set_title("convnet: the 32 first-layer 3x3 kernels")
    for ax in (a, b):
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"saved {args.out}")
    return args.out


if __name__ == "__main__":
    main()
