"""pyproject.toml: a build that prints no warning and a wheel that holds every subpackage and
the CUDA sources (``kernels/`` becomes ``tinygrad_edu/_kernels``)."""
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())
SUBPACKAGES = sorted(".".join(p.parent.relative_to(ROOT).parts)
                     for p in (ROOT / "tinygrad_edu").rglob("__init__.py"))


def test_license_is_an_spdx_expression_with_a_setuptools_that_reads_it():
    assert CONFIG["project"]["license"] == "MIT"   # a TOML table is deprecated by setuptools
    (requirement,) = [r for r in CONFIG["build-system"]["requires"] if r.startswith("setuptools")]
    version = re.fullmatch(r"setuptools>=(\d+)", requirement.replace(" ", "")).group(1)
    assert int(version) >= 77                      # the first to accept an SPDX string


def test_every_subpackage_is_listed():
    packages = CONFIG["tool"]["setuptools"]["packages"]
    assert "tinygrad_edu.data" in SUBPACKAGES and "tinygrad_edu.testing" in SUBPACKAGES
    assert sorted(set(packages) - {"tinygrad_edu._kernels"}) == SUBPACKAGES


def test_the_wheel_builds_without_warnings_and_holds_the_package_and_the_kernels(tmp_path):
    """A non-editable build, in a copy of the sources so that no build/ lands in the checkout.
    pip sets up the build requirements in an isolated environment (from its cache or index)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "tinygrad_edu", src / "tinygrad_edu", ignore=ignore)
    shutil.copytree(ROOT / "kernels", src / "kernels", ignore=ignore)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps",
                             "-w", str(tmp_path / "dist")],
                            capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # what the build backend says: pip shows its Python warnings as "...Warning: ..." lines
    warnings = [line for line in output.splitlines()
                if re.search(r"\w*Warning\b|DEPRECAT", line)
                and not line.startswith("WARNING: Location")]  # this machine's pip index list
    assert not warnings, "\n".join(warnings)

    (wheel,) = (tmp_path / "dist").glob("tinygrad_edu-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for package in SUBPACKAGES:
        assert package.replace(".", "/") + "/__init__.py" in names
    kernels = sorted(p.name for p in (ROOT / "kernels").iterdir() if p.suffix in (".cu", ".h"))
    assert kernels and all(f"tinygrad_edu/_kernels/{k}" in names for k in kernels)
    metadata = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: MIT" in metadata
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
