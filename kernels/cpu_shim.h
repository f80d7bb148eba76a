// cpu_shim.h: lets g++ compile a kernels/*.cu file as plain C++, so the tests can run a CUDA
// kernel on the CPU, thread by thread (tests/kernels/test_cuda_emulated.py). Never used on a GPU.
//
//   g++ -x c++ -include kernels/cpu_shim.h -shared -fPIC -O1 kernels/im2col.cu -o im2col.so
//
// What it provides:
//   * __global__ and __device__ expand to nothing, so a kernel becomes an ordinary C function
//     (extern "C" keeps its name, which ctypes looks up).
//   * blockIdx, blockDim, threadIdx and gridDim are globals. The test sets them with
//     emu_set_thread() and calls the kernel once per (block, thread): that is one "launch".
//     Threads run one after another, so this checks the index arithmetic and that the grid-
//     stride loops cover every element exactly once; it cannot find races. Our kernels have
//     none to find: no shared memory, no atomics, and each output is written by one thread.
//   * expf, logf, fmaxf from <math.h>, and the CUDA intrinsic __int_as_float.
// Deliberately missing: the INFINITY and NAN macros. NVRTC, which CuPy compiles with, has no
// host headers, so a kernel using them would build here and fail on the GPU.

#include <math.h>
#include <string.h>

#undef INFINITY
#undef NAN

#define __global__
#define __device__

struct dim3 { unsigned int x, y, z; };   // CUDA's uint3/dim3: we only use .x

static dim3 blockIdx, blockDim, threadIdx, gridDim;

// Become thread `thread` of block `block`, in a grid of grid_blocks x block_threads threads.
extern "C" void emu_set_thread(unsigned int block, unsigned int thread,
                               unsigned int grid_blocks, unsigned int block_threads)
{
    blockIdx = dim3{block, 0, 0};
    threadIdx = dim3{thread, 0, 0};
    gridDim = dim3{grid_blocks, 1, 1};
    blockDim = dim3{block_threads, 1, 1};
}

// Reinterpret the 32 bits of an int as a float (CUDA has this as a one-instruction intrinsic).
static inline float __int_as_float(int bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}
