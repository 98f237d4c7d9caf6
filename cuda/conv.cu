// im2col and col2im: the two data-movement halves of a convolution done as GEMM.
//
// For an image (N, C, H, W), a kh x kw kernel, stride s and zero padding p, the
// windows form an out_h x out_w grid (L = out_h * out_w positions) and
//
//     cols[n, (c, i, j), (oh, ow)] = image[n, c, oh*s + i - p, ow*s + j - p]   (0 outside)
//
// with cols of shape (N, C*kh*kw, L). A convolution is then cuBLAS's batched GEMM
// W (C_out, C*kh*kw) @ cols[n]. col2im is the adjoint: every pixel receives the sum of
// the column entries that were read from it. Both kernels take the padding
// implicitly, so no padded copy of the image is ever made.
//
// Used by conv2d (forward: im2col; d input: col2im) and conv_transpose2d (forward:
// col2im onto the output canvas; d input: im2col of the output gradient).

#include "common.cuh"

// What both kernels take besides their two arrays: the image (N, C, H, W) as C, H, W, the
// kernel, stride and padding, and the out_h x out_w grid of windows.
#define CONV_GEOMETRY int channels, int height, int width, int kh, int kw, int stride, int padding, \
                      int out_h, int out_w
#define CONV_GEOMETRY_ARGS channels, height, width, kh, kw, stride, padding, out_h, out_w

template <typename T>
__device__ void im2col_impl(const T* image, T* cols, long long total, CONV_GEOMETRY)
{
    // One thread per entry of cols, in cols' own memory order: consecutive threads
    // write consecutive window positions ow, so writes coalesce and reads are
    // `stride` elements apart. Grid: ceil(total / blockDim.x) blocks of 1-D threads.
    const long long index = global_thread_index();
    if (index >= total) return;
    long long rest = index;
    const int ow = (int)(rest % out_w); rest /= out_w;
    const int oh = (int)(rest % out_h); rest /= out_h;
    const int j = (int)(rest % kw); rest /= kw;
    const int i = (int)(rest % kh); rest /= kh;
    const int c = (int)(rest % channels);
    const long long n = rest / channels;
    const int y = oh * stride + i - padding;
    const int x = ow * stride + j - padding;
    const bool inside = y >= 0 && y < height && x >= 0 && x < width;
    cols[index] = inside ? image[((n * channels + c) * height + y) * width + x] : T(0);
}

template <typename T>
__device__ void col2im_impl(const T* cols, T* image, long long total, CONV_GEOMETRY)
{
    // Gather: one thread per image pixel (n, c, y, x), in the image's memory order.
    // The thread sums every column entry read from its pixel, so each output is
    // written exactly once and no atomics are needed.
    //
    // In padded coordinates (yp, xp) = (y + p, x + p) the pixel is tap (i, j) of
    // window (oh, ow) when yp = oh*s + i and xp = ow*s + j. So i runs over
    // yp % s, yp % s + s, ... (i < kh and i <= yp, i.e. oh >= 0), giving
    // oh = (yp - i) / s, which must also be < out_h; likewise for j.
    const long long index = global_thread_index();
    if (index >= total) return;
    const long long plane = index / ((long long)height * width);          // n * C + c
    const int yp = (int)(index / width % height) + padding, xp = (int)(index % width) + padding;
    const long long positions = (long long)out_h * out_w;
    const T* channel_cols = cols + plane * kh * kw * positions;           // rows (c, i, j) of image n
    T sum = 0;
    for (int i = yp % stride; i < kh && i <= yp; i += stride) {
        const int oh = (yp - i) / stride;
        if (oh >= out_h) continue;
        for (int j = xp % stride; j < kw && j <= xp; j += stride) {
            const int ow = (xp - j) / stride;
            if (ow >= out_w) continue;
            sum += channel_cols[((long long)i * kw + j) * positions + (long long)oh * out_w + ow];
        }
    }
    image[index] = sum;
}

#define CONV_KERNELS(T, SUFFIX)                                                                  \
    extern "C" __global__ void im2col_##SUFFIX(const T* image, T* cols, long long total,         \
                                               CONV_GEOMETRY)                                    \
    {                                                                                            \
        im2col_impl<T>(image, cols, total, CONV_GEOMETRY_ARGS);                                  \
    }                                                                                            \
    extern "C" __global__ void col2im_##SUFFIX(const T* cols, T* image, long long total,         \
                                               CONV_GEOMETRY)                                    \
    {                                                                                            \
        col2im_impl<T>(cols, image, total, CONV_GEOMETRY_ARGS);                                  \
    }

CONV_KERNELS(float, f32)
CONV_KERNELS(double, f64)
