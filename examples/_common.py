"""What every MNIST example shares: command-line options, data loading and the final report.

Each example builds its model and optimizer and hands them to ``tg.training.fit``; this file
only keeps the argument parsing and the printing out of their way.
"""
import argparse
import time

import tinygrad_edu as tg
from tinygrad_edu.datasets import load_mnist
from tinygrad_edu.training import evaluate, fit


def parse_args(description, argv=None, epochs=10, lr=None, batch_size=128):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=batch_size)
    if lr is not None:
        p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--limit", type=int, default=None,
                   help="use only the first N training images (for quick checks)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", default=None, help="save a checkpoint here after each epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--plot", default=None, help="save the learning curves to this PNG")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p.parse_args(argv)


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
