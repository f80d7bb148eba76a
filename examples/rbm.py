"""A restricted Boltzmann machine on MNIST, the Theano tutorial's recipe (rbm.py): 784 visible
and 500 hidden binary units, persistent contrastive divergence with 15 Gibbs steps (PCD-15),
SGD lr 0.1, batch 20, 15 epochs, monitored by the stochastic pseudo-likelihood cost.

The tutorial's cost goes from -90.65 after the first epoch to -62.76 after the 15th (122
minutes on its 2008 CPU). Afterwards 20 chains, started from test images, are sampled: one
row of pictures every 1,000 Gibbs steps, 10 rows.
    python examples/rbm.py --epochs 15 --out-dir docs/img
"""
import os
import time

import numpy as np

import tinygrad_edu as tg
from tinygrad_edu import optim
from tinygrad_edu.data import DataLoader, tile_images
from tinygrad_edu.nn.rbm import RBM

from _common import data, make_parser, parse_args


def sample_chains(rbm, start, rows, steps, device):
    """Run one Gibbs chain from each of the images ``start``; every ``steps`` steps keep the
    chains' visible probabilities (the tutorial's "mean field"): an array (rows, chains, 784)."""
    v, pictures = tg.from_numpy(start).to(device), []
    for _ in range(rows):
        probs, v = rbm.gibbs(v, steps)          # the sample continues the chain
        pictures.append(probs.numpy())
    return np.stack(pictures)


def image_saver(out_dir):
    """A function that saves a uint8 picture as out_dir/name with matplotlib (grey map)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def save(name, picture):
        path = os.path.join(out_dir, name)
        plt.imsave(path, picture, cmap="gray", vmin=0, vmax=255)
        print(f"saved {path}")
        return path
    return save


def main(argv=None):
    p = make_parser(__doc__, epochs=15, lr=0.1, batch_size=20, uses_fit=False, compiles=True)
    p.add_argument("--k", type=int, default=15,
                   help="Gibbs steps per update of the persistent chains (default: %(default)s)")
    p.add_argument("--hidden", type=int, default=500, help="hidden units (default: %(default)s)")
    p.add_argument("--chains", type=int, default=20,
                   help="chains sampled after training (default: %(default)s)")
    p.add_argument("--rows", type=int, default=10,
                   help="pictures taken from each chain (default: %(default)s)")
    p.add_argument("--steps", type=int, default=1000,
                   help="Gibbs steps between two pictures of a chain (default: %(default)s)")
    p.add_argument("--out-dir", default=None, metavar="DIR",
                   help="save the filters and the samples as PNG files in this folder, with "
                        "matplotlib (default: no pictures)")
    args = parse_args(p, argv)
    tg.manual_seed(args.seed)
    train, valid, test = data(args)
    rbm = RBM(784, args.hidden).to(args.device)
    optimizer = optim.SGD(rbm.parameters(), lr=args.lr)
    loader = DataLoader(train.X, batch_size=args.batch_size, shuffle=True, seed=args.seed)

    def train_step(xb):
        # mean F(v_data) - mean F(v_model), the chain end held fixed: its gradient is the
        # PCD-k update; the model keeps the persistent chains between batches
        loss = rbm.cd_loss(xb, k=args.k, persistent=True)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss
    if args.compile:   # record the step (its k Gibbs steps) once, replay it on the others
        train_step = tg.compile(train_step)

    save = image_saver(args.out_dir) if args.out_dir else None
    history = []
    print("epoch  seconds  pseudo-likelihood cost  valid reconstruction cross-entropy")
    for epoch in range(1, args.epochs + 1):
        t0, costs = time.perf_counter(), []
        for xb in loader:
            xb = xb.to(args.device)
            costs.append(rbm.pseudo_likelihood(xb))     # before the update, as the tutorial
            train_step(xb)
        seconds = time.perf_counter() - t0
        recon = rbm.reconstruction_cross_entropy(tg.from_numpy(valid.X).to(args.device))
        history.append(dict(epoch=epoch, seconds=seconds, cost=float(np.mean(costs)),
                            valid_recon=recon))
        print(f"{epoch:5d} {seconds:8.1f} {np.mean(costs):23.2f} {recon:35.2f}", flush=True)
        if save:                                # the filters after each epoch, as the tutorial
            save("rbm_filters.png", tile_images(rbm.W.numpy().T[:100], (28, 28), (10, 10)))

    start = np.random.default_rng(args.seed).integers(len(test.X) - args.chains + 1)
    samples = sample_chains(rbm, test.X[start:start + args.chains], args.rows, args.steps,
                            args.device)
    if save:
        save("rbm_samples.png", tile_images(samples.reshape(-1, 784), (28, 28),
                                            (args.rows, args.chains), scale=False))
    return history, samples


if __name__ == "__main__":
    main()
