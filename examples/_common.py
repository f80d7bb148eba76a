"""What the MNIST examples share: their command-line options and the tutorials' data split.

No training happens here. ``logistic_regression.py`` and ``mlp.py`` write the training loop out;
the later examples call ``tg.training.fit`` themselves, with ``fit_options(args)``.
"""
import argparse

from tinygrad_edu.data import Split, load_mnist


def add_compile_option(p):
    p.add_argument("--compile", action="store_true",
                   help="record the training step once and replay it (tg.compile): the same "
                        "results, bit for bit, with less Python per batch (default: off)")


def make_parser(doc, epochs=10, lr=None, batch_size=128, uses_fit=True, compiles=None):
    """The options of every MNIST example; ``doc`` (the example's docstring: its recipe and the
    published figure) is the description. ``uses_fit=False`` leaves out what only ``fit``
    provides (checkpoints, resuming, the plot, the progress bar). An example may add options
    before parsing."""
    p = argparse.ArgumentParser(description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=epochs,
                   help="passes over the training set (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=batch_size,
                   help="images per mini-batch (default: %(default)s)")
    if lr is not None:
        p.add_argument("--lr", type=float, default=lr, help="learning rate (default: %(default)s)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="a quick check on a slice: the first N training images, and the first "
                        "max(N // 5, 100) validation and test images (default: all 50,000 "
                        "training, 10,000 validation and 10,000 test images)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    if uses_fit if compiles is None else compiles:  # (fit's compile=, or the example's own)
        add_compile_option(p)
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the initial weights, the shuffling and dropout "
                        "(default: %(default)s)")
    if uses_fit:
        p.add_argument("--checkpoint", default=None, metavar="PATH",
                       help="save a checkpoint to this file after every epoch (default: none)")
        p.add_argument("--resume", action="store_true",
                       help="continue from the checkpoint in --checkpoint PATH, or start afresh "
                            "if that file does not exist yet (default: off)")
        p.add_argument("--plot", default=None, metavar="PNG",
                       help="save the learning curves to this PNG file, with matplotlib "
                            "(default: no plot)")
        p.add_argument("--no-progress", action="store_true",
                       help="hide the progress bar (default: shown)")
    return p


def parse_args(doc, argv=None, **defaults):
    """Parse ``argv`` (sys.argv when None) with ``make_parser(doc, **defaults)``; ``doc`` may
    also be a parser that an example extended. Exits with status 2 on a bad command line."""
    p = doc if isinstance(doc, argparse.ArgumentParser) else make_parser(doc, **defaults)
    args = p.parse_args(argv)
    if getattr(args, "resume", False) and not args.checkpoint:
        p.error("--resume needs --checkpoint PATH, the checkpoint file to continue from")
    return args


def data(args, flatten=True):
    """MNIST with the tutorials' split, ``(train, valid, test)``, each a ``Split(X, y)`` of NumPy
    arrays: 50,000, 10,000 and 10,000 images, or the slices that ``--limit`` asks for."""
    mnist = load_mnist(flatten=flatten)
    if not args.limit:
        return mnist.train, mnist.valid, mnist.test
    n, m = args.limit, max(args.limit // 5, 100)
    return (Split(*(a[:n] for a in mnist.train)), Split(*(a[:m] for a in mnist.valid)),
            Split(*(a[:m] for a in mnist.test)))


def fit_options(args):
    """The keyword arguments of ``tg.training.fit`` that the command line sets."""
    return dict(epochs=args.epochs, batch_size=args.batch_size, checkpoint=args.checkpoint,
                resume=args.resume, seed=args.seed, device=args.device,
                progress=not args.no_progress, compile=getattr(args, "compile", False))
