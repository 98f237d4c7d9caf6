// The recurrent part of an LSTM sweep, forward and backward through time, with every
// time step of every sequence in one launch.
//
// Per step, with gates stacked i, f, g, o (PyTorch's order) and z_input = x W_ih^T + b_ih
// + b_hh precomputed for all steps by one GEMM outside these kernels:
//     z = z_input[t] + h_prev W_hh^T
//     i = sigmoid(z_i)  f = sigmoid(z_f)  g = tanh(z_g)  o = sigmoid(z_o)
//     c = f * c_prev + i * g,   h = o * tanh(c),   h_prev = c_prev = 0 before the first step.
// A reversed direction visits t = T-1, ..., 0 and its "previous" step is t + 1; every
// array stays in natural time order (h_t is stored at position t either way).
//
// Thread layout. Grid (ceil(B / group), directions); block (threads,), threads a
// multiple of 32 that the kernel's register count allows (the launcher asks the driver). blockIdx.y picks a direction (its own weights and its own slice of
// every array); blockIdx.x picks `group` consecutive sequences b = first ... first +
// count - 1. Thread x owns hidden units j = x, x + blockDim.x, ... of all the block's
// sequences: for each it computes the four gate rows j, H + j, 2H + j, 3H + j, so the
// cell update needs nothing from other threads. The block's hidden states h_prev
// (group x H) live in shared memory, read by all threads; W_hh comes from global
// memory (it is reused by every block and step, so it stays in L2), in a layout that
// makes consecutive threads read consecutive addresses. Each step ends with two
// __syncthreads(): one after everyone has read the old shared state, one after the
// new state has been written. The recurrence is sequential in t, so the parallelism
// is over units, sequences and directions. Read-only arrays are `const __restrict__`:
// no output aliases them, so the compiler may keep them in registers or read them
// through the read-only cache.
//
// Saved for backward, as tinyseg/ops/cpu/lstm.py saves them, in natural time order:
// activated gates (T, B, 4H), cells c, tanh(c) and hidden states h (T, B, H), per direction.

#include "common.cuh"

#define LSTM_MAX_GROUP 8   // most sequences per block: 4 * LSTM_MAX_GROUP accumulators per thread

// The CPU's logistic: 0.5 * (1 + tanh(v / 2)) never overflows.
template <typename T> __device__ __forceinline__ T sigmoid_(T v)
{
    return T(0.5) * (T(1) + tanh_(T(0.5) * v));
}

template <typename T>
__device__ void lstm_forward_impl(const T* __restrict__ z_input, const T* __restrict__ w_hh_t,
                                  T* __restrict__ gates, T* __restrict__ cells,
                                  T* __restrict__ tanh_cells, T* __restrict__ hs, int steps,
                                  int batch, int hidden, int group, int reverse_flags)
{
    // z_input, gates: (D, T, B, 4H); cells, tanh_cells, hs: (D, T, B, H);
    // w_hh_t: (D, H, 4H), W_hh transposed, so unit j's four gate weights for input unit m
    // sit at m*4H + j + {0, H, 2H, 3H}. Direction d runs reversed when bit d of
    // reverse_flags is set. Dynamic shared memory: group * H values of T.
    extern __shared__ double shared_words[];
    T* h_prev = reinterpret_cast<T*>(shared_words);              // [group][H]
    const int direction = blockIdx.y;
    const bool reverse = (reverse_flags >> direction) & 1;
    const int first = blockIdx.x * group;
    const int count = batch - first < group ? batch - first : group;
    const long long gate_width = 4LL * hidden;
    const long long unit_count = (long long)steps * batch * hidden;  // per direction
    z_input += direction * unit_count * 4;
    gates += direction * unit_count * 4;
    cells += direction * unit_count;
    tanh_cells += direction * unit_count;
    hs += direction * unit_count;
    w_hh_t += direction * hidden * gate_width;

    for (int k = threadIdx.x; k < count * hidden; k += blockDim.x) h_prev[k] = T(0);
    __syncthreads();
    for (int s = 0; s < steps; ++s) {
        const int t = reverse ? steps - 1 - s : s;
        const int t_prev = reverse ? t + 1 : t - 1;                  // read only when s > 0
        for (int j = threadIdx.x; j < hidden; j += blockDim.x) {
            T acc[4][LSTM_MAX_GROUP];
#pragma unroll
            for (int g = 0; g < LSTM_MAX_GROUP; ++g) {
                if (g < count) {
                    const T* z = z_input + ((long long)t * batch + first + g) * gate_width + j;
                    acc[0][g] = z[0];
                    acc[1][g] = z[hidden];
                    acc[2][g] = z[2 * hidden];
                    acc[3][g] = z[3 * hidden];
                }
            }
#pragma unroll 4   // several independent weight loads in flight per thread
            for (int m = 0; m < hidden; ++m) {                        // z += h_prev W_hh^T
                const T* w = w_hh_t + m * gate_width + j;
                const T w_i = w[0], w_f = w[hidden], w_g = w[2 * hidden], w_o = w[3 * hidden];
#pragma unroll
                for (int g = 0; g < LSTM_MAX_GROUP; ++g) {
                    if (g < count) {
                        const T h = h_prev[g * hidden + m];
                        acc[0][g] += h * w_i;
                        acc[1][g] += h * w_f;
                        acc[2][g] += h * w_g;
                        acc[3][g] += h * w_o;
                    }
                }
            }
#pragma unroll
            for (int g = 0; g < LSTM_MAX_GROUP; ++g) {
                if (g < count) {
                    const long long row = (long long)t * batch + first + g;
                    const T i = sigmoid_(acc[0][g]), f = sigmoid_(acc[1][g]);
                    const T gg = tanh_(acc[2][g]), o = sigmoid_(acc[3][g]);
                    const T c_prev = s > 0
                        ? cells[((long long)t_prev * batch + first + g) * hidden + j] : T(0);
                    const T c = f * c_prev + i * gg;
                    const T tc = tanh_(c);
                    T* a = gates + row * gate_width + j;
                    a[0] = i;
                    a[hidden] = f;
                    a[2 * hidden] = gg;
                    a[3 * hidden] = o;
                    cells[row * hidden + j] = c;
                    tanh_cells[row * hidden + j] = tc;
                    hs[row * hidden + j] = o * tc;
                }
            }
        }
        __syncthreads();                       // every thread is done reading h_prev
        for (int j = threadIdx.x; j < hidden; j += blockDim.x)
            for (int g = 0; g < count; ++g)    // each thread copies the units it wrote
                h_prev[g * hidden + j] = hs[((long long)t * batch + first + g) * hidden + j];
        __syncthreads();                       // h_prev now holds this step's h
    }
}

template <typename T>
__device__ void lstm_backward_impl(const T* __restrict__ gh, const T* __restrict__ w_hh,
                                   const T* __restrict__ gates, const T* __restrict__ cells,
                                   const T* __restrict__ tanh_cells, T* __restrict__ gz, int steps,
                                   int batch, int hidden, int group, int reverse_flags)
{
    // Back-propagation through time, the sweep visited last step first. Inputs: gh, the
    // gradient of every h (D, T, B, H); w_hh (D, 4H, H) in PyTorch's layout (unit j's
    // weight from gate row r is at r*H + j: consecutive threads, consecutive addresses);
    // the saved gates, cells and tanh(cells). Output: gz = dL/dz (D, T, B, 4H), from
    // which the caller gets every weight and input gradient with GEMMs.
    //
    // Per step, for unit j of a sequence, with dz_next and dc_next from the step after:
    //     dh = gh[t] + dz_next W_hh                 (z_next depends on this h through W_hh)
    //     dc = dh * o * (1 - tanh(c)^2) + dc_next   (h = o tanh(c); c_next = f_next c + ...)
    //     dz_i = dc * g * i (1 - i)       dz_f = dc * c_prev * f (1 - f)
    //     dz_g = dc * i * (1 - g^2)       dz_o = dh * tanh(c) * o (1 - o)
    //     dc_next <- dc * f
    // Dynamic shared memory: group * 5H values of T: dz_next [group][4H], then
    // dc_next [group][H] (each entry read and written only by the thread owning unit j).
    extern __shared__ double shared_words[];
    T* dz_next = reinterpret_cast<T*>(shared_words);
    T* dc_next = dz_next + group * 4 * hidden;
    const int direction = blockIdx.y;
    const bool reverse = (reverse_flags >> direction) & 1;
    const int first = blockIdx.x * group;
    const int count = batch - first < group ? batch - first : group;
    const long long gate_width = 4LL * hidden;
    const long long unit_count = (long long)steps * batch * hidden;
    gh += direction * unit_count;
    w_hh += direction * hidden * gate_width;
    gates += direction * unit_count * 4;
    cells += direction * unit_count;
    tanh_cells += direction * unit_count;
    gz += direction * unit_count * 4;

    for (int s = steps - 1; s >= 0; --s) {
        const int t = reverse ? steps - 1 - s : s;
        const int t_prev = reverse ? t + 1 : t - 1;                  // read only when s > 0
        const bool last = s == steps - 1;                            // no later step yet
        for (int j = threadIdx.x; j < hidden; j += blockDim.x) {
            T dh[LSTM_MAX_GROUP];
#pragma unroll
            for (int g = 0; g < LSTM_MAX_GROUP; ++g)
                if (g < count) dh[g] = gh[((long long)t * batch + first + g) * hidden + j];
            if (!last) {
#pragma unroll 4
                for (int r = 0; r < 4 * hidden; ++r) {               // dh += dz_next W_hh
                    const T w = w_hh[(long long)r * hidden + j];
#pragma unroll
                    for (int g = 0; g < LSTM_MAX_GROUP; ++g)
                        if (g < count) dh[g] += dz_next[g * 4 * hidden + r] * w;
                }
            }
#pragma unroll
            for (int g = 0; g < LSTM_MAX_GROUP; ++g) {
                if (g < count) {
                    const long long row = (long long)t * batch + first + g;
                    const T* a = gates + row * gate_width + j;
                    const T i = a[0], f = a[hidden], gg = a[2 * hidden], o = a[3 * hidden];
                    const T tc = tanh_cells[row * hidden + j];
                    const T dc = dh[g] * o * (T(1) - tc * tc) + (last ? T(0) : dc_next[g * hidden + j]);
                    const T c_prev = s > 0
                        ? cells[((long long)t_prev * batch + first + g) * hidden + j] : T(0);
                    T* d = gz + row * gate_width + j;
                    d[0] = dc * gg * i * (T(1) - i);
                    d[hidden] = dc * c_prev * f * (T(1) - f);
                    d[2 * hidden] = dc * i * (T(1) - gg * gg);
                    d[3 * hidden] = dh[g] * tc * o * (T(1) - o);
                    dc_next[g * hidden + j] = dc * f;
                }
            }
        }
        __syncthreads();                       // every thread is done reading dz_next
        for (int j = threadIdx.x; j < hidden; j += blockDim.x)
            for (int g = 0; g < count; ++g)    // each thread copies the entries it wrote
                for (int q = 0; q < 4; ++q)
                    dz_next[g * 4 * hidden + q * hidden + j] =
                        gz[((long long)t * batch + first + g) * gate_width + q * hidden + j];
        __syncthreads();                       // dz_next now holds this step's dz
    }
}

#define LSTM_KERNELS(T, SUFFIX)                                                                  \
    extern "C" __global__ void lstm_forward_##SUFFIX(const T* z_input, const T* w_hh_t,          \
        T* gates, T* cells, T* tanh_cells, T* hs, int steps, int batch, int hidden, int group,   \
        int reverse_flags)                                                                       \
    {                                                                                            \
        lstm_forward_impl<T>(z_input, w_hh_t, gates, cells, tanh_cells, hs, steps, batch,        \
                             hidden, group, reverse_flags);                                      \
    }                                                                                            \
    extern "C" __global__ void lstm_backward_##SUFFIX(const T* gh, const T* w_hh,                \
        const T* gates, const T* cells, const T* tanh_cells, T* gz, int steps, int batch,        \
        int hidden, int group, int reverse_flags)                                                \
    {                                                                                            \
        lstm_backward_impl<T>(gh, w_hh, gates, cells, tanh_cells, gz, steps, batch, hidden,      \
                              group, reverse_flags);                                             \
    }

LSTM_KERNELS(float, f32)
LSTM_KERNELS(double, f64)
