"""The fused LSTM and GRU cell kernels (kernels/lstm_cell.cu, gru_cell.cu), run on the CPU.

As in test_cuda_emulated.py: g++ compiles each file with kernels/cpu_shim.h, and inside
``with gpu.standing_in(grid):`` the launchers of ``tinygrad_edu.ops.cuda_kernels`` run the
kernel once per (block, thread) of a tiny grid, one thread after another, on NumPy arrays.
Everything but the CuPy calls is the real launcher code (asserts, output shapes, argument
order, the _f32/_f64 entry point). Outputs start out as NaN, so an entry no thread writes shows.

The results are compared with the whole-array NumPy references in tests/refs.py (the spec's
formulas), in float64 for both dtypes: float32 kernels to rtol 1e-5 / atol 1e-6 (a few float32
ulps of values that are O(1)), float64 kernels to 1e-12. The spec's backward formulas are also
checked against central differences of the forward reference, so an error shared by the spec,
the reference and the kernel would still show.
"""
import contextlib
import ctypes
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import refs as ref
from tinygrad_edu.ops import cuda_kernels as ck

FILES = ("lstm_cell.cu", "gru_cell.cu")
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}


class CpuGrid:
    """Runs a g++-compiled kernel over ``grid = (blocks, threads)``, one thread at a time."""

    def __init__(self, libs):
        self.libs = libs      # .cu file name -> ctypes.CDLL
        self.grid = (3, 4)
        self.launched = []    # kernel names, in launch order

    @contextlib.contextmanager
    def standing_in(self, grid=(3, 4)):
        """Within this block, cuda_kernels launches on this CPU grid instead of CuPy."""
        self.grid = grid
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(ck, "_launch", self.launch)
            mp.setattr(ck, "_empty", lambda like, shape, dtype: np.full(shape, np.nan, dtype))
            yield

    def launch(self, filename, name, n, *args):
        assert n == args[-2] * args[-1], f"{name}: one thread per (n, j) of the (N, H) state"
        kernel = getattr(self.libs[filename], name)
        kernel.restype = None
        cargs = []
        for a in args:
            if isinstance(a, np.ndarray):
                assert a.flags.c_contiguous and a.dtype in (np.float32, np.float64)
                cargs.append(ctypes.c_void_p(a.ctypes.data))
            else:
                cargs.append(ctypes.c_longlong(a))
        self.launched.append(name)
        blocks, threads = self.grid
        for b in range(blocks):
            for t in range(threads):
                self.libs[filename].emu_set_thread(b, t, blocks, threads)
                kernel(*cargs)


@pytest.fixture(scope="module")
def gpu(tmp_path_factory):
    """The two cell files built once by g++ into shared libraries, wrapped in a CpuGrid."""
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ not found: cannot compile the CUDA kernels for the CPU")
    build = tmp_path_factory.mktemp("rnn_emulated")
    shim = ck.kernel_dir() / "cpu_shim.h"
    libs = {}
    for name in FILES:
        src, so = ck.kernel_dir() / name, build / f"{name[:-3]}.so"
        cmd = [gxx, "-x", "c++", "-include", str(shim), "-shared", "-fPIC", "-O1", "-Wall",
               "-Wextra", "-o", str(so), str(src)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or done.stderr:
            pytest.fail(f"g++ could not compile {name} cleanly:\n{done.stderr}")
        lib = libs[name] = ctypes.CDLL(str(so))
        lib.emu_set_thread.argtypes = [ctypes.c_uint] * 4
    return CpuGrid(libs)


# ---- what hypothesis draws ---------------------------------------------------------------

grids = st.tuples(st.integers(1, 4), st.integers(1, 5))


@st.composite
def cell_inputs(draw, widths):
    """Arrays of shapes (N, w*H) for w in ``widths``, one dtype. A scale of 30 saturates most
    gates (sigmoid at 0 or 1, tanh at +-1), where the derivatives vanish."""
    N, H = draw(st.integers(0, 4)), draw(st.integers(1, 5))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    scale = draw(st.sampled_from([0.1, 1.0, 3.0, 30.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return dtype, [(scale * rng.standard_normal((N, w * H))).astype(dtype) for w in widths]


def f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


def assert_close(got, want, dtype, what, scale=1.0):
    """``scale``: the size of the terms that are added up, so that the absolute tolerance covers
    cancellation (c = f * c_prev + i * g can be ~1e-6 out of terms of ~100 in float32)."""
    tol = dict(TOL[dtype], atol=TOL[dtype]["atol"] * scale)
    for name, g, w in zip(what.split(), got, want):
        assert g.dtype == dtype and g.shape == w.shape, (name, g.dtype, g.shape, w.shape)
        np.testing.assert_allclose(g, w, **tol, err_msg=name)


# ---- the kernels against the references ----------------------------------------------------

@settings(deadline=None, max_examples=60)
@given(case=cell_inputs(widths=(4, 1, 1, 1)), grid=grids)
def test_lstm_cell_matches_reference(gpu, case, grid):
    dtype, (gates, c_prev, dh, dc) = case
    before = [a.copy() for a in (gates, c_prev, dh, dc)]
    with gpu.standing_in(grid):
        h, c, act = ck.lstm_cell_forward(gates, c_prev)
        dgates, dc_prev = ck.lstm_cell_backward(dh, dc, act, c_prev)
    scale = 1.0 + float(np.abs(c_prev).max(initial=0))
    assert_close((h, c, act), ref.lstm_cell_forward(*f64(gates, c_prev)), dtype, "h c act",
                 scale)
    want = ref.lstm_cell_backward(*f64(dh, dc, act, c_prev))
    assert_close((dgates, dc_prev), want, dtype, "dgates dc_prev",
                 scale * (1.0 + float(np.abs(dh).max(initial=0) + np.abs(dc).max(initial=0))))
    for a, b in zip((gates, c_prev, dh, dc), before):
        np.testing.assert_array_equal(a, b)   # the kernels write their outputs only


@settings(deadline=None, max_examples=60)
@given(case=cell_inputs(widths=(3, 3, 1, 1)), grid=grids)
def test_gru_cell_matches_reference(gpu, case, grid):
    dtype, (xg, hg, h_prev, dh) = case
    before = [a.copy() for a in (xg, hg, h_prev, dh)]
    with gpu.standing_in(grid):
        h, act = ck.gru_cell_forward(xg, hg, h_prev)
        dxg, dhg, dh_prev = ck.gru_cell_backward(dh, act, h_prev)
    assert_close((h, act), ref.gru_cell_forward(*f64(xg, hg, h_prev)), dtype, "h act")
    want = ref.gru_cell_backward(*f64(dh, act, h_prev))
    assert_close((dxg, dhg, dh_prev), want, dtype, "dxg dhg dh_prev")
    for a, b in zip((xg, hg, h_prev, dh), before):
        np.testing.assert_array_equal(a, b)


def test_each_dtype_runs_its_own_entry_point(gpu):
    x = np.ones((2, 4), np.float32)
    with gpu.standing_in():
        ck.lstm_cell_forward(x, x[:, :1].copy())
        ck.gru_cell_forward(x[:, :3].copy().astype(np.float64), x[:, :3].astype(np.float64),
                            x[:, :1].astype(np.float64))
    assert gpu.launched[-2:] == ["lstm_cell_forward_f32", "gru_cell_forward_f64"]


def numeric_grad(f, x, eps=1e-6):
    """Central differences of the scalar f() with respect to each entry of x (changed in place
    and restored)."""
    g = np.zeros_like(x)
    for k in np.ndindex(x.shape):
        old = x[k]
        x[k] = old + eps
        up = f()
        x[k] = old - eps
        g[k] = (up - f()) / (2 * eps)
        x[k] = old
    return g


@pytest.mark.parametrize("seed", [0, 1])
def test_lstm_backward_is_the_derivative_of_forward(gpu, seed):
    rng = np.random.default_rng(seed)
    gates, c_prev = 1.5 * rng.standard_normal((2, 12)), rng.standard_normal((2, 3))
    wh, wc = rng.uniform(0.5, 1.5, (2, 3)), rng.uniform(-1.5, -0.5, (2, 3))

    def loss():   # L = sum(wh * h + wc * c), so dL/dh = wh and dL/dc = wc
        h, c, _ = ref.lstm_cell_forward(gates, c_prev)
        return np.sum(wh * h + wc * c)

    with gpu.standing_in():
        _, _, act = ck.lstm_cell_forward(gates, c_prev)
        dgates, dc_prev = ck.lstm_cell_backward(wh, wc, act, c_prev)
    np.testing.assert_allclose(dgates, numeric_grad(loss, gates), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dc_prev, numeric_grad(loss, c_prev), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("seed", [0, 1])
def test_gru_backward_is_the_derivative_of_forward(gpu, seed):
    rng = np.random.default_rng(seed)
    xg, hg, h_prev = (1.5 * rng.standard_normal(s) for s in ((2, 9), (2, 9), (2, 3)))
    w = rng.uniform(0.5, 1.5, (2, 3))

    def loss():   # hg is an input of its own: dh_prev is the direct path only
        return np.sum(w * ref.gru_cell_forward(xg, hg, h_prev)[0])

    with gpu.standing_in():
        _, act = ck.gru_cell_forward(xg, hg, h_prev)
        dxg, dhg, dh_prev = ck.gru_cell_backward(w, act, h_prev)
    for got, x in ((dxg, xg), (dhg, hg), (dh_prev, h_prev)):
        np.testing.assert_allclose(got, numeric_grad(loss, x), rtol=1e-6, atol=1e-8)


def test_saturated_gates_give_exact_limits_and_no_nan(gpu):
    # sigmoid(+-1e4) is exactly 1 or 0 and tanh exactly +-1: no inf/inf, no overflow.
    big = np.float32(1e4)
    gates = np.array([[big, -big, big, big], [-big, big, -big, -big]], np.float32)   # H = 1
    c_prev = np.array([[2.0], [3.0]], np.float32)
    with gpu.standing_in():
        h, c, act = ck.lstm_cell_forward(gates, c_prev)
        dgates, dc_prev = ck.lstm_cell_backward(np.ones_like(h), np.ones_like(c), act, c_prev)
        gh, gact = ck.gru_cell_forward(gates[:, :3].copy(), -gates[:, :3], c_prev)
    # atol=0: the saturated entries must be exactly 0, 1 or -1
    np.testing.assert_allclose(act, [[1, 0, 1, 1, np.tanh(1.0)], [0, 1, -1, 0, np.tanh(3.0)]],
                               rtol=1e-6, atol=0)
    np.testing.assert_array_equal(c, [[1], [3]])
    np.testing.assert_allclose(h, [[np.tanh(1.0)], [0]], rtol=1e-6)
    np.testing.assert_array_equal(dgates, 0)            # every gate saturated
    np.testing.assert_allclose(dc_prev, [[0], [1]])     # dct * f, with f = 0, then 1
    np.testing.assert_array_equal(gact[:, :2], 0.5)     # xg + hg = 0: r = z = 1/2
    assert np.isfinite(gh).all()


# ---- launcher asserts: they fire before any kernel runs, so they need no fixture -------------

g8 = np.zeros((2, 8), np.float32)            # LSTM gates, H = 2
s2 = np.zeros((2, 2), np.float32)            # a state
a10 = np.zeros((2, 10), np.float32)          # LSTM act
x6 = np.zeros((2, 6), np.float32)            # GRU xg / hg
BROKEN = {
    "float16 gates": (lambda: ck.lstm_cell_forward(g8.astype(np.float16), s2),
                      "gates must be float32 or float64, got float16"),
    "int gates": (lambda: ck.gru_cell_forward(x6.astype(np.int64), x6, s2),
                  "xg must be float32 or float64, got int64"),
    "mixed dtypes": (lambda: ck.lstm_cell_forward(g8, s2.astype(np.float64)),
                     "c_prev must be a C-contiguous 2-D float32 array, got float64"),
    "gates width": (lambda: ck.lstm_cell_forward(g8[:, :7].copy(), s2),
                    r"gates must be 2-D with 4\*H columns, got shape \(2, 7\)"),
    "3-D gates": (lambda: ck.lstm_cell_forward(g8[None], s2), r"got shape \(1, 2, 8\)"),
    "state shape": (lambda: ck.lstm_cell_forward(g8, s2[:1].copy()),
                    r"c_prev must have shape \(2, 2\) \(N=2, H=2 from gates \(2, 8\)\), "
                    r"got \(1, 2\)"),
    "non-contiguous": (lambda: ck.lstm_cell_forward(g8, np.zeros((2, 4), np.float32)[:, ::2]),
                       "c_prev must be a C-contiguous"),
    "act width": (lambda: ck.lstm_cell_backward(s2, s2, g8, s2), r"act must be 2-D with 5\*H"),
    "dc shape": (lambda: ck.lstm_cell_backward(s2, s2[:, :1].copy(), a10, s2),
                 r"dc must have shape \(2, 2\)"),
    "hg shape": (lambda: ck.gru_cell_forward(x6, g8[:, :3].copy()[:1], s2),
                 r"hg must have shape \(2, 6\)"),
    "gru act": (lambda: ck.gru_cell_backward(s2, x6, s2), r"act must be 2-D with 4\*H"),
    "gru h_prev": (lambda: ck.gru_cell_backward(s2, g8, s2.T.copy()[:1]),
                   r"h_prev must have shape \(2, 2\)"),
}


@pytest.mark.skipif(not __debug__, reason="python -O removes asserts")
@pytest.mark.parametrize("case", BROKEN)
def test_launchers_assert_their_preconditions_before_launching(case):
    call, message = BROKEN[case]
    snapshot = [a.copy() for a in (g8, s2, a10, x6)]
    with pytest.raises(AssertionError, match=message):
        call()
    for a, b in zip((g8, s2, a10, x6), snapshot):
        np.testing.assert_array_equal(a, b)


def test_valid_numpy_input_reaches_the_launch_and_asks_for_cupy():
    # Without the fixture the real _launch runs: NumPy arrays are not GPU arrays.
    with pytest.raises((RuntimeError, TypeError), match="CuPy|GPU"):
        ck.lstm_cell_forward(g8, s2)
    with pytest.raises((RuntimeError, TypeError), match="CuPy|GPU"):
        ck.gru_cell_backward(s2, g8, s2)


def test_an_empty_batch_needs_no_launch_and_no_gpu():
    # n = 0: the real _launch returns before asking for CuPy (a zero-block grid is an error).
    h, c, act = ck.lstm_cell_forward(np.zeros((0, 8)), np.zeros((0, 2)))
    assert (h.shape, c.shape, act.shape) == ((0, 2), (0, 2), (0, 10)) and h.dtype == np.float64
    dxg, dhg, dh_prev = ck.gru_cell_backward(np.zeros((0, 3), np.float32),
                                             np.zeros((0, 12), np.float32),
                                             np.zeros((0, 3), np.float32))
    assert (dxg.shape, dhg.shape, dh_prev.shape) == ((0, 9), (0, 9), (0, 3))
