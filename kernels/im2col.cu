// im2col.cu: unfold image patches into a matrix, so a convolution becomes one matrix multiply.
//
// im2col: x (N, C, H, W) -> cols (N*OH*OW, C*kh*kw)
//   one row per output pixel, one column per (channel, kernel row, kernel column):
//     row    r = (n*OH + oy)*OW + ox
//     column k = (c*kh + i)*kw + j
//     cols[r, k] = x[n, c, oy*sh - ph + i, ox*sw - pw + j], or 0 where that lands in the padding
//   with OH = (H + 2*ph - kh)/sh + 1 and OW = (W + 2*pw - kw)/sw + 1 (the launcher computes them).
//   A convolution with F filters w (F, C, kh, kw) is then cols @ w.reshape(F, C*kh*kw).T.
//
// col2im: cols (N*OH*OW, C*kh*kw) -> dx (N, C, H, W), the adjoint (transpose) of im2col and so
//   its backward: dx[n, c, y, x] = the sum of every cols entry that im2col copied from
//   x[n, c, y, x]. Written as a gather: one thread owns one dx pixel and reads the entries of
//   the (at most kh*kw) windows covering it. A scatter (one thread per cols entry, adding into
//   dx) would need atomicAdd, because overlapping windows send several entries to one pixel.
//
// Threads: one per output element (a cols entry for im2col, a dx pixel for col2im). Each runs
//   a grid-stride loop: thread t handles elements t, t + S, t + 2S, ... where S is the number
//   of threads in the grid, so any grid covers any size. The launcher uses 256 threads per
//   block and ceil(n / 256) blocks, capped (the loop covers the rest).
// Assumptions: float32, C-contiguous arrays. Sizes arrive as long long (64-bit), so flat
//   indices of tensors with more than 2^31 elements do not overflow.

extern "C" __global__ void im2col(const float* x, float* cols,
                                  long long N, long long C, long long H, long long W,
                                  long long kh, long long kw, long long sh, long long sw,
                                  long long ph, long long pw, long long OH, long long OW)
{
    long long K = C * kh * kw;           // columns of cols
    long long n_out = N * OH * OW * K;   // entries of cols
    long long stride = (long long)blockDim.x * gridDim.x;
    for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < n_out; t += stride) {
        // Split the flat index t = r*K + k, last index fastest (C order):
        // k -> (c, i, j) and r -> (n, oy, ox).
        long long k = t % K, r = t / K;
        long long j = k % kw, i = (k / kw) % kh, c = k / (kw * kh);
        long long ox = r % OW, oy = (r / OW) % OH, n = r / (OW * OH);
        long long y = oy * sh - ph + i;      // the input pixel this entry copies;
        long long xc = ox * sw - pw + j;     // negative or past the edge = padding
        bool inside = 0 <= y && y < H && 0 <= xc && xc < W;
        cols[t] = inside ? x[((n * C + c) * H + y) * W + xc] : 0.0f;
    }
}

extern "C" __global__ void col2im(const float* cols, float* dx,
                                  long long N, long long C, long long H, long long W,
                                  long long kh, long long kw, long long sh, long long sw,
                                  long long ph, long long pw, long long OH, long long OW)
{
    long long K = C * kh * kw;
    long long n_out = N * C * H * W;     // pixels of dx
    long long stride = (long long)blockDim.x * gridDim.x;
    for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < n_out; t += stride) {
        long long xc = t % W, y = (t / W) % H, c = (t / (W * H)) % C, n = t / (W * H * C);
        float acc = 0.0f;
        // Window (oy, ox) holds this pixel in its kernel slot (i, j) exactly when
        // oy*sh - ph + i == y, so for each kernel row i: oy = (y + ph - i) / sh, which must
        // divide evenly and be a real window (0 <= oy < OH). Columns likewise.
        for (long long i = 0; i < kh; ++i) {
            long long oy_sh = y + ph - i;    // = oy * sh
            if (oy_sh < 0 || oy_sh % sh != 0 || oy_sh / sh >= OH) continue;
            long long oy = oy_sh / sh;
            for (long long j = 0; j < kw; ++j) {
                long long ox_sw = xc + pw - j;   // = ox * sw
                if (ox_sw < 0 || ox_sw % sw != 0 || ox_sw / sw >= OW) continue;
                long long ox = ox_sw / sw;
                long long r = (n * OH + oy) * OW + ox;
                acc += cols[r * K + (c * kh + i) * kw + j];
            }
        }
        dx[t] = acc;   // every pixel is written, 0 if no window covers it (large stride)
    }
}
