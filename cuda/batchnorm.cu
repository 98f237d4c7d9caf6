// Batch normalisation of (N, C, H, W) over (N, H, W), one set of statistics per channel.
// Channel c of image n is the contiguous plane x[(n*C + c) * HW ... + HW).
//
// Reductions (statistics, and the two sums backward needs) run in two launches. First a
// 2-D grid (C, parts) of BN_THREADS-thread blocks: block (c, b) reduces slice b of the
// channel's N*HW values (the values numbered image by image, `span` to a slice), its
// threads striding over each plane's part of the slice (coalesced reads), each keeping a
// double partial sum, which a shared-memory tree then halves down to one. Then one
// thread per channel combines the channel's `parts` partial results in order, so the
// result does not depend on scheduling. Several blocks per channel keep the GPU busy
// when channels are few; with many channels, parts = 1. Summing in double keeps float32
// statistics of large maps (N*HW in the hundreds of thousands) exact to float32
// rounding. The elementwise kernels use one thread per element in memory order.

#include "common.cuh"

#define BN_THREADS 256   // threads of the reduction blocks; their launch bound, which the launcher checks

// Sum of `value` over a block of THREADS threads, returned to every thread. `partial`
// holds THREADS doubles. Every thread of the block must call it.
template <int THREADS>
__device__ double block_sum(double value, double* partial)
{
    static_assert(THREADS > 0 && (THREADS & (THREADS - 1)) == 0, "block_sum halves: a power of two");
    partial[threadIdx.x] = value;
    __syncthreads();
    for (unsigned half = THREADS / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
        __syncthreads();
    }
    const double total = partial[0];
    __syncthreads();   // everyone has read partial[0] before the next call overwrites it
    return total;
}

// The values [begin, end) of channel c's slice: plane n covers values n*HW ... n*HW + HW - 1.
// FOR_SLICE(k, offset) runs its body for this thread's values, `offset` the value's index
// in the maps.
#define FOR_SLICE(k, offset)                                                                     \
    for (long long n = begin / plane; n * plane < end; ++n)                                      \
        for (long long k = max(begin - n * plane, 0LL) + threadIdx.x,                            \
                       k##_end = min(end - n * plane, plane),                                    \
                       offset = (n * channels + c) * plane + k;                                  \
             k < k##_end; k += BN_THREADS, offset += BN_THREADS)

template <typename T>
__device__ void batch_norm_stats_partial_impl(const T* __restrict__ x, double* __restrict__ partial,
                                              int batch, int channels, long long plane,
                                              long long span)
{
    // Grid (C, parts): slice blockIdx.y of channel blockIdx.x. Writes the slice's sum and its
    // sum of squared deviations from the slice's own mean (two passes over the slice, as
    // NumPy's var) to partial[0][c][b] and partial[1][c][b].
    __shared__ double scratch[BN_THREADS];
    const int c = blockIdx.x, b = blockIdx.y, parts = gridDim.y;
    const long long count = (long long)batch * plane;
    const long long begin = b * span, end = min(count, begin + span);
    double sum = 0;
    FOR_SLICE(k, at) sum += (double)x[at];
    sum = block_sum<BN_THREADS>(sum, scratch);
    const double mu = sum / (double)(end - begin);
    double squares = 0;
    FOR_SLICE(k, at) {
        const double d = (double)x[at] - mu;
        squares += d * d;
    }
    squares = block_sum<BN_THREADS>(squares, scratch);
    if (threadIdx.x == 0) {
        partial[(long long)c * parts + b] = sum;
        partial[((long long)channels + c) * parts + b] = squares;
    }
}

template <typename T>
__device__ void batch_norm_stats_finish_impl(const double* __restrict__ partial, T* __restrict__ mean,
                                             T* __restrict__ var, T* __restrict__ inv_std,
                                             int channels, int parts, long long count,
                                             long long span, double eps)
{
    // One thread per channel, grid ceil(C / blockDim.x). Combines the slices' sums and
    // squared deviations (Chan et al.): M2 = sum_b M2_b + n_b (mean_b - mean)^2.
    const long long c = global_thread_index();
    if (c >= channels) return;
    const double* sums = partial + c * parts;
    const double* squares = partial + ((long long)channels + c) * parts;
    double total = 0;
    for (int b = 0; b < parts; ++b) total += sums[b];
    const double mu = total / (double)count;
    double m2 = 0;
    for (int b = 0; b < parts; ++b) {
        const double n_b = (double)(min(count, (b + 1) * span) - b * span);
        const double d = sums[b] / n_b - mu;
        m2 += squares[b] + n_b * d * d;
    }
    const double sigma2 = m2 / (double)count;   // biased variance
    mean[c] = (T)mu;
    var[c] = (T)sigma2;
    inv_std[c] = (T)(1.0 / sqrt(sigma2 + eps));
}

template <typename T>
__device__ void batch_norm_apply_impl(const T* x, const T* mean, const T* inv_std,
                                      const T* weight, const T* bias, T* y, long long total,
                                      int channels, long long plane)
{
    // One thread per element: y = (x - mean) * inv_std * weight + bias (weight and bias
    // are ones and zeros without an affine transform). x_hat is not stored: backward
    // recomputes it from x, mean and inv_std. Grid: ceil(total / blockDim.x) blocks.
    const long long index = global_thread_index();
    if (index >= total) return;
    const int c = (int)((index / plane) % channels);
    y[index] = (x[index] - mean[c]) * inv_std[c] * weight[c] + bias[c];
}

template <typename T>
__device__ void batch_norm_backward_partial_impl(const T* __restrict__ gy, const T* __restrict__ x,
                                                 const T* __restrict__ mean,
                                                 double* __restrict__ partial, int batch,
                                                 int channels, long long plane, long long span)
{
    // Grid (C, parts), as the statistics. Per slice: sum(gy) and sum(gy * (x - mean)), to
    // partial[0][c][b] and partial[1][c][b].
    __shared__ double scratch[BN_THREADS];
    const int c = blockIdx.x, b = blockIdx.y, parts = gridDim.y;
    const long long count = (long long)batch * plane;
    const long long begin = b * span, end = min(count, begin + span);
    const double mu = (double)mean[c];
    double sum_gy = 0, sum_gy_xc = 0;
    FOR_SLICE(k, at) {
        sum_gy += (double)gy[at];
        sum_gy_xc += (double)gy[at] * ((double)x[at] - mu);
    }
    sum_gy = block_sum<BN_THREADS>(sum_gy, scratch);
    sum_gy_xc = block_sum<BN_THREADS>(sum_gy_xc, scratch);
    if (threadIdx.x == 0) {
        partial[(long long)c * parts + b] = sum_gy;
        partial[((long long)channels + c) * parts + b] = sum_gy_xc;
    }
}

template <typename T>
__device__ void batch_norm_backward_finish_impl(const double* __restrict__ partial,
                                                const T* __restrict__ inv_std,
                                                T* __restrict__ sum_gy, T* __restrict__ sum_gy_xhat,
                                                int channels, int parts)
{
    // One thread per channel: sum(gy) (= d bias) and sum(gy * x_hat) (= d weight), x_hat =
    // (x - mean) * inv_std, accumulated as sum(gy * (x - mean)) and scaled by inv_std once.
    const long long c = global_thread_index();
    if (c >= channels) return;
    double a = 0, b = 0;
    for (int part = 0; part < parts; ++part) {
        a += partial[c * parts + part];
        b += partial[((long long)channels + c) * parts + part];
    }
    sum_gy[c] = (T)a;
    sum_gy_xhat[c] = (T)(b * (double)inv_std[c]);
}

template <typename T>
__device__ void batch_norm_backward_input_impl(const T* gy, const T* x, const T* mean,
                                               const T* inv_std, const T* scale,
                                               const T* sum_gy, const T* sum_gy_xhat, T* gx,
                                               long long total, int channels, long long plane,
                                               double inv_count, int training)
{
    // One thread per element; scale = weight * inv_std per channel.
    // Training: mean and variance depend on every x of the channel, so with
    // g_hat = gy * weight and x_hat = (x - mean) * inv_std,
    //     dx = inv_std * (g_hat - mean(g_hat) - x_hat * mean(g_hat * x_hat))
    //        = scale * (gy - sum(gy) / M - x_hat * sum(gy * x_hat) / M),   M = N*H*W.
    // Evaluation: the statistics are constants, dx = scale * gy.
    const long long index = global_thread_index();
    if (index >= total) return;
    const int c = (int)((index / plane) % channels);
    T g = gy[index];
    if (training) {
        const T x_hat = (x[index] - mean[c]) * inv_std[c];
        g -= (sum_gy[c] + x_hat * sum_gy_xhat[c]) * (T)inv_count;
    }
    gx[index] = scale[c] * g;
}

#define BATCH_NORM_KERNELS(T, SUFFIX)                                                            \
    extern "C" __global__ void __launch_bounds__(BN_THREADS) batch_norm_stats_partial_##SUFFIX(  \
        const T* x, double* partial, int batch, int channels, long long plane, long long span)   \
    {                                                                                            \
        batch_norm_stats_partial_impl<T>(x, partial, batch, channels, plane, span);              \
    }                                                                                            \
    extern "C" __global__ void batch_norm_stats_finish_##SUFFIX(const double* partial, T* mean,  \
        T* var, T* inv_std, int channels, int parts, long long count, long long span,            \
        double eps)                                                                              \
    {                                                                                            \
        batch_norm_stats_finish_impl<T>(partial, mean, var, inv_std, channels, parts, count,     \
                                        span, eps);                                              \
    }                                                                                            \
    extern "C" __global__ void batch_norm_apply_##SUFFIX(const T* x, const T* mean,              \
        const T* inv_std, const T* weight, const T* bias, T* y, long long total, int channels,   \
        long long plane)                                                                         \
    {                                                                                            \
        batch_norm_apply_impl<T>(x, mean, inv_std, weight, bias, y, total, channels, plane);     \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(BN_THREADS) batch_norm_backward_partial_##SUFFIX( \
        const T* gy, const T* x, const T* mean, double* partial, int batch, int channels,        \
        long long plane, long long span)                                                         \
    {                                                                                            \
        batch_norm_backward_partial_impl<T>(gy, x, mean, partial, batch, channels, plane, span); \
    }                                                                                            \
    extern "C" __global__ void batch_norm_backward_finish_##SUFFIX(const double* partial,        \
        const T* inv_std, T* sum_gy, T* sum_gy_xhat, int channels, int parts)                    \
    {                                                                                            \
        batch_norm_backward_finish_impl<T>(partial, inv_std, sum_gy, sum_gy_xhat, channels,      \
                                           parts);                                               \
    }                                                                                            \
    extern "C" __global__ void batch_norm_backward_input_##SUFFIX(const T* gy, const T* x,       \
        const T* mean, const T* inv_std, const T* scale, const T* sum_gy, const T* sum_gy_xhat,  \
        T* gx, long long total, int channels, long long plane, double inv_count, int training)   \
    {                                                                                            \
        batch_norm_backward_input_impl<T>(gy, x, mean, inv_std, scale, sum_gy, sum_gy_xhat, gx,  \
                                          total, channels, plane, inv_count, training);          \
    }

BATCH_NORM_KERNELS(float, f32)
BATCH_NORM_KERNELS(double, f64)
