"""Early stopping: train the MLP while watching the validation loss; stop after `patience`
epochs without improvement and put back the parameters of the best epoch.
    python examples/early_stopping.py --epochs 100 --patience 5
"""
import sys

import tinygrad_edu as tg
from tinygrad_edu import optim

from _common import parse_args, run
from mlp import build


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    patience = 5
    if "--patience" in argv:
        i = argv.index("--patience")
        patience = int(argv[i + 1])
        del argv[i:i + 2]
    args = parse_args(__doc__.splitlines()[0], argv, epochs=100, lr=0.05)
    tg.manual_seed(args.seed)
    model = build()
    history, test_acc = run(model, optim.SGD(model.parameters(), lr=args.lr), args,
                            patience=patience)
    best = history.best("valid_loss")
    print(f"best epoch {best['epoch']}: validation loss {best['valid_loss']:.4f}, "
          f"accuracy {best['valid_acc']:.2%}")
    return history, test_acc


if __name__ == "__main__":
    main()
