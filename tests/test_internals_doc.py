"""docs/internals.md matches the code: the names it cites exist, the counts it gives are those of
the source, its map lists tensor.py top to bottom, and the pictures it links exist and show the
current tape. (Its code blocks are run by tests/test_docs.py.)"""
import ast
import contextlib
import html
import importlib
import importlib.util
import pathlib
import re
import shutil
import threading

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import backend, creation, debug, viz

core = importlib.import_module("tinygrad_edu.tensor")  # tg.tensor is the factory function

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tinygrad_edu"
DOC = ROOT / "docs" / "internals.md"
SOURCE = (PACKAGE / "tensor.py").read_text()
MAX_IMAGE_BYTES = 200_000


def load_make_figures():
    spec = importlib.util.spec_from_file_location("make_figures", ROOT / "scripts/make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_figures = load_make_figures()


# ---- counts -------------------------------------------------------------------------------------
def stated_counts(text):
    """[(name, n)] for each "`tensor.py` is 534 lines" or "`_backprop`, is 43 lines" in text."""
    return [(name, int(n)) for name, n in re.findall(r"`([\w.]+)`,? is (\d+) lines", text)]


def actual_lines(name):
    """Lines of a file of the package (``tensor.py``), or of a top-level function of tensor.py."""
    if name.endswith(".py"):
        return len((PACKAGE / name).read_text().splitlines())
    for node in ast.parse(SOURCE).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            return node.end_lineno - node.lineno + 1
    raise LookupError(f"{name} is not a file of tinygrad_edu/ nor a function of tensor.py")


def wrong_counts(text):
    return [(name, n, actual_lines(name)) for name, n in stated_counts(text)
            if actual_lines(name) != n]


def test_counts_are_found_and_checked():
    text = "`tensor.py` is 3 lines; the engine, `_backprop`, is 1 lines; `grad` has 9 lines."
    assert stated_counts(text) == [("tensor.py", 3), ("_backprop", 1)]
    assert [name for name, _, _ in wrong_counts(text)] == ["tensor.py", "_backprop"]
    assert wrong_counts(f"`tensor.py` is {len(SOURCE.splitlines())} lines") == []


def test_the_counts_in_the_doc_are_those_of_the_code():
    text = DOC.read_text()
    wrong = wrong_counts(text)
    assert not wrong, ("docs/internals.md states line counts that the code no longer has; "
                       "update the doc: " + ", ".join(f"`{name}` says {n}, is {real}"
                                                      for name, n, real in wrong))
    # every "N lines" of the page is in the checked form, so none can go stale unnoticed
    loose = re.findall(r"\d[\d,]* lines", text)
    assert len(loose) == len(stated_counts(text)), f"unchecked counts in the doc: {loose}"


# ---- the map of tensor.py -----------------------------------------------------------------------
def map_names(text):
    """The names in the first column of the table under "## 0. A map of tensor.py", in order."""
    section = text.split("## 0. A map of tensor.py", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return [name for cell in rows for name in re.findall(r"`(\w+)`", cell)]


def test_the_map_lists_every_function_and_class_of_tensor_py_top_to_bottom():
    defined = [node.name for node in ast.parse(SOURCE).body
               if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    assert map_names(DOC.read_text()) == defined, (
        "the map in docs/internals.md must list tensor.py's functions and classes in file order")


# ---- names cited in backticks -------------------------------------------------------------------
CLASSES = [v for v in vars(core).values() if isinstance(v, type) and v.__module__ == core.__name__]
ROOTS = {"tg": tg, "debug": debug, "viz": viz, "backend": backend, "creation": creation,
         "np": np, "threading": threading, "contextlib": contextlib}
EXTERNAL = {"torch"}  # cited for comparison, not installed
CORPUS = "\n".join(p.read_text() for p in sorted(PACKAGE.rglob("*.py")))


def code_name(span):
    """The dotted name a backticked span cites (``Function.apply(*inputs)`` -> Function.apply,
    ``_version[0]`` -> _version, ``.grad`` -> grad), or None for an expression (``x @ W``)."""
    m = re.fullmatch(r"\.?([A-Za-z_]\w*(?:\.\w+)*)(?:\(.*\)|\[.*\])?", " ".join(span.split()))
    return m and m.group(1)


def _is_word(word):
    return re.search(rf"\b{re.escape(word)}\b", CORPUS) is not None


def resolves(name):
    """Does the code have it? A file of the package; a name of tensor.py (then every attribute
    after it must exist: ``Function.apply``); a private name, which must belong to tensor.py or
    one of its classes (``_wrap``, ``__enter__``); ``ctx.x``, an attribute of a node or a word
    of the package's source; a module's attribute (``tg.viz.draw``); else a local variable or
    an op's name, which must appear in the package's source as a word."""
    if name.endswith(".py"):
        return (PACKAGE / name).exists()
    first, *rest = name.split(".")
    if first in EXTERNAL:
        return True
    if first in ROOTS or hasattr(core, first):
        obj = ROOTS[first] if first in ROOTS else getattr(core, first)
        for part in rest:
            if not hasattr(obj, part):
                return False
            obj = getattr(obj, part)
        return True
    if first.startswith("_"):
        return not rest and any(hasattr(c, first) for c in CLASSES)
    if first == "ctx":
        return all(hasattr(core.Function, p) or _is_word(p) for p in rest)
    return all(_is_word(p) for p in [first, *rest])


def cited_names(text):
    """The names of the backticked spans of the text, outside its fenced code blocks."""
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    return {code_name(span) for span in re.findall(r"`([^`]+)`", prose)} - {None}


def missing_names(text):
    names = cited_names(text)
    return sorted(name for name in names if not resolves(name))


def test_the_name_checker_finds_what_the_code_lacks():
    text = ("`_backprop`, `_commit_leaf_grads(found, taken,\ncreate_graph)`, `Function.apply`, "
            "`Tensor._wrap`, `_version[0]`, `__enter__`, `tg.viz.draw`, `pending`, `ctx.inputs`, "
            "`tensor.py`, `x @ W + b`, `torch.from_numpy`; missing: `_no_such_helper`, "
            "`Function.no_such_method`, `tg.viz.no_such_tool`, `no_such_local_xyz`, "
            "`ctx.no_such_field_xyz`, `no_such_module.py`")
    assert missing_names(text) == ["Function.no_such_method", "_no_such_helper",
                                   "ctx.no_such_field_xyz", "no_such_local_xyz",
                                   "no_such_module.py", "tg.viz.no_such_tool"]


def test_every_name_the_doc_cites_exists():
    missing = missing_names(DOC.read_text())
    assert not missing, f"docs/internals.md cites names the code does not have: {missing}"


# ---- pictures -----------------------------------------------------------------------------------
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def image_links(path):
    return re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", path.read_text())


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_linked_images_exist_and_are_small(path):
    for link in image_links(path):
        image = path.parent / link
        assert image.is_file(), f"{path.name} links {link}, which does not exist"
        assert image.stat().st_size < MAX_IMAGE_BYTES, f"{link} is over {MAX_IMAGE_BYTES} bytes"


def test_the_docs_link_the_figures():
    assert set(image_links(DOC)) >= {"img/tape.svg", "img/im2col.png"}
    assert "img/im2col.png" in image_links(ROOT / "docs" / "kernels.md")


def svg_content(svg):
    """(sorted node and edge ids, sorted text lines) of a Graphviz SVG."""
    titles = [html.unescape(t) for t in re.findall(r"<title>(.*?)</title>", svg)]
    texts = [html.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", svg)]
    return sorted(t for t in titles if t != "tape"), sorted(texts)


def dot_content(dot):
    """The same, from our DOT source: what Graphviz will draw."""
    nodes = re.findall(r'^  (\w+) \[shape=\w+, .*label="(.*)"\];$', dot, flags=re.M)
    edges = re.findall(r'^  (\w+) -> (\w+)(?: \[label="(\d+)")?', dot, flags=re.M)
    ids = [n for n, _ in nodes] + [f"{a}->{b}" for a, b, _ in edges]
    texts = [line.replace('\\"', '"') for _, label in nodes for line in label.split("\\n")]
    return sorted(ids), sorted(texts + [n for _, _, n in edges if n])


def test_the_committed_tape_is_the_tape_of_the_current_code():
    """Rerun scripts/make_figures.py when this fails: the picture shows an older tape."""
    committed = svg_content((ROOT / "docs" / "img" / "tape.svg").read_text())
    assert committed == dot_content(tg.viz.to_dot(make_figures.tape_example()))


def test_the_doc_shows_the_expression_of_the_figure():
    assert tg.pp(make_figures.tape_example()) in DOC.read_text()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_make_tape_renders_the_tape(tmp_path):
    path = make_figures.make_tape(tmp_path / "tape.svg")
    assert svg_content(path.read_text()) == dot_content(tg.viz.to_dot(make_figures.tape_example()))
    assert [p.name for p in tmp_path.iterdir()] == ["tape.svg"]


def test_without_graphviz_the_script_says_so_and_changes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))
    old = tmp_path / "tape.svg"
    old.write_text("the previous picture")
    with pytest.raises(RuntimeError, match=r"needs Graphviz's `dot` program.*apt-get install "
                                           r"graphviz"):
        make_figures.make_tape(old)
    assert old.read_text() == "the previous picture" and list(tmp_path.iterdir()) == [old]

    out = tmp_path / "img"
    assert make_figures.main([str(out)]) == 1
    err = capsys.readouterr().err
    assert "tape.svg was not made" in err and "Install Graphviz" in err
    assert [p.name for p in out.iterdir()] == ["im2col.png"]   # the other figure is still made


def test_the_im2col_figure_is_deterministic(tmp_path):
    a = make_figures.make_im2col(tmp_path / "a.png").read_bytes()
    b = make_figures.make_im2col(tmp_path / "b.png").read_bytes()
    assert a == b and a.startswith(b"\x89PNG") and len(a) < MAX_IMAGE_BYTES
    assert b"Software" not in a and b"atplotlib" not in a   # no version stamp to differ by
    x, cols = make_figures.im2col_example()
    # the pixel numbers drawn are x's values, so cols[r, k] names the pixel it came from:
    # row 1 is patch (oy, ox) = (0, 1), column 5 is (c, i, j) = (1, 0, 1): x[0, 1, 0, 2] = 11
    assert cols.shape == (4, 8) and cols[1, 5] == x[0, 1, 0, 2] == 11
