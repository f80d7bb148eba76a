"""Logistic regression on MNIST: softmax(X W), SGD with learning rate 0.05, batch 128.

The Theano tutorial (2_logistic_regression.py) reaches 92.5% test accuracy.
    python examples/logistic_regression.py --epochs 20

The training loop is written out here, as in the tutorial. The later examples hand the same
loop to tg.training.fit, which adds checkpoints (--checkpoint, --resume), --plot and a
progress bar; this one has the options listed below.
"""
import time

import tinygrad_edu as tg
import tinygrad_edu.nn.functional as F
from tinygrad_edu import nn, optim
from tinygrad_edu.data import DataLoader

from _common import data, parse_args


def build():
    model = nn.Linear(784, 10, bias=False)       # the tutorial's softmax(X W) has no bias
    nn.init.normal_(model.weight, std=0.01)
    return model


def evaluate(model, split, device):
    """(mean cross-entropy, accuracy) on a whole split at once, like the tutorial's predict(teX)."""
    X, y = tg.from_numpy(split.X).to(device), tg.from_numpy(split.y).to(device)
    model.eval()
    with tg.no_grad():                                 # no tape: nothing to differentiate
        logits = model(X)
        return F.cross_entropy(logits, y).item(), (logits.argmax(dim=1) == y).float().mean().item()


def main(argv=None):
    args = parse_args(__doc__, argv, epochs=20, lr=0.05, uses_fit=False, compiles=True)
    tg.manual_seed(args.seed)
    train, valid, test = data(args)
    model = build().to(args.device)
    optimizer = optim.SGD(model.parameters(), lr=args.lr)
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, seed=args.seed)

    def train_step(xb, yb):
        logits = model(xb)                             # (batch, 10) scores X W
        loss = F.cross_entropy(logits, yb)             # mean of -log softmax(X W)[y]
        optimizer.zero_grad()                          # forget the last batch's gradients
        loss.backward()                                # d loss / d W, into model.weight.grad
        optimizer.step()                               # W <- W - lr * d loss / d W
        return loss, logits
    if args.compile:   # record the step on the first batch, replay it on the others
        train_step = tg.compile(train_step)

    history = []
    print("epoch  seconds  train loss  train acc  valid loss  valid acc")
    for epoch in range(1, args.epochs + 1):
        t0, total_loss, correct = time.perf_counter(), 0.0, 0
        model.train()
        for xb, yb in loader:                          # Tensors, in a new order every epoch
            xb, yb = xb.to(args.device), yb.to(args.device)
            loss, logits = train_step(xb, yb)
            total_loss += loss.item() * len(yb)
            correct += (logits.argmax(dim=1) == yb).sum().item()
        seconds, n = time.perf_counter() - t0, len(train.y)
        valid_loss, valid_acc = evaluate(model, valid, args.device)
        history.append(dict(epoch=epoch, train_loss=total_loss / n, train_acc=correct / n,
                            valid_loss=valid_loss, valid_acc=valid_acc))
        print(f"{epoch:5d} {seconds:8.1f} {total_loss / n:11.4f} {correct / n:10.2%} "
              f"{valid_loss:11.4f} {valid_acc:10.2%}", flush=True)
    test_loss, test_acc = evaluate(model, test, args.device)
    print(f"test loss {test_loss:.4f}  test accuracy {test_acc:.2%}")
    return history, test_acc


if __name__ == "__main__":
    main()
