// Max pooling over (N, C, H, W) with a kh x kw window and stride (sh, sw), floor mode:
// out_h = (H - kh) / sh + 1, so every window lies inside the image.
//
// Forward writes, next to each maximum, its position in the H*W plane (argmax), the
// first maximum in row-major window order winning ties, as in tinyseg/ops/pool.py.
// A NaN counts as the maximum (NumPy's argmax rule), so NaNs propagate.
//
// Backward is a gather: one thread per input pixel adds the gradients of the windows
// whose argmax is that pixel. Windows overlap when the stride is smaller than the
// kernel, so a scatter from the outputs would need atomicAdd; the gather needs none,
// sums in a fixed order (deterministic results) and writes every input gradient,
// zeros included, exactly once, so no separate zero-fill pass is needed.

#include "common.cuh"

// What both kernels take besides their arrays: the H x W input plane, the out_h x out_w
// output plane, the window and the stride.
#define POOL_GEOMETRY int height, int width, int out_h, int out_w, int kh, int kw, int sh, int sw
#define POOL_GEOMETRY_ARGS height, width, out_h, out_w, kh, kw, sh, sw

template <typename T>
__device__ void max_pool_forward_impl(const T* x, T* y, int* argmax, long long total,
                                      POOL_GEOMETRY)
{
    // One thread per output (n, c, oh, ow), in the output's memory order.
    // Grid: ceil(total / blockDim.x) blocks of 1-D threads.
    const long long index = global_thread_index();
    if (index >= total) return;
    const int ow = (int)(index % out_w);
    const int oh = (int)((index / out_w) % out_h);
    const long long plane = index / ((long long)out_h * out_w);        // n * C + c
    const T* source = x + plane * height * width;
    const int top = oh * sh, left = ow * sw;
    int best_at = top * width + left;
    T best = source[best_at];
    for (int i = 0; i < kh; ++i) {
        for (int j = 0; j < kw; ++j) {
            const int at = (top + i) * width + left + j;
            const T v = source[at];
            const bool best_is_nan = best != best;
            if (!best_is_nan && (v > best || v != v)) {
                best = v;
                best_at = at;
            }
        }
    }
    y[index] = best;
    argmax[index] = best_at;
}

template <typename T>
__device__ void max_pool_backward_impl(const T* gy, const int* argmax, T* gx, long long total,
                                       POOL_GEOMETRY)
{
    // One thread per input pixel (n, c, h, w), in the input's memory order.
    // Row h lies in window rows oh with oh*sh <= h <= oh*sh + kh - 1, that is
    // ceil((h - kh + 1) / sh) <= oh <= h / sh, clipped to [0, out_h); same for columns.
    const long long index = global_thread_index();
    if (index >= total) return;
    const int w = (int)(index % width);
    const int h = (int)((index / width) % height);
    const long long plane = index / ((long long)height * width);
    const int oh_first = h < kh ? 0 : (h - kh) / sh + 1;
    const int ow_first = w < kw ? 0 : (w - kw) / sw + 1;
    const int oh_last = h / sh < out_h - 1 ? h / sh : out_h - 1;
    const int ow_last = w / sw < out_w - 1 ? w / sw : out_w - 1;
    const long long out_plane = plane * out_h * out_w;
    const int here = h * width + w;
    T sum = 0;
    for (int oh = oh_first; oh <= oh_last; ++oh) {
        for (int ow = ow_first; ow <= ow_last; ++ow) {
            const long long o = out_plane + (long long)oh * out_w + ow;
            if (argmax[o] == here) sum += gy[o];
        }
    }
    gx[index] = sum;
}

#define POOL_KERNELS(T, SUFFIX)                                                                  \
    extern "C" __global__ void max_pool_forward_##SUFFIX(const T* x, T* y, int* argmax,          \
                                                         long long total, POOL_GEOMETRY)         \
    {                                                                                            \
        max_pool_forward_impl<T>(x, y, argmax, total, POOL_GEOMETRY_ARGS);                       \
    }                                                                                            \
    extern "C" __global__ void max_pool_backward_##SUFFIX(const T* gy, const int* argmax,        \
                                                          T* gx, long long total, POOL_GEOMETRY) \
    {                                                                                            \
        max_pool_backward_impl<T>(gy, argmax, gx, total, POOL_GEOMETRY_ARGS);                    \
    }

POOL_KERNELS(float, f32)
POOL_KERNELS(double, f64)
