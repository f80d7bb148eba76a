// gru_cell.cu: the elementwise half of one GRU step (PyTorch's gate order r, z, n).
//
// The op layer has done the matrix half: xg = x W_ih^T + b_ih and hg = h_prev W_hh^T + b_hh,
// both (N, 3H), columns [r | z | n], each H wide. They stay apart because the reset gate
// scales only the hidden part of the candidate. With a = xg[n], b = hg[n], for every unit (n, j):
//
// gru_cell_forward: xg, hg (N, 3H), h_prev (N, H) -> h (N, H), act (N, 4H)
//     r = sigmoid(a[j] + b[j])   z = sigmoid(a[H + j] + b[H + j])
//     m = tanh(a[2H + j] + r * b[2H + j])          (the candidate, "n" in PyTorch's formulas)
//     h = (1 - z) * m + z * h_prev
//     act[n] = [r | z | m | b[2H + j]]: what backward needs, so it evaluates no tanh again.
// gru_cell_backward: dh (N, H), act (N, 4H), h_prev (N, H) -> dxg, dhg (N, 3H), dh_prev (N, H)
//     dm = dh (1 - z)         dz = dh (h_prev - m)       dm_pre = dm (1 - m^2)
//     dr_pre = dm_pre hg_n r (1 - r)                     dz_pre = dz z (1 - z)
//     dxg[n] = [dr_pre | dz_pre | dm_pre]    dhg[n] = [dr_pre | dz_pre | dm_pre * r]
//     dh_prev = dh * z, only the direct path: the path through hg = h_prev W_hh^T + b_hh is
//     the op layer's matmul, fed by dhg.
//
// sigmoid(x) = (1 + tanh(x / 2)) / 2, as Tensor.sigmoid computes it: there is no exp(-x) to
//   overflow, and the result lies in [0, 1] exactly.
//
// Index arithmetic: element t = n*H + j of the (N, H) state (last axis fastest), so n = t / H,
//   j = t % H. Gate k of that unit is xg[n*3H + k*H + j] (hg, dxg, dhg alike), activation k is
//   act[n*4H + k*H + j].
// Threads: one per unit (n, j) of the state, computing all three gates of that unit. Every
//   value a thread reads is its own unit's and every value it writes is written by it alone: no
//   shared memory, no atomics. Grid-stride loop (t, t + S, ... with S = threads in the grid);
//   the launcher uses 256 threads per block and ceil(N*H / 256) blocks, capped.
// Types: float32 and float64. Each kernel body is a template over the element type T, and two
//   extern "C" entry points instantiate it: gru_cell_forward_f32 / _f64, and likewise for
//   backward. (Plain C names, so the launcher and the CPU test look them up as they are.)
// Assumptions: C-contiguous arrays of one dtype, shapes as above; sizes as long long (64-bit).

__device__ inline float tanh_of(float x) { return tanhf(x); }   // the float or double tanh
__device__ inline double tanh_of(double x) { return tanh(x); }

template <typename T>
__device__ inline T sigmoid_of(T x) { return (T(1) + tanh_of(x / T(2))) / T(2); }

template <typename T>
__device__ void gru_forward(const T* xg, const T* hg, const T* h_prev, T* h, T* act,
                            long long N, long long H)
{
    long long stride = (long long)blockDim.x * gridDim.x;
    for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < N * H; t += stride) {
        long long n = t / H, j = t % H;
        const T* a = xg + n * 3 * H + j;       // a[k*H], b[k*H]: gate k of unit (n, j)
        const T* b = hg + n * 3 * H + j;
        T* s = act + n * 4 * H + j;            // s[k*H] is activation k of unit (n, j)
        T r = sigmoid_of(a[0] + b[0]), z = sigmoid_of(a[H] + b[H]);
        T m = tanh_of(a[2 * H] + r * b[2 * H]);
        h[t] = (T(1) - z) * m + z * h_prev[t];
        s[0] = r;
        s[H] = z;
        s[2 * H] = m;
        s[3 * H] = b[2 * H];
    }
}

template <typename T>
__device__ void gru_backward(const T* dh, const T* act, const T* h_prev, T* dxg, T* dhg,
                             T* dh_prev, long long N, long long H)
{
    long long stride = (long long)blockDim.x * gridDim.x;
    for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < N * H; t += stride) {
        long long n = t / H, j = t % H;
        const T* s = act + n * 4 * H + j;
        T r = s[0], z = s[H], m = s[2 * H], hg_n = s[3 * H], g = dh[t];
        T dm_pre = g * (T(1) - z) * (T(1) - m * m);
        T dr_pre = dm_pre * hg_n * r * (T(1) - r);
        T dz_pre = g * (h_prev[t] - m) * z * (T(1) - z);
        long long k = n * 3 * H + j;           // gate 0 of unit (n, j) in dxg and dhg
        dxg[k] = dr_pre;
        dxg[k + H] = dz_pre;
        dxg[k + 2 * H] = dm_pre;
        dhg[k] = dr_pre;
        dhg[k + H] = dz_pre;
        dhg[k + 2 * H] = dm_pre * r;
        dh_prev[t] = g * z;
    }
}

extern "C" __global__ void gru_cell_forward_f32(const float* xg, const float* hg,
                                                const float* h_prev, float* h, float* act,
                                                long long N, long long H)
{ gru_forward(xg, hg, h_prev, h, act, N, H); }

extern "C" __global__ void gru_cell_forward_f64(const double* xg, const double* hg,
                                                const double* h_prev, double* h, double* act,
                                                long long N, long long H)
{ gru_forward(xg, hg, h_prev, h, act, N, H); }

extern "C" __global__ void gru_cell_backward_f32(const float* dh, const float* act,
                                                 const float* h_prev, float* dxg, float* dhg,
                                                 float* dh_prev, long long N, long long H)
{ gru_backward(dh, act, h_prev, dxg, dhg, dh_prev, N, H); }

extern "C" __global__ void gru_cell_backward_f64(const double* dh, const double* act,
                                                 const double* h_prev, double* dxg, double* dhg,
                                                 double* dh_prev, long long N, long long H)
{ gru_backward(dh, act, h_prev, dxg, dhg, dh_prev, N, H); }
