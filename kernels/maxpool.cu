// maxpool.cu: 2-D max pooling, forward (value and argmax) and backward (route gradients).
//
// maxpool2d_forward: x (N, C, H, W) -> y (N, C, OH, OW) float32, idx (N, C, OH, OW) int64
//   window (oy, ox) covers input rows oy*sh - ph + i (i < kh) and columns ox*sw - pw + j
//   (j < kw). Only positions inside the input take part: padding never wins, and a window
//   clipped by the padding or by ceil_mode simply has fewer candidates.
//     y[n, c, oy, ox]   = the max over those positions
//     idx[n, c, oy, ox] = y*W + x of the FIRST maximum in row-major window order (i, then j),
//                         a flat index into the H*W plane of image (n, c)
//   A NaN counts as the maximum (as np.max and torch.max_pool2d do); the first NaN is kept.
//   OH and OW come from the caller (floor or ceil_mode); the launcher checks that every window
//   overlaps the input.
//
// maxpool2d_backward: gy (N, C, OH, OW), idx -> dx (N, C, H, W) float32
//   dx[n, c].flat[idx[n, c, oy, ox]] += gy[n, c, oy, ox] for every window. Written as a gather:
//   one thread per input pixel p sums gy over the windows that cover p and whose idx == p.
//   Overlapping windows (stride < kernel) can pick the same pixel; with a scatter those adds
//   would collide and need atomicAdd, with a gather each pixel is written by one thread only.
//
// Threads: one per output element (a y/idx entry forward, a dx pixel backward), each in a
//   grid-stride loop (t, t + S, t + 2S, ... with S = threads in the grid). The launcher uses
//   256 threads per block and ceil(n / 256) blocks, capped.
// Assumptions: C-contiguous arrays, float32 values, int64 idx; sizes as long long (64-bit).

extern "C" __global__ void maxpool2d_forward(const float* x, float* y, long long* idx,
                                             long long N, long long C, long long H, long long W,
                                             long long kh, long long kw, long long sh,
                                             long long sw, long long ph, long long pw,
                                             long long OH, long long OW)
{
    long long n_out = N * C * OH * OW;
    long long stride = (long long)blockDim.x * gridDim.x;
    for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < n_out; t += stride) {
        long long ox = t % OW, oy = (t / OW) % OH, plane = t / (OW * OH);   // plane = n*C + c
        const float* img = x + plane * H * W;                  // the (n, c) image
        long long y0 = oy * sh - ph, x0 = ox * sw - pw;        // top-left corner, maybe padding
        float best = 0.0f;
        long long best_idx = -1;                               // -1: no candidate seen yet
        for (long long i = 0; i < kh; ++i) {
            long long yy = y0 + i;
            if (yy < 0 || yy >= H) continue;                   // a padding row: skip it
            for (long long j = 0; j < kw; ++j) {
                long long xc = x0 + j;
                if (xc < 0 || xc >= W) continue;
                float v = img[yy * W + xc];
                // Strict '>' keeps the first maximum on ties. v != v holds only for NaN:
                // a NaN replaces any number, and nothing replaces a NaN (NaN > NaN is false).
                if (best_idx < 0 || v > best || (v != v && best == best)) {
                    best = v;
                    best_idx = yy * W + xc;
                }
            }
        }
        // best_idx stays -1 only for a window lying wholly in the padding, which the
        // launcher rejects; backward would then route nothing from this window.
        y[t] = best;
        idx[t] = best_idx;
    }
}

extern "C" __global__ void maxpool2d_backward(const float* gy, const long long* idx, float* dx,
                                              long long N, long long C, long long H, long long W,
                                              long long kh, long long kw, long long sh,
                                              long long sw, long long ph, long long pw,
                                              long long OH, long long OW)
{
    long long n_out = N * C * H * W;
    long long stride = (long long)blockDim.x * gridDim.x;
    for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < n_out; t += stride) {
        long long p = t % (H * W), plane = t / (H * W);       // p = yy*W + xc, as idx stores it
        long long yy = p / W, xc = p % W;
        const float* g = gy + plane * OH * OW;                 // this image's windows
        const long long* arg = idx + plane * OH * OW;
        float acc = 0.0f;
        // Window (oy, ox) covers this pixel at kernel slot (i, j) when oy*sh - ph + i == yy,
        // i.e. oy = (yy + ph - i) / sh divides evenly and 0 <= oy < OH; columns likewise.
        for (long long i = 0; i < kh; ++i) {
            long long oy_sh = yy + ph - i;
            if (oy_sh < 0 || oy_sh % sh != 0 || oy_sh / sh >= OH) continue;
            for (long long j = 0; j < kw; ++j) {
                long long ox_sw = xc + pw - j;
                if (ox_sw < 0 || ox_sw % sw != 0 || ox_sw / sw >= OW) continue;
                long long o = (oy_sh / sh) * OW + ox_sw / sw;  // window (oy, ox) in the plane
                if (arg[o] == p) acc += g[o];                  // this window's max was here
            }
        }
        dx[t] = acc;
    }
}
