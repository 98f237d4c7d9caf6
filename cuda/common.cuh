// Shared by every kernel file in cuda/ (each one #includes it): the thread-index
// prologue of one-thread-per-element kernels and the float/double math wrappers.
#pragma once

// This thread's element on a 1-D grid of 1-D blocks: grid ceil(total / blockDim.x).
// A kernel returns at once when the index is past its `total` (the last block's tail).
__device__ __forceinline__ long long global_thread_index()
{
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}

// name_(v): CUDA's float function namef for float arguments, name for double ones.
#define FLOAT_AND_DOUBLE(name)                                                                    \
    template <typename T> __device__ __forceinline__ T name##_(T v);                              \
    template <> __device__ __forceinline__ float name##_(float v) { return name##f(v); }         \
    template <> __device__ __forceinline__ double name##_(double v) { return name(v); }

FLOAT_AND_DOUBLE(exp)
FLOAT_AND_DOUBLE(log1p)
FLOAT_AND_DOUBLE(tanh)
