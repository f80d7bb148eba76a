"""Looking inside networks (tinygrad_edu.interpret): saliency against gradients taken by hand,
occlusion on a model whose answer is known, filter and feature-map grids, gradient ascent on
the input, and that none of them changes the model, its gradients, its modes or the caller's
arrays, even when it fails."""
import os

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import interpret, nn
from tinygrad_edu.interpret import _blur

RNG = np.random.default_rng(0)


def convnet(seed=0):
    """(N, 2, 6, 6) -> 4 scores, with dropout (so eval mode matters) and max-pooling."""
    tg.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Dropout(0.5), nn.Flatten(), nn.Linear(3 * 3 * 3, 4))


def images(n=3, c=2, h=6, w=6):
    return RNG.random((n, c, h, w)).astype(np.float32)


def input_gradient(model, x, target):
    """d sum_n S_{t_n}(x_n) / dx, taken by hand with tg.grad, in eval mode."""
    model.eval()
    xt = tg.Tensor(x, requires_grad=True)
    out = model(xt)
    onehot = np.zeros(out.shape, dtype=np.float32)
    onehot[np.arange(len(x)), target] = 1
    (g,) = tg.grad((out * tg.Tensor(onehot)).sum(), xt)
    model.train()
    return g.numpy()


# ---- saliency -----------------------------------------------------------------------------------
def test_saliency_is_the_abs_input_gradient_maxed_over_channels():
    model, x, target = convnet(), images(), np.array([0, 3, 1])
    maps = interpret.saliency(model, x, target)
    assert maps.shape == (3, 6, 6)
    np.testing.assert_allclose(maps, np.abs(input_gradient(model, x, target)).max(axis=1),
                               rtol=1e-6, atol=1e-7)
    # an int target is the same target for every image
    np.testing.assert_array_equal(interpret.saliency(model, x, 2),
                                  interpret.saliency(model, x, [2, 2, 2]))


def test_saliency_of_a_linear_model_is_the_abs_weight_row():
    model = nn.Sequential(nn.Flatten(), nn.Linear(5 * 4, 3))
    maps = interpret.saliency(model, images(2, 1, 5, 4), [2, 0])
    w = model[1].weight.numpy()
    np.testing.assert_array_equal(maps[0], np.abs(w[2]).reshape(5, 4))
    np.testing.assert_array_equal(maps[1], np.abs(w[0]).reshape(5, 4))


def test_smoothgrad_follows_its_formula_and_is_reproducible():
    model, x, target = convnet(), images(), [1, 2, 3]
    smooth = interpret.saliency(model, x, target, smooth=4, noise=0.2, rng=7)
    gen = np.random.default_rng(7)
    sigma = 0.2 * (x.max(axis=(1, 2, 3), keepdims=True) - x.min(axis=(1, 2, 3), keepdims=True))
    mean = sum(input_gradient(model, x + sigma * gen.standard_normal(x.shape, dtype=np.float32),
                              target) for _ in range(4)) / 4
    np.testing.assert_allclose(smooth, np.abs(mean).max(axis=1), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(smooth, interpret.saliency(model, x, target, smooth=4,
                                                             noise=0.2, rng=7))
    assert not np.allclose(smooth, interpret.saliency(model, x, target))
    tg.manual_seed(5)   # rng=None: the engine's generator
    a = interpret.saliency(model, x, target, smooth=2)
    tg.manual_seed(5)
    np.testing.assert_array_equal(a, interpret.saliency(model, x, target, smooth=2))


# ---- occlusion ----------------------------------------------------------------------------------
def region_model():
    """Class 0's logit is a quarter of the sum of the pixels x[0:4, 0:4], class 1's is 0: so
    p(class 0) = sigmoid(sum / 4) falls exactly when the patch covers that region."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    mask = np.zeros((8, 8), dtype=np.float32)
    mask[:4, :4] = 0.25
    model[1].weight.data[...] = np.stack([mask.ravel(), np.zeros(64, dtype=np.float32)])
    model[1].bias.data[...] = 0
    return model


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_occlusion_is_lowest_where_the_patch_hides_what_the_answer_depends_on():
    x = np.ones((1, 1, 8, 8), dtype=np.float32)
    maps = interpret.occlusion(region_model(), x, 0, patch=2, stride=2, fill=0.0)
    want = np.full((4, 4), sigmoid(4.0))        # patch outside the region: sum 16 -> logit 4
    want[:2, :2] = sigmoid(3.0)                 # inside: 4 pixels of 16 hidden -> logit 3
    np.testing.assert_allclose(maps[0], want, rtol=1e-6)
    # stride 1: positions 0..6; a patch at (i, j) hides |[i, i+2) x [j, j+2) & [0, 4)^2| pixels
    maps = interpret.occlusion(region_model(), x, [1], patch=2, stride=1, fill=0.0)
    hidden = np.array([[min(i + 2, 4) - min(i, 4) for i in range(7)]] * 7)
    hidden = hidden * hidden.T
    np.testing.assert_allclose(maps[0], 1 - sigmoid((16 - hidden) / 4), rtol=1e-5)


def test_occlusion_fills_with_the_image_mean_and_upsamples():
    x = np.zeros((2, 1, 8, 8), dtype=np.float32)
    x[:, :, :, 4:] = 2.0                                   # mean 1 each
    x[1, :, 0, 0] = 32.0                                   # image 1: mean 1.5
    model = region_model()
    maps = interpret.occlusion(model, x, 0, patch=4, stride=4)
    # the region [0:4, 0:4] holds zeros (and a 32 in image 1) until the patch at (0, 0)
    # fills it with the mean: logit 16 * mean / 4
    np.testing.assert_allclose(maps[0], [[sigmoid(4.0), 0.5], [0.5, 0.5]], rtol=1e-6)
    np.testing.assert_allclose(maps[1], [[sigmoid(6.0), sigmoid(8.0)], [sigmoid(8.0)] * 2],
                               rtol=1e-6)
    full = interpret.occlusion(model, x, 0, patch=4, stride=4, upsample=True)
    np.testing.assert_allclose(full[0], np.kron(maps[0], np.ones((4, 4))), rtol=1e-6)
    # stride 3, patch 4: pixels 7 are covered by no patch and get the unoccluded probability
    full = interpret.occlusion(model, x, 0, patch=4, stride=3, upsample=True)
    assert full.shape == (2, 8, 8) and full[0, 7, 7] == pytest.approx(sigmoid(0), rel=1e-6)
    assert full[1, 7, 0] == pytest.approx(sigmoid(8.0), rel=1e-6)
    np.testing.assert_array_equal(interpret.occlusion(model, x, 0, patch=3, batch_size=2),
                                  interpret.occlusion(model, x, 0, patch=3))


# ---- filters and feature maps -------------------------------------------------------------------
def test_filter_grid_shapes_and_modes():
    conv = nn.Conv2d(1, 5, 3)
    arrays, grid = interpret.filter_grid(conv)
    assert arrays.shape == (5, 3, 3) and grid.shape == (7, 11) and grid.dtype == np.uint8
    np.testing.assert_array_equal(arrays, conv.weight.numpy()[:, 0])
    w = RNG.standard_normal((4, 2, 3, 3))
    each = interpret.filter_grid(w)                          # one row per filter, a column per
    assert each.arrays.shape == (4, 2, 3, 3) and each.grid.shape == (15, 7)   # input channel
    mean = interpret.filter_grid(tg.Tensor(w), channels="mean", spacing=0)
    np.testing.assert_allclose(mean.arrays, w.mean(axis=1))
    assert mean.grid.shape == (6, 6)
    with pytest.raises(ValueError, match=r"weight \(C_out, C_in, kh, kw\), got shape \(4, 9\)"):
        interpret.filter_grid(np.zeros((4, 9)))
    with pytest.raises(ValueError, match="channels must be 'each' or 'mean', got 'rgb'"):
        interpret.filter_grid(w, channels="rgb")


def test_feature_maps_match_the_submodules_run_by_hand_and_forward_is_restored():
    model, x = convnet(), images(1)
    arrays, grid = interpret.feature_maps(model, model[2], x[0])
    model.eval()
    np.testing.assert_allclose(arrays, model[:3](tg.Tensor(x)).numpy()[0], rtol=1e-6)
    assert arrays.shape == (3, 3, 3) and grid.shape == (7, 7)          # 2 x 2 grid
    assert "forward" not in model[2].__dict__                      # the class's method again
    # an instance's own forward is put back too, and so is the original after an error
    model[1].forward = own = model[1].forward
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 2, H, W\)"):
        interpret.feature_maps(model, model[1], images(1, c=3))
    assert model[1].__dict__["forward"] is own and "forward" not in model[0].__dict__
    with pytest.raises(ValueError, match="ReLU is not a submodule of the model"):
        interpret.feature_maps(model, nn.ReLU(), x)
    with pytest.raises(ValueError, match=r"needs one image, got a batch of shape \(3, 2, 6, 6\)"):
        interpret.feature_maps(model, model[0], images(3))
    with pytest.raises(ValueError, match=r"Flatten gave \(1, 27\), not maps"):
        interpret.feature_maps(model, model[4], x)


# ---- gradient ascent on the input ---------------------------------------------------------------
def test_activation_maximization_steps_follow_the_formula():
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 3, 3))
    x0 = RNG.random((2, 3, 3)).astype(np.float32)
    w = model[1].weight.numpy()[1].reshape(2, 3, 3)
    got = interpret.activation_maximization(model, 1, x0=x0, steps=1, lr=0.3, l2=0.5,
                                            normalize=False, clip=None)
    np.testing.assert_allclose(got, x0 + 0.3 * (w - 2 * 0.5 * x0), rtol=1e-6)
    d = w - 2 * 0.5 * x0
    got = interpret.activation_maximization(model, 1, x0=x0, steps=1, lr=0.3, l2=0.5)
    np.testing.assert_allclose(got, np.clip(x0 + 0.3 * d / np.abs(d).max(), 0, 1),
                               rtol=1e-5, atol=1e-7)
    got = interpret.activation_maximization(model, 1, x0=x0, steps=1, lr=0.3, l2=0.5,
                                            normalize=False, clip=None, blur_every=1)
    np.testing.assert_allclose(got, _blur((x0 + 0.3 * d)[None])[0], rtol=1e-5, atol=1e-7)
    assert interpret.activation_maximization(model, [0, 2], (2, 3, 3), steps=0).shape == \
        (2, 2, 3, 3)


def test_activation_maximization_raises_the_class_score_within_the_clip_range():
    model = convnet()
    start = interpret.activation_maximization(model, [0, 3], (2, 6, 6), steps=0, rng=1)
    end = interpret.activation_maximization(model, [0, 3], (2, 6, 6), steps=30, rng=1,
                                            blur_every=5, clip=(0, 1))
    model.eval()
    for k, c in enumerate([0, 3]):
        score = [model(tg.Tensor(x[k:k + 1])).numpy()[0, c] for x in (start, end)]
        assert score[1] > score[0] + 0.1
    assert 0 <= end.min() and end.max() <= 1


def test_blur_is_the_separable_121_filter():
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 16
    k = np.array([1, 2, 1])
    np.testing.assert_allclose(_blur(x)[0, 0, 1:4, 1:4], np.outer(k, k))
    assert _blur(np.full((2, 3, 4, 4), 0.7)) == pytest.approx(np.full((2, 3, 4, 4), 0.7))


def test_fooling_images_reach_the_confidence_from_noise():
    tg.manual_seed(2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), nn.Linear(16, 5))
    result = interpret.fooling_image(model, [0, 1, 2, 3, 4], confidence=0.99, steps=400,
                                     lr=0.05, shape=(1, 6, 6), rng=0, clip=(-3, 3))
    assert (result.confidence >= 0.99).all() and (result.steps < 400).all()
    model.eval()
    probs = tg.nn.functional.softmax(model(tg.Tensor(result.image)), dim=1).numpy()
    np.testing.assert_allclose(probs[np.arange(5), np.arange(5)], result.confidence, rtol=1e-5)
    # not reached: no error, the confidence says so, and every step was taken
    short = interpret.fooling_image(model, 3, steps=2, lr=1e-4, shape=(1, 6, 6), rng=0)
    assert short.image.shape == (1, 6, 6) and short.confidence < 0.99 and short.steps == 2


# ---- nothing changes: model, gradients, modes, caller's arrays; errors before work -------------
def first(x):
    return x[:1] if x.ndim == 4 else x


CALLS = {
    "saliency": lambda m, x, t: interpret.saliency(m, x, t, smooth=2, rng=0),
    "occlusion": lambda m, x, t: interpret.occlusion(m, x, t, patch=3),
    "feature_maps": lambda m, x, t: interpret.feature_maps(m, m[1], first(x)),
    "activation_maximization":
        lambda m, x, t: interpret.activation_maximization(m, t, x0=first(x), steps=3),
    "fooling_image": lambda m, x, t: interpret.fooling_image(m, t, x0=first(x), steps=3),
}


def snapshot(model):
    return ([p.data.copy() for p in model.parameters()], [p.grad for p in model.parameters()],
            [m.training for m in model.modules()])


def check_unchanged(model, before, x, x_copy):
    params, grads, modes = snapshot(model)
    for a, b in zip(params, before[0]):
        np.testing.assert_array_equal(a, b)
    assert all(g is h for g, h in zip(grads, before[1]))
    assert all(float(g.numpy().sum()) == g.numel() for g in grads)   # still all ones
    assert modes == before[2]
    np.testing.assert_array_equal(x, x_copy)


def prepared():
    model, x = convnet(), images()
    for p in model.parameters():
        p.grad = tg.ones(*p.shape)
    model[3].eval()                                   # a mixed mode, to be restored as it was
    return model, x, x.copy(), snapshot(model)


@pytest.mark.parametrize("name", list(CALLS))
def test_nothing_changes_after_a_call(name):
    model, x, x_copy, before = prepared()
    CALLS[name](model, x, 1)
    check_unchanged(model, before, x, x_copy)


@pytest.mark.parametrize("name", [n for n in CALLS if n != "feature_maps"])
def test_a_target_out_of_range_names_it_and_changes_nothing(name):
    model, x, x_copy, before = prepared()
    state = tg.get_rng_state()
    with pytest.raises(ValueError, match=r"target 4 is out of range for a model with 4 "
                                         r"classes \(0..3\)"):
        CALLS[name](model, x, 4 if name in ("activation_maximization", "fooling_image")
                    else [0, 4, 1])
    check_unchanged(model, before, x, x_copy)
    assert str(tg.get_rng_state()) == str(state)


@pytest.mark.parametrize("name", list(CALLS))
def test_a_wrong_rank_names_the_shape_and_changes_nothing(name):
    model, _, _, before = prepared()
    x = images(1)[0, 0]                               # (6, 6)
    with pytest.raises(ValueError, match=r"got shape \(6, 6\)"):
        CALLS[name](model, x, 1)
    check_unchanged(model, before, x, x.copy())


def test_other_bad_arguments_are_named():
    model, x = convnet(), images()
    for call, match in [
        (lambda: interpret.saliency(model, x, [1, 2]), r"target has shape \(2,\); expected"),
        (lambda: interpret.saliency(model, x, 1.5), "target must be an int"),
        (lambda: interpret.saliency(model, x, 1, smooth=-1), "smooth must be an integer >= 0"),
        (lambda: interpret.occlusion(model, x, 1, patch=7), "patch 7 is larger than the images"),
        (lambda: interpret.activation_maximization(model, 1), r"shape must be the image shape"),
        (lambda: interpret.fooling_image(model, 1, confidence=1.0, shape=(2, 6, 6)),
         r"confidence must lie in \(0, 1\)"),
        (lambda: interpret.fooling_image(model, [1, 2], x0=x, shape=None),
         "x0 holds 3 images for 2 targets"),
        (lambda: interpret.activation_maximization(model, 1, (2, 6, 6), clip=(1, 0)),
         "clip must be a pair low < high"),
    ]:
        with pytest.raises(ValueError, match=match):
            call()
    with pytest.raises(TypeError, match="rng must be None, an int seed or a numpy Generator"):
        interpret.saliency(model, x, 1, smooth=1, rng="seed")


# ---- PNG files ----------------------------------------------------------------------------------
def test_every_function_writes_a_png_when_given_a_path(tmp_path):
    pytest.importorskip("matplotlib")
    model, x = convnet(), images()
    calls = {"saliency": lambda p: interpret.saliency(model, x, 1, path=p),
             "occlusion": lambda p: interpret.occlusion(model, x, 1, patch=3, path=p),
             "filters": lambda p: interpret.filter_grid(model[0], path=p),
             "features": lambda p: interpret.feature_maps(model, model[1], x[:1], path=p),
             "classes": lambda p: interpret.activation_maximization(model, [0, 1], (2, 6, 6),
                                                                   steps=2, path=p),
             "fooling": lambda p: interpret.fooling_image(model, 2, shape=(2, 6, 6), steps=2,
                                                          path=p)}
    for name, call in calls.items():
        returned = call(str(tmp_path / f"{name}.png"))
        assert returned is not None
        with open(tmp_path / f"{name}.png", "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", name
    assert sorted(os.listdir(tmp_path)) == sorted(f"{n}.png" for n in calls)   # no temp files
    np.testing.assert_array_equal(interpret.saliency(model, x, 1, path=tmp_path / "s.png"),
                                  interpret.saliency(model, x, 1))       # same arrays back


def test_a_failed_save_leaves_nothing(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    model, x = convnet(), images()
    with pytest.raises(FileNotFoundError, match="does not exist"):   # checked before any work
        interpret.saliency(model, x, 1, path=tmp_path / "missing" / "s.png")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        interpret.filter_grid(model[0], path=tmp_path)

    def broken(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        interpret.filter_grid(model[0], path=tmp_path / "f.png")
    assert os.listdir(tmp_path) == []
