"""Autoencoders on MNIST: the Theano tutorial's denoising autoencoder, and a deep autoencoder
that beats PCA.

--model dae (dA.py): 784 -> 500 sigmoid -> 784 sigmoid, tied weights (the decoder is the
encoder's weight transposed), cost = cross-entropy summed over the 784 pixels, SGD lr 0.1,
batch 20, 15 epochs; trained with 0% and with 30% masking noise, the filters of each saved.
    python examples/autoencoder.py --model dae --epochs 15 --out-dir docs/img
--model deep: 784-1000-500-250-30 ReLU encoder, mirrored decoder, sigmoid output, trained end
to end with Adam (lr 1e-3, batch 128) on the same cross-entropy; compared with PCA on 30
components by the squared error per test image, sum over pixels (Hinton & Salakhutdinov,
Science 2006: 3.00 for their pre-trained autoencoder, 13.87 for PCA).
    python examples/autoencoder.py --model deep --epochs 10 --out-dir docs/img
"""
import os
import time

import numpy as np

import tinygrad_edu as tg
from tinygrad_edu import optim
from tinygrad_edu.data import DataLoader, tile_images
from tinygrad_edu.nn.autoencoder import DeepAutoencoder, TiedAutoencoder

from _common import data, make_parser, parse_args

DEFAULTS = {"dae": dict(lr=0.1, batch_size=20), "deep": dict(lr=1e-3, batch_size=128)}


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


def gradient_step(model, optimizer, compiled):
    """One SGD step on a batch, returning its cost; with ``compiled``, recorded on the first
    batch and replayed on the others (tg.compile: fresh masking noise every time)."""
    def train_step(xb):
        loss = model.loss(xb)              # sum over pixels, mean over the batch
        optimizer.zero_grad()
        loss.backward()                    # the tied weight gets the sum of both uses
        optimizer.step()
        return loss
    return tg.compile(train_step) if compiled else train_step


def train_dae(args, train, corruption):
    """The tutorial's dA: 784 -> 500 sigmoid -> 784 sigmoid, tied weights, trained by SGD on
    the cross-entropy of reconstructing each clean image from its corrupted copy."""
    model = TiedAutoencoder(784, 500, corruption=corruption).to(args.device)
    optimizer = optim.SGD(model.parameters(), lr=args.lr)
    loader = DataLoader(train.X, batch_size=args.batch_size, shuffle=True, seed=args.seed)
    train_step = gradient_step(model, optimizer, args.compile)
    history = []
    print(f"corruption {corruption:.0%}\nepoch  seconds  train cost (cross-entropy)")
    for epoch in range(1, args.epochs + 1):
        t0, costs = time.perf_counter(), []
        model.train()                      # masking noise on (for corruption > 0)
        for xb in loader:
            loss = train_step(xb.to(args.device))
            costs.append(loss.item())
        history.append(dict(epoch=epoch, train_loss=float(np.mean(costs))))
        print(f"{epoch:5d} {time.perf_counter() - t0:8.1f} {np.mean(costs):27.2f}", flush=True)
    return model, history


def run_dae(args, save):
    train, _, _ = data(args)
    histories = {}
    for corruption in (0.0, 0.3):
        model, histories[corruption] = train_dae(args, train, corruption)
        if save:                           # the first 100 of the 500 filters (rows of weight)
            save(f"dae_filters_corruption_{round(corruption * 100)}.png",
                 tile_images(model.weight.numpy()[:100], (28, 28), (10, 10)))
    return histories


# ---- the deep autoencoder against PCA ----------------------------------------------------------
def build_deep():
    """Encoder 784-1000-500-250-30 with ReLU units and a linear 30-unit code, the mirrored
    decoder with its own weights; the output is a logit per pixel (its sigmoid, the
    reconstruction)."""
    return DeepAutoencoder((784, 1000, 500, 250, 30), activation="relu", code_activation="linear")


def pca(X_train, k):
    """The mean and the k leading principal directions (columns of U, D x k) of X_train,
    from the eigendecomposition of its covariance; x ~ mean + (x - mean) U U^T."""
    mean = X_train.mean(axis=0, dtype=np.float64)
    Xc = X_train - mean
    _, U = np.linalg.eigh(Xc.T @ Xc / len(Xc))       # ascending eigenvalues
    return mean, U[:, ::-1][:, :k]


def squared_error(X, R):
    """Mean over images of the squared error summed over the pixels, sum_d (x_d - r_d)^2."""
    return float(((np.asarray(X, np.float64) - R) ** 2).sum(axis=1).mean())


def reconstruct(model, X, device, batch_size=1000):
    """The model's reconstructions of the images X (a NumPy array), in evaluation mode."""
    model.eval()
    with tg.no_grad():
        return np.concatenate([model(tg.from_numpy(X[i:i + batch_size]).to(device)).numpy()
                               for i in range(0, len(X), batch_size)])


def run_deep(args, save):
    train, valid, test = data(args)
    model = build_deep().to(args.device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    loader = DataLoader(train.X, batch_size=args.batch_size, shuffle=True, seed=args.seed)
    train_step = gradient_step(model, optimizer, args.compile)
    history = []
    print("epoch  seconds  train cross-entropy  valid squared error")
    for epoch in range(1, args.epochs + 1):
        t0, total_ce = time.perf_counter(), 0.0
        model.train()
        for xb in loader:
            loss = train_step(xb.to(args.device))  # cross-entropy: sum over pixels, mean
            total_ce += loss.item() * len(xb)
        seconds, n = time.perf_counter() - t0, len(train.X)
        valid_error = squared_error(valid.X, reconstruct(model, valid.X, args.device))
        history.append(dict(epoch=epoch, train_loss=total_ce / n, valid_error=valid_error))
        print(f"{epoch:5d} {seconds:8.1f} {total_ce / n:20.3f} {valid_error:19.3f}", flush=True)
    recon = reconstruct(model, test.X, args.device)
    mean, U = pca(train.X, 30)
    pca_recon = mean + (test.X - mean) @ U @ U.T
    ae_error, pca_error = squared_error(test.X, recon), squared_error(test.X, pca_recon)
    print(f"test squared error per image: autoencoder {ae_error:.2f}, PCA (30 components) "
          f"{pca_error:.2f} (the autoencoder's is {ae_error / pca_error:.0%} of PCA's)")
    if save:
        rows = [test.X[:10], np.clip(pca_recon[:10], 0, 1), recon[:10]]   # original, PCA, AE
        save("deep_autoencoder_reconstructions.png",
             tile_images(np.concatenate(rows), (28, 28), (3, 10), spacing=2, scale=False))
    return history, ae_error, pca_error


def main(argv=None):
    p = make_parser(__doc__, epochs=15, batch_size=None, uses_fit=False, compiles=True)
    p.add_argument("--model", choices=("dae", "deep"), default="dae",
                   help="the denoising autoencoder (twice: 0%% and 30%% corruption) or the deep "
                        "autoencoder against PCA (default: %(default)s)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: 0.1 for dae, 1e-3 for deep)")
    p.add_argument("--out-dir", default=None, metavar="DIR",
                   help="save the pictures (filters, reconstructions) as PNG files in this "
                        "folder, with matplotlib (default: no pictures)")
    for action in p._actions:      # the batch size too depends on the model
        if action.dest == "batch_size":
            action.help = "images per mini-batch (default: 20 for dae, 128 for deep)"
    args = parse_args(p, argv)
    for key, value in DEFAULTS[args.model].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    tg.manual_seed(args.seed)
    save = image_saver(args.out_dir) if args.out_dir else None
    return (run_dae if args.model == "dae" else run_deep)(args, save)


if __name__ == "__main__":
    main()
