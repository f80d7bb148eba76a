"""tinygrad_edu/ops/geometry.py: PyTorch's window rules, checked once for nn.functional and the
layers, and the preconditions the kernels assert. Output sizes are compared with windows
counted one by one; the checks with what conv2d and the pools raise."""
import types

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_edu as tg
from tinygrad_edu.nn import functional as F
from tinygrad_edu.ops import geometry


def count_windows(size, k, s, p, ceil_mode):
    """Windows o = 0, 1, ... start at o*s in the padded input (length size + 2p). Without
    ceil_mode each must fit in it; with ceil_mode each must start inside the input or its left
    padding, and is only needed while the one before it stops short of the padded end."""
    o = 0
    while True:
        if ceil_mode:
            keep = o * s < size + p and (o == 0 or (o - 1) * s + k < size + 2 * p)
        else:
            keep = o * s + k <= size + 2 * p
        if not keep:
            return o
        o += 1


@given(size=st.integers(1, 30), k=st.integers(1, 7), s=st.integers(1, 7), data=st.data())
def test_output_length_counts_the_windows(size, k, s, data):
    p = data.draw(st.integers(0, k // 2))
    if size + 2 * p < k:
        return   # refused by checked_output_size, tested below
    for ceil_mode in (False, True):
        assert geometry.output_length(size, k, s, p, ceil_mode) == \
            count_windows(size, k, s, p, ceil_mode)


@given(H=st.integers(1, 12), W=st.integers(1, 12), k=st.integers(1, 4), s=st.integers(1, 4),
       ceil_mode=st.booleans(), data=st.data())
def test_every_pooling_window_that_the_checks_allow_holds_a_pixel(H, W, k, s, ceil_mode, data):
    """pool_geometry + checked_output_size guarantee what the max-pool kernels assert."""
    p = data.draw(st.integers(0, k // 2))
    if min(H, W) + 2 * p < k:
        return
    g = geometry.pool_geometry("f", k, s, p)
    oh, ow = geometry.checked_output_size("f", (H, W), g, ceil_mode)
    assert geometry.windows_hold_pixels((H, W), g, (oh, ow))
    assert geometry.fits((H, W), g)
    for o, size in [(oh - 1, H), (ow - 1, W)]:   # the last window overlaps [0, size)
        assert o * s - p < size and o * s - p + k > 0


def test_kernel_preconditions_refuse_what_the_checks_refuse():
    assert not geometry.fits((4, 4), (5, 5, 1, 1, 0, 0))          # kernel larger than input
    assert not geometry.fits((4, 4), (2, 2, 0, 1, 0, 0))          # zero stride
    assert not geometry.fits((4, 4), (2, 2, 1.0, 1, 0, 0))        # a float
    assert geometry.fits((4, 4), (5, 5, 1, 1, 1, 1))
    g = (2, 2, 2, 2, 0, 0)
    assert geometry.windows_hold_pixels((4, 4), g, (2, 2))
    assert not geometry.windows_hold_pixels((4, 4), g, (3, 2))   # window 2 starts at row 4
    assert not geometry.windows_hold_pixels((4, 4), (2, 2, 2, 2, 2, 0), (3, 2))   # all padding
    assert not geometry.windows_hold_pixels((0, 4), (2, 2, 1, 1, 1, 1), (1, 5))   # no pixels


@pytest.mark.parametrize("value, pair", [(3, (3, 3)), ((2, 5), (2, 5)), ([1, 4], (1, 4)),
                                         (np.int64(2), (2, 2)), ((np.int32(0), 1), (0, 1))])
def test_size_pair_spellings(value, pair):
    for each in (False, True):
        got = geometry.size_pair("f", "padding", value, 0, each=each)
        assert got == pair and all(type(v) is int for v in got)


@pytest.mark.parametrize("value, whole, entry", [
    (0, r"f: stride must be an int >= 1 or a pair of them, got 0",
     r"f: stride must be an integer >= 1, got 0"),
    ((2, 0), r"got \(2, 0\)", r"f: stride must be an integer >= 1, got 0"),
    (True, r"got True", r"got True"),
    (1.0, r"got 1\.0", r"got 1\.0"),
    ((1, 1, 1), r"got \(1, 1, 1\)", r"f: stride must be an int or a pair of ints, got \(1, 1, 1"),
    ("2", r"got '2'", r"must be an integer >= 1, got '2'"),
])
def test_size_pair_refusals_name_the_owner_and_the_argument(value, whole, entry):
    with pytest.raises(ValueError, match=whole):
        geometry.size_pair("f", "stride", value, 1)
    with pytest.raises(ValueError, match=entry):
        geometry.size_pair("f", "stride", value, 1, each=True)


def test_pool_geometry_defaults_stride_to_the_kernel_and_limits_padding():
    assert geometry.pool_geometry("f", (3, 2), None, (1, 0)) == (3, 2, 3, 2, 1, 0)
    assert geometry.pool_geometry("f", 3, 1, 1) == (3, 3, 1, 1, 1, 1)
    with pytest.raises(ValueError, match=r"f: padding \(0, 2\) must be at most half the kernel 3"):
        geometry.pool_geometry("f", 3, 1, (0, 2))
    with pytest.raises(ValueError, match=r"f: kernel 3 is larger than the padded input \(1 \+ 2"):
        geometry.checked_output_size("f", (4, 1), (3, 3, 1, 1, 0, 0))


# ---- what nn.functional raises now that the kernels only assert -----------------------------

@pytest.mark.parametrize("call", [
    lambda x: F.conv2d(x, np.ones((2, 1, 2, 2), x.dtype)),
    lambda x: F.max_pool2d(x, 2),
    lambda x: F.avg_pool2d(x, 2),
], ids=["conv2d", "max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.bool_])
def test_conv_and_pooling_refuse_dtypes_the_kernels_lack(call, dtype):
    data = np.ones((1, 1, 4, 4), dtype)
    before = data.copy()
    with pytest.raises(TypeError, match=rf"the CPU kernels take float32 or float64 input, got "
                                        rf"{np.dtype(dtype).name}; convert with \.float\(\)"):
        call(tg.Tensor(data))
    np.testing.assert_array_equal(data, before)


def test_the_gpu_kernels_take_float32_only():
    fake = types.SimpleNamespace(device="cuda", dtype=np.dtype(np.float64))   # no GPU needed
    with pytest.raises(TypeError, match="max_pool2d: the CUDA kernels take float32 input, got "
                                        "float64"):
        F._check_kernel_dtype("max_pool2d", fake)
    F._check_kernel_dtype("max_pool2d", types.SimpleNamespace(device="cuda",
                                                              dtype=np.dtype(np.float32)))


def test_max_pool2d_refuses_an_input_without_pixels():
    """Padding alone would let the kernel fit, but every window would hold padding only (the
    kernel read outside the input here before)."""
    x = tg.zeros(1, 1, 0, 4, requires_grad=True)
    with pytest.raises(ValueError, match=r"max_pool2d: input of shape \(1, 1, 0, 4\) has no "
                                         "pixels"):
        F.max_pool2d(x, 2, 1, padding=1)
    assert x.grad is None
