// lstm_cell.cu: the elementwise half of one LSTM step (PyTorch's gate order i, f, g, o).
//
// The op layer has done the matrix half: gates = x W_ih^T + b_ih + h_prev W_hh^T + b_hh, shape
// (N, 4H), columns [i | f | g | o], each H wide. With a = gates[n], for every unit (n, j):
//
// lstm_cell_forward: gates (N, 4H), c_prev (N, H) -> h, c (N, H), act (N, 5H)
//     i = sigmoid(a[j])   f = sigmoid(a[H + j])   g = tanh(a[2H + j])   o = sigmoid(a[3H + j])
//     c = f * c_prev + i * g        h = o * tanh(c)
//     act[n] = [i | f | g | o | tanh(c)]: the activations backward needs, so that backward
//     evaluates no tanh or sigmoid again and needs neither the gates nor c.
// lstm_cell_backward: dh, dc (N, H), act (N, 5H), c_prev (N, H) -> dgates (N, 4H), dc_prev (N, H)
//     dct = dc + dh * o * (1 - tanh(c)^2)      all of dL/dc: from later steps, and through h
//     dgates[n] = [dct g i(1-i) | dct c_prev f(1-f) | dct i (1-g^2) | dh tanh(c) o(1-o)]
//     dc_prev = dct * f
//   dc is the gradient from step t+1 (zeros at the last step); dh and dc are separate inputs
//   because h feeds both the output and the next step's matmul, c only the next step.
//
// sigmoid(x) = (1 + tanh(x / 2)) / 2, as Tensor.sigmoid computes it: there is no exp(-x) to
//   overflow, and the result lies in [0, 1] exactly.
//
// Index arithmetic: element t = n*H + j of the (N, H) state (last axis fastest), so n = t / H,
//   j = t % H. Gate k of that unit is gates[n*4H + k*H + j], activation k is act[n*5H + k*H + j].
// Threads: one per unit (n, j) of the state, computing all four gates of that unit. Every
//   value a thread reads is its own unit's and every value it writes is written by it alone: no
//   shared memory, no atomics. Grid-stride loop (t, t + S, ... with S = threads in the grid);
//   the launcher uses 256 threads per block and ceil(N*H / 256) blocks, capped.
// Types: float32 and float64. Each kernel body is a template over the element type T, and two
//   extern "C" entry points instantiate it: lstm_cell_forward_f32 / _f64, and likewise for
//   backward. (Plain C names, so the launcher and the CPU test look them up as they are.)
// Assumptions: C-contiguous arrays of one dtype, shapes as above; sizes as long long (64-bit).

__device__ inline float tanh_of(float x) { return tanhf(x); }   // the float or double tanh
__device__ inline double tanh_of(double x) { return tanh(x); }

template <typename T>
__device__ inline T sigmoid_of(T x) { return (T(1) + tanh_of(x / T(2))) / T(2); }

template <typename T>
__device__ void lstm_forward(const T* gates, const T* c_prev, T* h, T* c, T* act,
                             long long N, long long H)
{
    long long stride = (long long)blockDim.x * gridDim.x;
    for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < N * H; t += stride) {
        long long n = t / H, j = t % H;
        const T* a = gates + n * 4 * H + j;    // a[k*H] is gate k of unit (n, j)
        T* s = act + n * 5 * H + j;            // s[k*H] is activation k of unit (n, j)
        T i = sigmoid_of(a[0]), f = sigmoid_of(a[H]), o = sigmoid_of(a[3 * H]);
        T g = tanh_of(a[2 * H]);
        T ct = f * c_prev[t] + i * g;
        T tc = tanh_of(ct);
        c[t] = ct;
        h[t] = o * tc;
        s[0] = i;
        s[H] = f;
        s[2 * H] = g;
        s[3 * H] = o;
        s[4 * H] = tc;
    }
}

template <typename T>
__device__ void lstm_backward(const T* dh, const T* dc, const T* act, const T* c_prev,
                              T* dgates, T* dc_prev, long long N, long long H)
{
    long long stride = (long long)blockDim.x * gridDim.x;
    for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < N * H; t += stride) {
        long long n = t / H, j = t % H;
        const T* s = act + n * 5 * H + j;
        T* d = dgates + n * 4 * H + j;
        T i = s[0], f = s[H], g = s[2 * H], o = s[3 * H], tc = s[4 * H];
        T dct = dc[t] + dh[t] * o * (T(1) - tc * tc);
        d[0] = dct * g * i * (T(1) - i);
        d[H] = dct * c_prev[t] * f * (T(1) - f);
        d[2 * H] = dct * i * (T(1) - g * g);
        d[3 * H] = dh[t] * tc * o * (T(1) - o);
        dc_prev[t] = dct * f;
    }
}

extern "C" __global__ void lstm_cell_forward_f32(const float* gates, const float* c_prev,
                                                 float* h, float* c, float* act,
                                                 long long N, long long H)
{ lstm_forward(gates, c_prev, h, c, act, N, H); }

extern "C" __global__ void lstm_cell_forward_f64(const double* gates, const double* c_prev,
                                                 double* h, double* c, double* act,
                                                 long long N, long long H)
{ lstm_forward(gates, c_prev, h, c, act, N, H); }

extern "C" __global__ void lstm_cell_backward_f32(const float* dh, const float* dc,
                                                  const float* act, const float* c_prev,
                                                  float* dgates, float* dc_prev,
                                                  long long N, long long H)
{ lstm_backward(dh, dc, act, c_prev, dgates, dc_prev, N, H); }

extern "C" __global__ void lstm_cell_backward_f64(const double* dh, const double* dc,
                                                  const double* act, const double* c_prev,
                                                  double* dgates, double* dc_prev,
                                                  long long N, long long H)
{ lstm_backward(dh, dc, act, c_prev, dgates, dc_prev, N, H); }
