// LeakyReLU, y = x for x > 0 and y = slope * x otherwise (slope >= 0), and its backward.
// Every kernel runs one thread per element in memory order, on a grid of
// ceil(total / blockDim.x) 1-D blocks (tinyseg's launch_per_element).

#include "common.cuh"

template <typename T>
__device__ void leaky_relu_forward_impl(const T* x, T* y, T slope, long long total)
{
    const long long index = global_thread_index();
    if (index >= total) return;                 // the last block's tail
    const T v = x[index];
    y[index] = v > T(0) ? v : slope * v;        // NaN is not > 0: slope * NaN = NaN
}

template <typename T>
__device__ void leaky_relu_backward_impl(const T* gy, const T* y, T* gx, T slope, long long total)
{
    // With slope >= 0, y > 0 exactly where x > 0: the output doubles as the mask, as ReLU's.
    const long long index = global_thread_index();
    if (index >= total) return;
    gx[index] = y[index] > T(0) ? gy[index] : slope * gy[index];
}

#define LEAKY_RELU_KERNELS(T, SUFFIX)                                                            \
    extern "C" __global__ void leaky_relu_forward_##SUFFIX(const T* x, T* y, T slope,            \
        long long total)                                                                         \
    {                                                                                            \
        leaky_relu_forward_impl<T>(x, y, slope, total);                                          \
    }                                                                                            \
    extern "C" __global__ void leaky_relu_backward_##SUFFIX(const T* gy, const T* y, T* gx,      \
        T slope, long long total)                                                                \
    {                                                                                            \
        leaky_relu_backward_impl<T>(gy, y, gx, slope, total);                                    \
    }

LEAKY_RELU_KERNELS(float, f32)
LEAKY_RELU_KERNELS(double, f64)
