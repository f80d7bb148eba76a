"""Looking inside the tutorial convnet (tg.models.mnist_convnet(), trained as convnet.py trains
it: RMSprop, lr 1e-3, rho 0.9, eps 1e-6, batch 128): saliency maps, plain and SmoothGrad,
occlusion maps, the first layer's 32 filters, the feature maps of the first two conv blocks,
activation maximisation and fooling images for all ten classes, as PNG files (needs
matplotlib). With --checkpoint PATH an existing checkpoint is loaded instead (fit's resume:
only the epochs it lacks are trained), e.g. one that convnet.py wrote.

The pictures follow Simonyan, Vedaldi & Zisserman 2014 (saliency maps, class models), Smilkov
et al. 2017 (SmoothGrad), Zeiler & Fergus 2014 (occlusion, feature maps) and Nguyen, Yosinski
& Clune 2015, whose gradient-ascent fooling images reach 99.99% confidence on ImageNet nets.
    python examples/inside_convnet.py --epochs 2 --checkpoint inside.tg
"""
import os
import time

import tinygrad_edu as tg
from tinygrad_edu import interpret, optim
from tinygrad_edu.models import mnist_convnet
from tinygrad_edu.training import evaluate, fit

from _common import data, fit_options, make_parser, parse_args


def options(argv):
    p = make_parser(__doc__, epochs=2, lr=1e-3)
    p.add_argument("--out", default=os.path.join("docs", "img", "inside"), metavar="DIR",
                   help="folder for the PNG files, created if missing (default: %(default)s)")
    p.add_argument("--digits", type=int, default=6, metavar="N",
                   help="how many test digits get saliency and occlusion maps (default: "
                        "%(default)s)")
    p.add_argument("--steps", type=int, default=200,
                   help="gradient steps of activation maximisation (default: %(default)s)")
    p.add_argument("--fool-steps", type=int, default=500,
                   help="most gradient steps of each fooling image (default: %(default)s)")
    p.add_argument("--confidence", type=float, default=0.99,
                   help="confidence the fooling images aim at (default: %(default)s)")
    args = parse_args(p, argv)
    if min(args.digits, args.steps, args.fool_steps) < 1 or not 0 < args.confidence < 1:
        p.error("--digits, --steps and --fool-steps must be at least 1, --confidence in (0, 1)")
    try:
        import matplotlib  # noqa: F401  (before training: the pictures need it)
    except ImportError:
        p.error("this example draws PNG files: pip install matplotlib")
    return args


def main(argv=None):
    args = options(argv)
    tg.manual_seed(args.seed)
    model = mnist_convnet().to(args.device)
    optimizer = optim.RMSprop(model.parameters(), lr=args.lr, alpha=0.9, eps=1e-6,
                              eps_inside_sqrt=True)
    train, valid, test = data(args, flatten=False)             # images as (N, 1, 28, 28)
    run = fit_options(args)
    run["resume"] = args.resume or bool(args.checkpoint and os.path.exists(args.checkpoint))
    t0 = time.perf_counter()
    fit(model, optimizer, train, valid, **run)
    test_loss, test_acc = evaluate(model, *test, device=args.device)
    print(f"test loss {test_loss:.4f}  test accuracy {test_acc:.2%}  "
          f"({time.perf_counter() - t0:.0f} s)")

    os.makedirs(args.out, exist_ok=True)
    out = {name: os.path.join(args.out, f"{name}.png") for name in (
        "saliency", "smoothgrad", "occlusion", "filters", "feature_maps_block1",
        "feature_maps_block2", "class_models", "fooling")}
    x, y = test.X[:args.digits], test.y[:args.digits]
    interpret.saliency(model, x, y, path=out["saliency"])
    interpret.saliency(model, x, y, smooth=25, noise=0.15, rng=args.seed, path=out["smoothgrad"])
    interpret.occlusion(model, x, y, patch=6, stride=2, path=out["occlusion"])
    interpret.filter_grid(model[0], path=out["filters"])
    interpret.feature_maps(model, model[1], x[0], path=out["feature_maps_block1"])   # ReLU 1
    interpret.feature_maps(model, model[5], x[0], path=out["feature_maps_block2"])   # ReLU 2
    classes = list(range(10))
    # steps of at most 0.05 per pixel, blurred every 4 steps: smooth strokes, not speckle
    interpret.activation_maximization(model, classes, (1, 28, 28), steps=args.steps, lr=0.05,
                                      blur_every=4, rng=args.seed, path=out["class_models"])
    fooled = interpret.fooling_image(model, classes, confidence=args.confidence,
                                     steps=args.fool_steps, shape=(1, 28, 28), rng=args.seed,
                                     path=out["fooling"])
    print(f"fooling images from noise (aim: confidence >= {args.confidence}):")
    print(f"{'class':>5} {'confidence':>11} {'steps':>6}")
    for c, p, s in zip(classes, fooled.confidence, fooled.steps):
        print(f"{c:>5} {p:>11.4f} {s:>6}")
    print(f"{int((fooled.confidence >= args.confidence).sum())} of 10 reached it")
    for name, path in out.items():
        print(f"wrote {path}")
    return out, fooled, test_acc


if __name__ == "__main__":
    main()
