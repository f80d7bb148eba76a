"""Data parallelism on GPUs: under ``mpiexec -n 2`` the gradients (CuPy arrays) are packed on
the device and reduced by NCCL; they stay on the GPU, equal the mean of the ranks' gradients,
and the parameters stay identical. Skipped unless CuPy sees a GPU and mpi4py/mpiexec exist."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from tinygrad_edu.backend import cuda_available

WORKER = os.path.join(os.path.dirname(__file__), "..", "distributed", "worker.py")
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep
                       + os.environ.get("PATH", ""))
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA GPU"),
              pytest.mark.skipif(MPIEXEC is None, reason="needs mpiexec (pip install mpich)")]


def test_nccl_allreduce_averages_gradients_on_the_device():
    pytest.importorskip("mpi4py")
    pytest.importorskip("cupy.cuda.nccl")
    res = subprocess.run([MPIEXEC, "-n", "2", sys.executable, WORKER, "gpu"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out == {"on_device": True, "mean_ok": True, "same": True, "bytes": (6 * 8 + 8
                   + 8 * 3 + 3) * 8}
