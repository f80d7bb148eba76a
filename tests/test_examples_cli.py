"""The examples' command lines, run as a user runs them (``python examples/X.py ...``, in a
subprocess): ``--help`` explains every option with its default and states the recipe and the
figure, and a bad combination of options stops before any data is loaded."""
import pathlib
import re
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
ALL = sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_"))
MNIST = ["batchnorm", "convnet", "early_stopping", "logistic_regression", "mlp", "modern_net"]
LOOP = ["logistic_regression", "mlp"]                      # they write the training loop out
FIT = [e for e in MNIST if e not in LOOP]                  # they call tg.training.fit
FIT_ONLY = ["--checkpoint", "--resume", "--plot", "--no-progress"]


def run(example, *args, cwd=None):
    return subprocess.run([sys.executable, str(EXAMPLES / f"{example}.py"), *args],
                          capture_output=True, text=True, timeout=60, cwd=cwd)


def split_help(help_text):
    """(usage and description, the options section); Python 3.10 says "optional arguments:"."""
    return re.split(r"^(?:options|optional arguments):\n", help_text, flags=re.M)


def options(help_text):
    """{option: its help text} from argparse's options section: an entry is a line starting
    with "  -" plus the more deeply indented lines after it."""
    section = split_help(help_text)[1]
    entries, current = {}, None
    for line in section.splitlines():
        if line.startswith("  -"):
            flags, help_ = (re.split(r"\s{2,}", line.strip(), maxsplit=1) + [""])[:2]
            current = flags.split(", ")[-1].split()[0]             # "-h, --help" -> "--help"
            entries[current] = help_
        elif line.startswith("   ") and current:
            entries[current] = (entries[current] + " " + line.strip()).strip()
        else:
            current = None
    return entries


def test_options_parses_argparse_help():
    text = ("usage: x\n\noptions:\n  -h, --help            show this help message and exit\n"
            "  --batch-size BATCH_SIZE\n                        images per batch (default: 128)\n"
            "  --lr LR               learning\n                        rate (default: 0.1)\n"
            "  --bare\n")
    assert options(text) == {"--help": "show this help message and exit",
                             "--batch-size": "images per batch (default: 128)",
                             "--lr": "learning rate (default: 0.1)", "--bare": ""}


@pytest.mark.parametrize("example", ALL)
def test_help_explains_every_option_with_its_default(example):
    result = run(example, "--help")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("usage: ") and not re.search(r"step +\d+ +loss|epoch +\d", out)
    opts = options(out)
    assert len(opts) >= 2
    for flag, help_ in opts.items():
        if flag != "--help":
            assert help_, f"{example}.py: {flag} has no help text"
            assert "(default: " in help_, f"{example}.py: {flag}'s help shows no default: {help_}"
    # the whole docstring is the description: the recipe, the figure, the command line
    doc = (EXAMPLES / f"{example}.py").read_text().split('"""')[1]
    for line in doc.strip().splitlines():
        assert line.strip() in out, f"{example}.py: --help lacks the docstring's {line!r}"
    assert f"python examples/{example}.py" in out


@pytest.mark.parametrize("example", MNIST)
def test_mnist_help_states_the_published_figure_and_the_limit(example):
    out = run(example, "--help").stdout
    description = split_help(out)[0]
    assert re.search(r"\d\d\.\d%", description), f"{example}.py states no published accuracy"
    limit = options(out)["--limit"]
    assert "validation" in limit and "test" in limit and "training" in limit


@pytest.mark.parametrize("example", FIT)
def test_resume_without_checkpoint_is_a_usage_error(example, tmp_path):
    result = run(example, "--resume", cwd=tmp_path)
    assert result.returncode == 2
    assert re.search(r"error: --resume needs --checkpoint PATH", result.stderr), result.stderr
    assert result.stdout == ""                 # no training started, no table printed
    assert list(tmp_path.iterdir()) == []      # and no file written


@pytest.mark.parametrize("example", FIT)
def test_fit_examples_offer_fits_options(example):
    assert set(FIT_ONLY) <= set(options(run(example, "--help").stdout))


@pytest.mark.parametrize("example", LOOP)
def test_loop_examples_say_what_they_leave_to_fit(example, tmp_path):
    out = run(example, "--help").stdout
    assert not set(FIT_ONLY) & set(options(out))
    description = split_help(out)[0]
    assert "tg.training.fit" in description and "--checkpoint" in description
    result = run(example, "--checkpoint", "ckpt.tg", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert "unrecognized arguments: --checkpoint ckpt.tg" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_early_stopping_patience_is_a_real_option():
    result = run("early_stopping", "--patience", "x")
    assert result.returncode == 2
    assert "argument --patience: invalid int value: 'x'" in result.stderr


def test_demo_help_does_not_run_the_demo():
    result = run("demo", "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: demo.py")
    assert "step    0  loss" not in result.stdout


# ---- the recurrent examples (issue 12) ---------------------------------------------------------
def test_sequential_mnist_help_states_the_figure_the_recipe_and_the_limit():
    out = run("sequential_mnist", "--help").stdout
    description = split_help(out)[0]
    assert re.search(r"\d\d\.\d%", description) and "LSTM" in description
    assert "clip_grad_norm_" in description and "Adam" in description
    opts = options(out)
    assert "validation" in opts["--limit"] and "test" in opts["--limit"]
    assert {"--clip", "--hidden-size", "--plot"} <= set(opts)
    assert not {"--checkpoint", "--resume", "--no-progress"} & set(opts)   # no fit here


def test_char_rnn_help_states_the_baseline_and_the_corpus():
    out = run("char_rnn", "--help").stdout
    description = split_help(out)[0]
    assert "unigram baseline" in description and "bits per character" in description
    assert "data/text/python_topics.txt" in description and ".detach()" in description
    assert {"--seq-len", "--clip", "--cell", "--temperatures", "--plot", "--limit"} <= set(
        options(out))


@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["--seq-len", "0"], "--seq-len must be at least 1, got 0"),
    (["--valid-fraction", "1.5"], "--valid-fraction must be between 0 and 1, got 1.5"),
    (["--temperatures", "0"], "--temperatures must be positive"),
    (["--limit", "100"], "100 characters are too few for 64 streams"),
    (["--limit", "5000", "--prompt", "\u00e6"], "--prompt: the corpus has no"),
    (["--cell", "rnn"], "argument --cell: invalid choice: 'rnn'"),
])
def test_char_rnn_bad_options_stop_before_training(args, message, tmp_path):
    result = run("char_rnn", *args, "--plot", "curve.png", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stdout.count("\n") <= 1 and "epoch" not in result.stdout   # no training
    assert list(tmp_path.iterdir()) == []                                    # no file written


@pytest.mark.parametrize("args", [["--epochs", "0"], ["--clip", "0"], ["--hidden-size", "0"]])
def test_sequential_mnist_bad_options_stop_before_training(args, tmp_path):
    result = run("sequential_mnist", *args, "--plot", "curves.png", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert "must be at least 1, --clip > 0" in result.stderr
    assert list(tmp_path.iterdir()) == []
