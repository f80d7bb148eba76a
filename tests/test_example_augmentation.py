"""examples/augmentation.py on a tiny slice of MNIST: both runs train from the same seed, the
augmented one on distorted batches, the comparison is printed and the PNG grid is written."""
import os
import pathlib
import sys

import pytest

from tinygrad_edu.data.augment import RandomHorizontalFlip

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, os.fspath(EXAMPLES))

import augmentation  # noqa: E402

TINY = ["--limit", "160", "--batch-size", "32", "--epochs", "1", "--no-progress"]


def test_the_example_compares_plain_and_augmented_training(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from matplotlib import image
    png = tmp_path / "img" / "augmentation.png"
    results = augmentation.main(TINY + ["--out", str(png)])
    text = capsys.readouterr().out
    assert sorted(results) == ["augmented", "plain"]
    (plain, plain_acc), (augmented, augmented_acc) = results["plain"], results["augmented"]
    assert len(plain) == len(augmented) == 1 and 0 <= plain_acc <= 1 and 0 <= augmented_acc <= 1
    # the same seed and data: only the distorted batches make the two runs differ
    assert plain.records[0]["train_loss"] != augmented.records[0]["train_loss"]
    again = augmentation.main(TINY + ["--out", ""])["plain"][0]
    assert again.records[0]["train_loss"] == plain.records[0]["train_loss"]
    assert "without augmentation" in text and "seconds per epoch" in text
    assert "ElasticDistortion(alpha=34.0, sigma=4.0" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert image.imread(png).shape[:2] == (6 * 29 - 1, 10 * 29 - 1)  # original + 5 copies


def test_the_augmentation_suits_digits_no_flip_and_small_moves():
    t = augmentation.augmentation()
    assert not any(isinstance(s, RandomHorizontalFlip) for s in t.transforms)
    assert t.transforms[0].degrees == (-10.0, 10.0) and t.transforms[0].scale == (0.9, 1.1)
