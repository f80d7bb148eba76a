"""The "modern net" on MNIST: 784 -> 625 -> 625 -> 10 with ReLU, dropout 0.2 on the input and
0.5 on the hidden layers, RMSprop (lr 1e-3, rho 0.9, epsilon 1e-6 inside the square root).

The Theano tutorial (4_modern_net.py) reaches 99.0% test accuracy.
    python examples/modern_net.py --epochs 30

From here on the loop that mlp.py writes out is tg.training.fit's: batches, forward, loss,
zero_grad, backward, step, then the validation line of the table, every epoch.
"""
import time

import tinygrad_edu as tg
from tinygrad_edu import nn, optim
from tinygrad_edu.training import evaluate, fit

from _common import data, fit_options, parse_args


def build():
    model = nn.Sequential(
        nn.Dropout(0.2), nn.Linear(784, 625), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(625, 625), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(625, 10))
    for layer in model:
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=0.01)
    return model


def optimizer(model, lr):
    # The tutorial's RMSprop divides by sqrt(mean_square + eps): eps inside the square root.
    return optim.RMSprop(model.parameters(), lr=lr, alpha=0.9, eps=1e-6, eps_inside_sqrt=True)


def main(argv=None):
    args = parse_args(__doc__, argv, epochs=30, lr=1e-3)
    tg.manual_seed(args.seed)
    model = build().to(args.device)
    train, valid, test = data(args)
    t0 = time.perf_counter()
    history = fit(model, optimizer(model, args.lr), train, valid, **fit_options(args))
    test_loss, test_acc = evaluate(model, *test, device=args.device)
    print(f"test loss {test_loss:.4f}  test accuracy {test_acc:.2%}  "
          f"({time.perf_counter() - t0:.0f} s in all)")
    if args.plot:
        print(f"learning curves saved to {history.plot(args.plot)}")
    return history, test_acc


if __name__ == "__main__":
    main()
