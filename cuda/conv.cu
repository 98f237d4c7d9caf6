// The data movement around a convolution done as GEMM: im2col and col2im, and the two
// layout moves between the GEMM's channel-major result and the (N, C, H, W) maps.
//
// For an image (N, C, H, W), a kh x kw kernel, stride s and zero padding p, the
// windows form an out_h x out_w grid (L = out_h * out_w positions per image, N * L in
// all, position P = n * L + oh * out_w + ow) and
//
//     cols[(c, i, j), P] = image[n, c, oh*s + i - p, ow*s + j - p]   (0 outside)
//
// with cols of shape (C*kh*kw, N*L), as on the CPU, so that a convolution is ONE GEMM
// W (C_out, C*kh*kw) @ cols for the whole batch. The launchers build cols for a range of
// positions [first, first + positions) at a time (a chunk), so that the buffer stays
// within a memory budget; every kernel here takes the chunk's first position and its
// length. col2im is the adjoint: every pixel receives the sum of the column entries read
// from it. Both take the padding implicitly: no padded copy of the image is ever made.
//
// Used by conv2d (forward: im2col; d input: col2im) and conv_transpose2d (forward:
// col2im onto the output canvas; d input: im2col of the output gradient).

#include "common.cuh"

// What im2col and col2im take besides their arrays: the image (N, C, H, W) as C, H, W, the
// kernel, stride and padding, and the out_h x out_w grid of windows.
#define CONV_GEOMETRY int channels, int height, int width, int kh, int kw, int stride, int padding, \
                      int out_h, int out_w
#define CONV_GEOMETRY_ARGS channels, height, width, kh, kw, stride, padding, out_h, out_w

// Thread layout of im2col and of the two layout moves: a 2-D grid of 1-D blocks. Thread x
// of the grid (blockIdx.x * blockDim.x + threadIdx.x) owns one position q of the chunk;
// blockIdx.y picks a group of `rows_per_thread` consecutive rows (im2col: rows (c, i, j)
// of cols; layout moves: channels). A thread decodes its position and its first row once
// (a few divisions), then walks its rows with counters. Consecutive threads own
// consecutive positions, so every row's reads or writes coalesce.
// Grid: (ceil(positions / blockDim.x), ceil(rows / rows_per_thread)).
__device__ __forceinline__ long long chunk_position()
{
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}

template <typename T>
__device__ void im2col_impl(const T* __restrict__ image, T* __restrict__ cols, long long first,
                            long long positions, int rows_per_thread, CONV_GEOMETRY)
{
    // cols: (C*kh*kw, positions), column q holding position first + q.
    const long long q = chunk_position();
    if (q >= positions) return;
    const int rows = channels * kh * kw;
    int k = blockIdx.y * rows_per_thread;
    const int k_end = min(rows, k + rows_per_thread);
    const long long length = (long long)out_h * out_w;
    const long long n = (first + q) / length;
    const int l = (int)(first + q - n * length);
    const int oh = l / out_w;
    const int y0 = oh * stride - padding, x0 = (l - oh * out_w) * stride - padding;
    int c = k / (kh * kw), i = k / kw % kh, j = k % kw;
    const T* plane = image + (n * channels + c) * height * width;     // image[n, c]
    for (; k < k_end; ++k) {
        const int y = y0 + i, x = x0 + j;
        const bool inside = y >= 0 && y < height && x >= 0 && x < width;
        cols[(long long)k * positions + q] = inside ? plane[(long long)y * width + x] : T(0);
        if (++j == kw) {                                              // next row: (c, i, j + 1)
            j = 0;
            if (++i == kh) {
                i = 0;
                plane += (long long)height * width;
            }
        }
    }
}

template <typename T>
__device__ void col2im_impl(const T* __restrict__ cols, T* __restrict__ image, long long first,
                            long long positions, long long first_image, long long threads,
                            int rows_per_thread, CONV_GEOMETRY)
{
    // Gather: one thread per pixel column x of a group of `rows_per_thread` rows of one
    // plane (n, c), for the images the chunk touches (image first_image onwards), numbered
    // (plane, row group, x): `threads` of them on a 1-D grid of ceil(threads / blockDim.x)
    // blocks, consecutive threads on consecutive pixels of a row. A thread sums, for each of
    // its pixels, every entry of the chunk's columns read from it, so each output is
    // written by one thread and no atomics are needed. The first chunk that reaches an
    // image writes its pixels; a later one adds.
    //
    // In padded coordinates (yp, xp) = (y + p, x + p) the pixel is tap (i, j) of
    // window (oh, ow) when yp = oh*s + i and xp = ow*s + j. So i runs over
    // yp % s, yp % s + s, ... with oh = (yp - i) / s falling by one each time
    // (while oh >= 0, and only oh < out_h counts); likewise for j and ow. The thread
    // decodes its first pixel once; moving down a row, yp % s and (yp - yp % s) / s
    // are updated by counting.
    const long long index = global_thread_index();
    if (index >= threads) return;
    const int groups = (height + rows_per_thread - 1) / rows_per_thread;
    const long long rest = index / width;                             // plane * groups + group
    const long long plane = rest / groups;                            // (n - first_image) * C + c
    const int y_first = (int)(rest - plane * groups) * rows_per_thread;
    const int y_end = min(height, y_first + rows_per_thread);
    const int xp = (int)(index - rest * width) + padding;
    const long long n = first_image + plane / channels;
    const int c = (int)(plane % channels);
    const long long length = (long long)out_h * out_w;
    const long long start = n * length - first;                       // column of window 0 of image n
    const long long lo = start < 0 ? -start : 0;                      // windows of image n in the chunk:
    const long long hi = positions - start < length ? positions - start : length;   // [lo, hi)
    const T* channel_cols = cols + (long long)c * kh * kw * positions;  // rows (c, i, j)
    const int j0 = xp % stride, ow0 = (xp - j0) / stride;
    int i0 = (y_first + padding) % stride, oh0 = (y_first + padding - i0) / stride;
    T* out = image + (first_image * channels + plane) * height * width + (xp - padding);
    for (int y = y_first; y < y_end; ++y) {
        T sum = 0;
        for (int i = i0, oh = oh0; i < kh && oh >= 0; i += stride, --oh) {
            if (oh >= out_h) continue;
            for (int j = j0, ow = ow0; j < kw && ow >= 0; j += stride, --ow) {
                const long long l = (long long)oh * out_w + ow;
                if (ow >= out_w || l < lo || l >= hi) continue;
                sum += channel_cols[((long long)i * kw + j) * positions + start + l];
            }
        }
        T* pixel = out + (long long)y * width;
        *pixel = start < 0 ? *pixel + sum : sum;
        if (++i0 == stride) {                                         // the next row: yp + 1
            i0 = 0;
            ++oh0;
        }
    }
}

template <typename T>
__device__ void columns_to_maps_impl(const T* __restrict__ z, const T* __restrict__ bias,
                                     T* __restrict__ y, long long first, long long positions,
                                     int channels, long long length, int rows_per_thread,
                                     int has_bias, int relu)
{
    // A GEMM result z (C, positions) into the maps y (N, C, L): y[n, c, l] = z[c, q] (+ bias[c],
    // then max(., 0) when relu) for position first + q = n * L + l. NaN stays NaN. Without a
    // bias (has_bias == 0) `bias` is not read.
    const long long q = chunk_position();
    if (q >= positions) return;
    const long long n = (first + q) / length;
    T* out = y + n * channels * length + (first + q - n * length);    // y[n, 0, l]
    const int c_end = min(channels, (int)(blockIdx.y + 1) * rows_per_thread);
    for (int c = blockIdx.y * rows_per_thread; c < c_end; ++c) {
        T v = z[(long long)c * positions + q];
        if (has_bias) v += bias[c];
        out[(long long)c * length] = relu && v <= T(0) ? T(0) : v;
    }
}

template <typename T>
__device__ void maps_to_columns_impl(const T* __restrict__ x, const T* __restrict__ mask,
                                     T* __restrict__ g, long long first, long long positions,
                                     int channels, long long length, int rows_per_thread,
                                     int relu)
{
    // The reverse move: g[c, q] = x[n, c, l] for position first + q = n * L + l; with relu,
    // 0 where mask[n, c, l] <= 0 (a fused ReLU's backward, mask its output; otherwise
    // `mask` is not read).
    const long long q = chunk_position();
    if (q >= positions) return;
    const long long n = (first + q) / length;
    const long long at = n * channels * length + (first + q - n * length);   // [n, 0, l]
    const int c_end = min(channels, (int)(blockIdx.y + 1) * rows_per_thread);
    for (int c = blockIdx.y * rows_per_thread; c < c_end; ++c) {
        const long long from = at + (long long)c * length;
        g[(long long)c * positions + q] = relu && !(mask[from] > T(0)) ? T(0) : x[from];
    }
}

#define CONV_KERNELS(T, SUFFIX)                                                                  \
    extern "C" __global__ void im2col_##SUFFIX(const T* image, T* cols, long long first,         \
        long long positions, int rows_per_thread, CONV_GEOMETRY)                                 \
    {                                                                                            \
        im2col_impl<T>(image, cols, first, positions, rows_per_thread, CONV_GEOMETRY_ARGS);      \
    }                                                                                            \
    extern "C" __global__ void col2im_##SUFFIX(const T* cols, T* image, long long first,         \
        long long positions, long long first_image, long long threads, int rows_per_thread,      \
        CONV_GEOMETRY)                                                                           \
    {                                                                                            \
        col2im_impl<T>(cols, image, first, positions, first_image, threads, rows_per_thread,     \
                       CONV_GEOMETRY_ARGS);                                                      \
    }                                                                                            \
    extern "C" __global__ void columns_to_maps_##SUFFIX(const T* z, const T* bias, T* y,         \
        long long first, long long positions, int channels, long long length,                    \
        int rows_per_thread, int has_bias, int relu)                                             \
    {                                                                                            \
        columns_to_maps_impl<T>(z, bias, y, first, positions, channels, length,                  \
                                rows_per_thread, has_bias, relu);                                \
    }                                                                                            \
    extern "C" __global__ void maps_to_columns_##SUFFIX(const T* x, const T* mask, T* g,         \
        long long first, long long positions, int channels, long long length,                    \
        int rows_per_thread, int relu)                                                           \
    {                                                                                            \
        maps_to_columns_impl<T>(x, mask, g, first, positions, channels, length,                  \
                                rows_per_thread, relu);                                          \
    }

CONV_KERNELS(float, f32)
CONV_KERNELS(double, f64)
