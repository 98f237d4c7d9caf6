// Softmax cross-entropy over the classes of every pixel, the GPU twin of the Numba kernels
// in tinyseg/ops/cpu/loss.py: logits and softmax (N, C, P), targets and the per-pixel
// outputs (N, P), class weights (C,) (all ones for the unweighted loss).
//
// Both kernels run one thread per pixel (n, p), N * P threads on a grid of
// ceil(N * P / blockDim.x) 1-D blocks. A thread reads and writes its pixel's C values at
// stride P, so consecutive threads touch consecutive addresses (coalesced).

#include "common.cuh"

template <typename T>
__device__ void cross_entropy_forward_impl(const T* __restrict__ logits,
                                           const long long* __restrict__ target,
                                           const T* __restrict__ class_weight,
                                           T* __restrict__ softmax, T* __restrict__ pixel_loss,
                                           T* __restrict__ pixel_weight, int* __restrict__ invalid,
                                           long long pixels, int classes, long long plane)
{
    // With z the pixel's C logits, m = max z and others = sum of exp(z_c - m) over the
    // classes c other than the (first) maximum, which adds exactly 1:
    //     log_sum = log sum_c exp(z_c - m) = log1p(others)  (no rounding of 1 + others first),
    //     softmax_c = exp((z_c - m) - log_sum),
    //     pixel_loss = w[t] * log softmax_t = w[t] * ((z_t - m) - log_sum),  pixel_weight = w[t].
    // The caller sums pixel_loss and pixel_weight; softmax is kept for backward.
    // A target outside [0, C) is not read through: the pixel counts 0 and sets *invalid to 1
    // (every such thread stores the same value, so no atomic is needed), and the caller
    // raises after reading that one int.
    const long long index = global_thread_index();
    if (index >= pixels) return;
    const long long offset = index / plane * classes * plane + index % plane;
    const T* z = logits + offset;
    int top = 0;
    for (int c = 1; c < classes; ++c) top = z[c * plane] > z[top * plane] ? c : top;
    const T m = z[top * plane];
    T others = 0;
    for (int c = 0; c < classes; ++c) others += c == top ? T(0) : exp_(z[c * plane] - m);
    const T log_sum = log1p_(others);
    for (int c = 0; c < classes; ++c) softmax[offset + c * plane] = exp_((z[c * plane] - m) - log_sum);
    const long long t = target[index];
    if (t < 0 || t >= classes) {
        *invalid = 1;
        pixel_loss[index] = pixel_weight[index] = T(0);
        return;
    }
    const T w = class_weight[t];
    pixel_loss[index] = w * ((z[t * plane] - m) - log_sum);
    pixel_weight[index] = w;
}

template <typename T>
__device__ void cross_entropy_backward_impl(const T* __restrict__ softmax,
                                            const long long* __restrict__ target,
                                            const T* __restrict__ class_weight,
                                            const T* __restrict__ scale, T* __restrict__ grad,
                                            long long pixels, int classes, long long plane)
{
    // d loss / d z_c = w[t] * scale * (softmax_c - [c == t]), scale[0] = (upstream gradient)
    // / (sum of the pixel weights), a device scalar. For the target class, softmax_t - 1 is
    // computed as minus the sum of the other classes' softmax: on a confident pixel
    // (softmax_t near 1) subtracting 1 would keep only a few correct digits. The targets
    // were checked by the forward pass.
    const long long index = global_thread_index();
    if (index >= pixels) return;
    const long long offset = index / plane * classes * plane + index % plane;
    const long long t = target[index];
    const T pixel_scale = class_weight[t] * scale[0];
    T others = 0;
    for (int c = 0; c < classes; ++c) {
        const T s = softmax[offset + c * plane];
        grad[offset + c * plane] = s * pixel_scale;
        others += c == t ? T(0) : s;
    }
    grad[offset + t * plane] = -others * pixel_scale;
}

#define CROSS_ENTROPY_KERNELS(T, SUFFIX)                                                         \
    extern "C" __global__ void cross_entropy_forward_##SUFFIX(const T* logits,                   \
        const long long* target, const T* class_weight, T* softmax, T* pixel_loss,               \
        T* pixel_weight, int* invalid, long long pixels, int classes, long long plane)           \
    {                                                                                            \
        cross_entropy_forward_impl<T>(logits, target, class_weight, softmax, pixel_loss,         \
                                      pixel_weight, invalid, pixels, classes, plane);            \
    }                                                                                            \
    extern "C" __global__ void cross_entropy_backward_##SUFFIX(const T* softmax,                 \
        const long long* target, const T* class_weight, const T* scale, T* grad,                 \
        long long pixels, int classes, long long plane)                                          \
    {                                                                                            \
        cross_entropy_backward_impl<T>(softmax, target, class_weight, scale, grad, pixels,       \
                                       classes, plane);                                          \
    }

CROSS_ENTROPY_KERNELS(float, f32)
CROSS_ENTROPY_KERNELS(double, f64)
