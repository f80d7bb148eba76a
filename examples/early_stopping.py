"""Early stopping: train the MLP of mlp.py (784 -> 625 sigmoid -> 10 softmax, SGD, batch 128)
while watching the validation loss; stop after `patience` epochs without improvement and put
back the parameters of the best epoch.

The recipe is the Theano tutorial's 3_net.py (98.4% test accuracy) plus early stopping, which
the tutorial does not use; with --lr 0.5 this stops after about 50 epochs (see the README).
    python examples/early_stopping.py --epochs 100 --patience 5
"""
import tinygrad_edu as tg
from tinygrad_edu import optim

from _common import make_parser, parse_args, run
from mlp import build


def main(argv=None):
    p = make_parser(__doc__, epochs=100, lr=0.05)
    p.add_argument("--patience", type=int, default=5,
                   help="stop after this many epochs without a lower validation loss "
                        "(default: %(default)s)")
    args = parse_args(p, argv)
    tg.manual_seed(args.seed)
    model = build()
    history, test_acc = run(model, optim.SGD(model.parameters(), lr=args.lr), args,
                            patience=args.patience)
    best = history.best("valid_loss")
    print(f"best epoch {best['epoch']}: validation loss {best['valid_loss']:.4f}, "
          f"accuracy {best['valid_acc']:.2%}")
    return history, test_acc


if __name__ == "__main__":
    main()
