"""Write the corpus of examples/char_rnn.py: the text of Python's own documentation topics.

    .venv/bin/python scripts/extract_python_topics.py          # writes data/text/python_topics.txt
    .venv/bin/python scripts/extract_python_topics.py OUT.txt  # somewhere else

The standard library's ``pydoc_data/topics.py`` holds the text that ``help("assert")``,
``help("if")``, ... print: sections of the Python Language Reference and Library Reference,
as plain text (Python Software Foundation licence, see ``data/text/LICENSE-PSF.txt``). It is a
dict {topic: text} in the file's own (alphabetical) order; the snapshot is its texts in that
order, each ending with a newline, separated by one blank line, encoded as UTF-8. The
snapshot is committed, so the example's results do not depend on the Python version that runs
it (each release edits the documentation); this script records how it was made, and from which
Python.
"""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "text" / "python_topics.txt"


def corpus():
    """The snapshot's text, from the running Python's ``pydoc_data.topics``."""
    from pydoc_data.topics import topics
    return "\n".join(text.rstrip("\n") + "\n" for text in topics.values())


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    out = pathlib.Path(argv[0]) if argv else OUT
    text = corpus()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"{out}: {len(text):,} characters, {len(set(text))} distinct, from Python "
          f"{sys.version.split()[0]}")


if __name__ == "__main__":
    main()
