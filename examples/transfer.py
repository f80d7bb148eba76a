"""Transfer learning (the EuroPython 2016 seed's VGG-19 lesson, on a CPU): a small VGG-style net
pre-trained on MNIST digits 0-4 is reused on little labelled data from elsewhere.

Targets (both offline): scikit-learn's 8x8 handwritten digits (all ten classes; other writers,
another scanner, 8x8 pixels, brought to MNIST's framing: resized to 20x20 and padded to 28x28)
and MNIST digits 5-9 (classes the source net never saw). For each target and each budget of
labelled images per class, three methods with the same network (the source net's first three
conv blocks, then a new two-layer classifier):

  scratch   freshly initialised, every layer trained (for twice the steps);
  frozen    the pre-trained blocks, frozen (``requires_grad_(False)``); its last two conv
            blocks and its classifier removed and a new classifier trained on top;
  finetune  the new classifier first as in "frozen", then every layer with a 10x lower
            learning rate.

    python examples/transfer.py                      # needs scikit-learn (the examples extra)
"""
import argparse
import time

import numpy as np

import tinygrad_edu as tg
from tinygrad_edu import models, nn, optim
from tinygrad_edu.data import load_mnist
from tinygrad_edu.data.augment import resize
from tinygrad_edu.training import evaluate, fit

from _common import add_compile_option

NET = dict(in_channels=1, width=1 / 8, hidden=128, pool_size=1, image_size=28)


def build(num_classes):
    return models.vgg11(num_classes=num_classes, **NET)


def mnist_digits(split, digits):
    """Images (N, 1, 28, 28) and labels 0..len(digits)-1 of the given MNIST digits."""
    X, y = split
    keep = np.isin(y, digits)
    return X[keep], np.searchsorted(digits, y[keep]).astype(np.int64)


def sklearn_digits(seed):
    """scikit-learn's 1,797 digits in MNIST's framing, split in half: (train pool, test)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit("examples/transfer.py needs scikit-learn: pip install scikit-learn "
                         "(or pip install -e '.[examples]')") from None
    d = load_digits()
    X = resize(d.images.astype(np.float32) / 16.0, (20, 20))      # (N, 20, 20) in [0, 1]
    X = np.pad(X, ((0, 0), (4, 4), (4, 4)))[:, None]               # (N, 1, 28, 28), as MNIST
    order = np.random.default_rng(seed).permutation(len(X))
    half = len(X) // 2
    return (X[order[:half]], d.target[order[:half]]), (X[order[half:]], d.target[order[half:]])


def per_class(X, y, k, rng):
    """k labelled images of each class, drawn without replacement."""
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), k, replace=False)
                          for c in np.unique(y)])
    return X[idx], y[idx]


CUT = 11          # features[:11]: the first three conv blocks, 32 maps of 4 x 4 pixels


def transfer_net(num_classes, source=None):
    """The first three conv blocks of a VGG11 and a new classifier on their 32 x 4 x 4 maps.

    With ``source`` the blocks are a frozen copy of the pre-trained ones: its last two conv
    blocks and its classifier are removed (they had specialised in telling 0-4 apart, and their
    features barely separate other digits) and new layers added, as in the seed's VGG-19 lesson.
    Without it everything is freshly initialised (training from scratch, same network).
    """
    net = build(5)
    if source is not None:
        net.load_state_dict(source.state_dict())
        net.requires_grad_(False)
    channels = net.features[CUT - 3].out_channels
    net.features = net.features[:CUT]                 # a Sequential slice keeps the names
    net.avgpool = nn.AdaptiveAvgPool2d(4)             # 4 x 4 already: the identity here
    net.classifier = nn.Sequential(nn.Linear(channels * 16, NET["hidden"]), nn.ReLU(),
                                   nn.Dropout(0.5), nn.Linear(NET["hidden"], num_classes))
    return net


def train(net, params, data, steps, lr, seed, batch_size=16, compile=False):
    """Adam for about ``steps`` steps (whole epochs of the small set: at least one)."""
    epochs = max(1, -(-steps * batch_size // len(data[0])))
    fit(net, optim.Adam(params, lr=lr), data, epochs=epochs, batch_size=batch_size, seed=seed,
        progress=False, verbose=False, compile=compile)


def run(method, source, train_set, test_set, num_classes, args, seed):
    tg.manual_seed(seed)
    if method == "scratch":
        net = transfer_net(num_classes)
        train(net, net.parameters(), train_set, 2 * args.steps, args.lr, seed,
              compile=args.compile)
    else:
        net = transfer_net(num_classes, source)
        train(net, net.classifier.parameters(), train_set, args.steps, args.lr, seed,
              compile=args.compile)
        if method == "finetune":
            net.requires_grad_(True)
            train(net, net.parameters(), train_set, args.steps, args.lr / 10, seed + 1,
                  compile=args.compile)
    return evaluate(net, *test_set)[1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pretrain-epochs", type=int, default=3,
                   help="epochs of pre-training on MNIST 0-4 (default: %(default)s)")
    p.add_argument("--steps", type=int, default=300,
                   help="Adam steps (batches of 16) per training phase on a small target set "
                        "(default: %(default)s; scratch trains for twice as many)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (default: "
                   "%(default)s; fine-tuning uses a tenth)")
    p.add_argument("--budgets", type=int, nargs="+", default=[10, 20, 50],
                   help="labelled images per class (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=2,
                   help="draws of the labelled images per budget, averaged (default: "
                        "%(default)s)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="a quick check: N pre-training images and N test images per target "
                        "(default: all)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    add_compile_option(p)
    args = p.parse_args(argv)
    if min(args.pretrain_epochs, args.steps, args.repeats, *args.budgets) < 1:
        p.error("--pretrain-epochs, --steps, --repeats and --budgets must be at least 1")
    if args.limit is not None and args.limit < 1:
        p.error("--limit must be at least 1")
    t0 = time.perf_counter()
    train_split, _, test_split = load_mnist(flatten=False)
    low, high = np.arange(5), np.arange(5, 10)
    source_train = mnist_digits(train_split, low)
    source_test = mnist_digits(test_split, low)
    digits_pool, digits_test = sklearn_digits(args.seed)
    fewest = int(np.bincount(digits_pool[1]).min())
    if max(args.budgets) > fewest:
        p.error(f"--budgets {max(args.budgets)}: the scikit-learn training pool has only "
                f"{fewest} images of its rarest class")
    targets = {"sklearn digits (10 classes)": (digits_pool, digits_test, 10),
               "MNIST 5-9 (5 classes)": (mnist_digits(train_split, high),
                                         mnist_digits(test_split, high), 5)}
    if args.limit:
        source_train = tuple(a[:args.limit] for a in source_train)
        targets = {k: (pool, tuple(a[:args.limit] for a in test), n)
                   for k, (pool, test, n) in targets.items()}

    tg.manual_seed(args.seed)
    source = build(5)
    fit(source, optim.Adam(source.parameters(), lr=args.lr), source_train,
        epochs=args.pretrain_epochs, batch_size=128, seed=args.seed, progress=False,
        verbose=False, compile=args.compile)
    print(f"pre-trained on {len(source_train[0])} MNIST images of 0-4: test accuracy "
          f"{evaluate(source, *source_test)[1]:.2%} ({time.perf_counter() - t0:.0f} s)")

    results = {}
    print("| target | labels per class | scratch | frozen + new head | head, then fine-tune |")
    print("| --- | --- | --- | --- | --- |")
    for name, (pool, test, n) in targets.items():
        for k in args.budgets:
            accs = {m: [] for m in ("scratch", "frozen", "finetune")}
            for r in range(args.repeats):
                subset = per_class(*pool, k, np.random.default_rng(args.seed + 100 * r + k))
                for m in accs:
                    accs[m].append(run(m, source, subset, test, n, args, args.seed + r))
            results[name, k] = {m: float(np.mean(v)) for m, v in accs.items()}
            row = " | ".join(f"{results[name, k][m]:.1%}" for m in accs)
            print(f"| {name} | {k} | {row} |", flush=True)
    print(f"({time.perf_counter() - t0:.0f} s in all)")
    return results


if __name__ == "__main__":
    main()
