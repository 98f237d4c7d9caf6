// Elementwise kernels: per-channel bias, ReLU, and softmax cross-entropy over classes.
// Every kernel runs one thread per element (or per pixel) in memory order, on a grid
// of ceil(total / blockDim.x) 1-D blocks.

// name_(v): CUDA's float function namef for float arguments, name for double ones.
#define FLOAT_AND_DOUBLE(name)                                                                    \
    template <typename T> __device__ __forceinline__ T name##_(T v);                              \
    template <> __device__ __forceinline__ float name##_(float v) { return name##f(v); }         \
    template <> __device__ __forceinline__ double name##_(double v) { return name(v); }

FLOAT_AND_DOUBLE(exp)
FLOAT_AND_DOUBLE(log1p)
FLOAT_AND_DOUBLE(expm1)

template <typename T>
__device__ void bias_relu_impl(T* y, const T* bias, long long total, int channels,
                               long long plane, int has_bias, int relu)
{
    // In place on y (N, C, plane): y = y + bias[c], then max(y, 0) when relu. A
    // convolution's GEMM writes its output without the bias; this one pass adds it and,
    // for a convolution with a fused ReLU (conv2d(..., relu=True)), applies the ReLU too.
    // NaN stays NaN. Without a bias (has_bias == 0) `bias` is not read.
    const long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= total) return;
    T v = y[index];
    if (has_bias) v += bias[(index / plane) % channels];
    y[index] = relu && v <= T(0) ? T(0) : v;
}

template <typename T>
__device__ void relu_forward_impl(const T* x, T* y, long long total)
{
    const long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= total) return;
    const T v = x[index];
    y[index] = v * (T)(v > T(0));
}

template <typename T>
__device__ void relu_backward_impl(const T* gy, const T* y, T* gx, long long total)
{
    // y > 0 exactly where x > 0, so the output doubles as the mask: dx = dy * (y > 0).
    const long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= total) return;
    gx[index] = gy[index] * (T)(y[index] > T(0));
}

template <typename T>
__device__ void cross_entropy_forward_impl(const T* logits, const long long* target,
                                           const T* class_weight, T* pixel_loss,
                                           T* pixel_weight, T* log_sums, long long pixels,
                                           int classes, long long plane, int weighted)
{
    // One thread per pixel (n, p) of logits (N, classes, plane); pixels = N * plane.
    // The thread reads its pixel's scores at stride `plane` (coalesced across threads):
    //     m = max_c z_c,  lse = m + log sum_c exp(z_c - m),
    //     loss = w[t] * (lse - z_t) = w[t] * (log sum_c exp(z_c - m) - (z_t - m)),
    // w = 1 without class weights. The per-pixel log sum (lse - m) is kept for backward;
    // lse itself would round the small log sum away against a large m.
    const long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= pixels) return;
    const long long n = index / plane, p = index % plane;
    const T* z = logits + n * classes * plane + p;
    int top = 0;                                          // the first class holding the max
    for (int c = 1; c < classes; ++c) top = z[c * plane] > z[top * plane] ? c : top;
    const T m = z[top * plane];
    T others = 0;                     // sum of exp(z_c - m) over c != top; the top adds exactly 1
    for (int c = 0; c < classes; ++c) others += c == top ? T(0) : exp_(z[c * plane] - m);
    const T log_sum = log1p_(others);   // log(1 + others) without rounding 1 + others first
    const long long t = target[index];
    const T w = weighted ? class_weight[t] : T(1);
    pixel_loss[index] = w * (log_sum - (z[t * plane] - m));
    pixel_weight[index] = w;
    log_sums[index] = log_sum;
}

template <typename T>
__device__ void cross_entropy_backward_impl(const T* logits, const long long* target,
                                            const T* pixel_weight, const T* log_sums,
                                            const T* scale, T* grad, long long total,
                                            int classes, long long plane)
{
    // One thread per logit (n, c, p):
    //     d loss / d z_c = w[t] * (softmax_c - [c == t]) * scale,   softmax_c = exp(z_c - lse),
    // scale[0] = (upstream gradient) / sum of pixel weights, a device scalar.
    const long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= total) return;
    const long long p = index % plane;
    const long long c = (index / plane) % classes;
    const long long pixel = (index / plane / classes) * plane + p;
    // With m recomputed from the pixel's logits, z_c - lse = (z_c - m) - log_sum is exact
    // to rounding, and for the target class softmax - 1 = expm1(z_t - lse): when the
    // model is confident (softmax near 1) the subtraction would cancel most digits.
    const T* z = logits + (index / plane / classes) * classes * plane + p;
    T m = z[0];
    for (int k = 1; k < classes; ++k) m = z[k * plane] > m ? z[k * plane] : m;
    const T shifted = (logits[index] - m) - log_sums[pixel];
    const T d = target[pixel] == c ? expm1_(shifted) : exp_(shifted);   // softmax - onehot
    grad[index] = d * pixel_weight[pixel] * scale[0];
}

#define ELEMENTWISE_KERNELS(T, SUFFIX)                                                           \
    extern "C" __global__ void bias_relu_##SUFFIX(T* y, const T* bias, long long total,          \
        int channels, long long plane, int has_bias, int relu)                                   \
    {                                                                                            \
        bias_relu_impl<T>(y, bias, total, channels, plane, has_bias, relu);                      \
    }                                                                                            \
    extern "C" __global__ void relu_forward_##SUFFIX(const T* x, T* y, long long total)          \
    {                                                                                            \
        relu_forward_impl<T>(x, y, total);                                                       \
    }                                                                                            \
    extern "C" __global__ void relu_backward_##SUFFIX(const T* gy, const T* y, T* gx,            \
        long long total)                                                                         \
    {                                                                                            \
        relu_backward_impl<T>(gy, y, gx, total);                                                 \
    }                                                                                            \
    extern "C" __global__ void cross_entropy_forward_##SUFFIX(const T* logits,                   \
        const long long* target, const T* class_weight, T* pixel_loss, T* pixel_weight,          \
        T* log_sums, long long pixels, int classes, long long plane, int weighted)               \
    {                                                                                            \
        cross_entropy_forward_impl<T>(logits, target, class_weight, pixel_loss, pixel_weight,    \
                                      log_sums, pixels, classes, plane, weighted);               \
    }                                                                                            \
    extern "C" __global__ void cross_entropy_backward_##SUFFIX(const T* logits,                  \
        const long long* target, const T* pixel_weight, const T* log_sums, const T* scale,       \
        T* grad, long long total, int classes, long long plane)                                  \
    {                                                                                            \
        cross_entropy_backward_impl<T>(logits, target, pixel_weight, log_sums, scale, grad,      \
                                       total, classes, plane);                                   \
    }

ELEMENTWISE_KERNELS(float, f32)
ELEMENTWISE_KERNELS(double, f64)
