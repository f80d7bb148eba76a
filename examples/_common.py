"""What every MNIST example shares: command-line options, data loading and the final report.

Each example builds its model and optimizer and hands them to ``tg.training.fit``; this file
only keeps the argument parsing and the printing out of their way.
"""
import argparse
import time

import tinygrad_edu as tg
from tinygrad_edu.datasets import load_mnist
from tinygrad_edu.training import evaluate, fit


def make_parser(doc, epochs=10, lr=None, batch_size=128):
    """The options of every MNIST example; ``doc`` (the example's docstring: its recipe and the
    published figure) is the description. An example may add options before parsing."""
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
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the initial weights, the shuffling and dropout "
                        "(default: %(default)s)")
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="save a checkpoint to this file after every epoch (default: none)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint in --checkpoint PATH, or start afresh if "
                        "that file does not exist yet (default: off)")
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
    if args.resume and not args.checkpoint:
        p.error("--resume needs --checkpoint PATH, the checkpoint file to continue from")
    return args


def data(args, flatten=True):
    """MNIST with the tutorials' split: 50,000 train, 10,000 validation, 10,000 test."""
    mnist = load_mnist(flatten=flatten)
    train, valid, test = mnist.train, mnist.valid, mnist.test
    if args.limit:
        train = (train[0][:args.limit], train[1][:args.limit])
        valid = (valid[0][:max(args.limit // 5, 100)], valid[1][:max(args.limit // 5, 100)])
        test = (test[0][:max(args.limit // 5, 100)], test[1][:max(args.limit // 5, 100)])
    return train, valid, test


def run(model, optimizer, args, flatten=True, **fit_options):
    """Train with the classic per-epoch table, then report the test accuracy."""
    tg.manual_seed(args.seed)
    train, valid, test = data(args, flatten)
    model.to(args.device)
    t0 = time.perf_counter()
    history = fit(model, optimizer, train, valid, epochs=args.epochs, batch_size=args.batch_size,
                  checkpoint=args.checkpoint, resume=args.resume, seed=args.seed,
                  device=args.device, progress=not args.no_progress, **fit_options)
    test_loss, test_acc = evaluate(model, *test, device=args.device)
    print(f"test loss {test_loss:.4f}  test accuracy {test_acc:.2%}  "
          f"({time.perf_counter() - t0:.0f} s in all)")
    if args.plot:
        history.plot(args.plot)
        print(f"learning curves saved to {args.plot}")
    return history, test_acc
