"""Shared test setup: Hypothesis profiles and the ``gpu`` marker.

Profiles: "dev" (the default) and "ci" (chosen when the CI environment variable is set) both
have no deadline, because the first call of a Numba kernel compiles it and would trip one, and
a modest number of examples, so the whole suite runs in minutes on two cores. "ci" is also
derandomized, so a CI failure reproduces exactly. Pick one with ``--hypothesis-profile=NAME``.
"""
import os

import pytest
from hypothesis import HealthCheck, settings

_common = dict(deadline=None, max_examples=25, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", **_common)
settings.register_profile("ci", derandomize=True, database=None, **_common)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``gpu`` when CuPy or a GPU is missing (checked once, lazily)."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    from tinygrad_edu.backend import cuda_available
    if cuda_available():
        return
    skip = pytest.mark.skip(reason="needs CuPy and a CUDA GPU (tinygrad_edu.cuda_available())")
    for item in gpu_items:
        item.add_marker(skip)
