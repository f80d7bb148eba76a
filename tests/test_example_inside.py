"""examples/inside_convnet.py on a tiny slice of MNIST: it trains (or loads its checkpoint),
writes every picture and prints the fooling table; bad options stop before any work."""
import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, os.fspath(EXAMPLES))

import inside_convnet  # noqa: E402

PICTURES = ["saliency", "smoothgrad", "occlusion", "filters", "feature_maps_block1",
            "feature_maps_block2", "class_models", "fooling"]
TINY = ["--limit", "128", "--epochs", "1", "--batch-size", "32", "--digits", "2", "--steps", "3",
        "--fool-steps", "3", "--no-progress"]


def test_the_example_writes_every_picture_and_reloads_its_checkpoint(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out, ckpt = tmp_path / "pictures", tmp_path / "inside.tg"
    argv = TINY + ["--out", str(out), "--checkpoint", str(ckpt)]
    paths, fooled, test_acc = inside_convnet.main(argv)
    text = capsys.readouterr().out
    assert sorted(paths) == sorted(PICTURES) and ckpt.exists()
    for name in PICTURES:
        with open(out / f"{name}.png", "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", name
        assert f"wrote {out / name}.png" in text
    assert "class  confidence  steps" in text and "of 10 reached it" in text
    assert fooled.image.shape == (10, 1, 28, 28) and len(fooled.confidence) == 10
    assert 0 <= test_acc <= 1 and "    1 " in text                     # one epoch trained
    # a second run finds the checkpoint: it loads the same net instead of training again
    again, fooled_again, acc_again = inside_convnet.main(argv)
    text = capsys.readouterr().out
    assert "resumed from" in text and acc_again == test_acc
    assert (fooled_again.confidence == fooled.confidence).all()


@pytest.mark.parametrize("args, message", [
    (["--digits", "0"], "--digits, --steps and --fool-steps must be at least 1"),
    (["--confidence", "1"], "--confidence in (0, 1)"),
    (["--resume"], "--resume needs --checkpoint PATH"),
])
def test_bad_options_stop_before_any_work(args, message, tmp_path):
    result = subprocess.run([sys.executable, str(EXAMPLES / "inside_convnet.py"), *args,
                             "--out", "pictures"], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr and result.stdout == ""
    assert list(tmp_path.iterdir()) == []
