"""Run the Python code blocks of the README and docs/*.md, so the documentation cannot rot.

Blocks of one file run in order in one namespace (later blocks use earlier names). A block that
defines ``test_*`` functions, as the README's Hypothesis example does, has them called right
after it runs (a ``@given`` test runs its examples when called), so a test shown in the docs
must pass, not just parse. Every file path cited in backticks must exist."""
import glob
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# the folders of this repository that a document may cite a path in
CITED_FOLDERS = ("tinygrad_edu", "tests", "examples", "benchmarks", "kernels", "docs", "data",
                 "scripts")


def python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def run_blocks(name, text, namespace=None):
    """Exec each python block of ``text`` in order, in one namespace, then call the ``test_*``
    functions that block defined; raise AssertionError naming the block that failed."""
    namespace = {"__name__": f"docs_{name}", **(namespace or {})}
    for i, code in enumerate(python_blocks(text)):
        where = f"{name}, code block {i + 1}"
        before = dict(namespace)
        try:
            exec(compile(code, where, "exec"), namespace)
            tests = [f for key, f in namespace.items() if key.startswith("test_") and callable(f)
                     and before.get(key) is not f]
            for test in tests:
                test()
        except Exception as e:
            notes = "".join(f"\n{note}" for note in getattr(e, "__notes__", ()))  # Hypothesis's
            raise AssertionError(f"{where} failed: {e!r}{notes}\n{code}") from e


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_code_blocks_run(path, capsys):
    text = path.read_text()
    if not python_blocks(text):
        pytest.skip(f"{path.name} has no python blocks")
    run_blocks(path.name, text)


def test_readme_blocks_run_each_on_its_own(capsys):
    """A reader copies one block of the README, not the page: each has its own imports."""
    for i, code in enumerate(python_blocks((ROOT / "README.md").read_text())):
        run_blocks(f"README.md alone, block {i + 1}", f"```python\n{code}```")


BROKEN_TEST = '''
```python
import tinygrad_edu as tg
```

```python
def test_wrong_gradient():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.numpy().tolist() == [1.0, 1.0]     # wrong: it is 2x
```
'''

BROKEN_PROPERTY = '''
```python
from hypothesis import given, settings, strategies as st

@settings(max_examples=20, deadline=None)
@given(st.floats(-10, 10))
def test_square_is_at_most_one(v):
    assert v * v <= 1                                 # false for |v| > 1
```
'''


def test_the_runner_calls_the_tests_a_block_defines():
    with pytest.raises(AssertionError, match=r"broken\.md, code block 2 failed: AssertionError"):
        run_blocks("broken.md", BROKEN_TEST)
    # the message carries the failing example that Hypothesis found
    with pytest.raises(AssertionError, match=r"(?s)code block 1 failed: AssertionError.*"
                                             r"test_square_is_at_most_one\(\s*v="):
        run_blocks("broken.md", BROKEN_PROPERTY)


def test_the_runner_runs_good_tests_and_reports_errors_of_plain_code():
    calls = []
    run_blocks("good.md", "```python\ndef test_ok():\n    calls.append(1)\n```\n"
                          "```python\nx = 1\n```\n", namespace={"calls": calls})
    assert calls == [1]                    # defined in block 1, called once, not again after 2
    with pytest.raises(AssertionError, match=r"code block 1 failed: NameError"):
        run_blocks("bad.md", "```python\nprint(undefined_name)\n```\n")


def cited_paths(text):
    """Paths that start with one of the repository's folders, in backticks (`tests/x.py`,
    `kernels/*.cu`, `tinygrad_edu/nn/`; a trailing ``:`` or ``,`` is punctuation) or as words
    of a shell block (```sh)."""
    spans = re.findall(r"`([^`\s]+)`", text)
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        spans += block.split()
    return sorted({s.rstrip(":,.") for s in spans if s.split("/")[0] in CITED_FOLDERS
                   and "/" in s})


def test_cited_paths_are_found_in_backticks():
    text = ("See `tests/core/test_autograd.py`, `kernels/*.cu`, `tinygrad_edu/nn/` and "
            "`tg.viz.to_dot`, `mlp.py --epochs 50`, `a/b`.\n"
            "```sh\npython -m pytest tests/gpu   # on a GPU\n```\n")
    assert cited_paths(text) == ["kernels/*.cu", "tests/core/test_autograd.py", "tests/gpu",
                                 "tinygrad_edu/nn/"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_cited_files_exist(path):
    missing = [p for p in cited_paths(path.read_text()) if not glob.glob(str(ROOT / p))]
    assert not missing, f"{path.name} cites paths that do not exist: {missing}"
