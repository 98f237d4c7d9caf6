// Host stand-ins for the CUDA built-ins that the kernels in cuda/ use, so that g++ can
// compile a .cu file unchanged (apart from the rewrites listed in build.py) and run its
// kernels on the CPU. It is a test tool: one launch runs one block after another on the
// calling thread, which is slow but deterministic and makes the kernels' index logic,
// write coverage and barrier use checkable on machines without a GPU.
//
// Two ways to run a block:
//   plain      each thread is one ordinary call of the kernel body, thread after thread.
//              Right for kernels whose threads never wait for each other.
//   barriers   each thread is a coroutine with its own stack (ucontext). __syncthreads()
//              switches back to a scheduler, which resumes the next thread; once every
//              thread of the block has arrived, all continue. A round in which some threads
//              wait at a barrier while others have returned is reported as divergence
//              (undefined behaviour on a GPU).
// Shared memory: `__shared__` becomes `static`, so a block's threads (one OS thread, one
// block at a time) all see the same array. Dynamic shared memory is a buffer filled with
// 0xFF bytes (NaN as float or double) at the start of every block, so a kernel that reads
// shared memory it never wrote sees NaN.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <ucontext.h>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __shared__ static

using std::max;
using std::min;

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

static dim3 threadIdx, blockIdx, blockDim, gridDim;

struct EmuLaunch {               // filled by build.py through ctypes
    unsigned grid[3];
    unsigned block[3];
    unsigned long long shared_bytes;
    int barriers;                // 1: run threads as coroutines (the source calls __syncthreads)
};

namespace emu {

static std::string last_error;
static std::vector<unsigned char> dynamic_shared;

// Coroutine state of the block being run in barrier mode.
static ucontext_t scheduler;
static std::vector<ucontext_t> contexts;
static std::vector<char> stacks;
static std::vector<int> state;   // 0 running, 1 waiting at a barrier, 2 returned
static unsigned current = 0;
static const std::function<void()>* body = nullptr;
static const size_t STACK_BYTES = 64 * 1024;

// threadIdx of the block's t-th thread (x fastest, as CUDA numbers them).
inline void set_thread_index(unsigned t)
{
    threadIdx.x = t % blockDim.x;
    threadIdx.y = (t / blockDim.x) % blockDim.y;
    threadIdx.z = t / (blockDim.x * blockDim.y);
}

inline void thread_main()
{
    (*body)();
    state[current] = 2;          // uc_link returns to the scheduler
}

inline void syncthreads()
{
    if (contexts.empty()) {      // plain mode: a barrier cannot be honoured
        last_error = "__syncthreads() in a kernel launched without barrier support";
        return;
    }
    state[current] = 1;
    swapcontext(&contexts[current], &scheduler);
}

inline bool run_block_with_barriers(unsigned threads)
{
    contexts.assign(threads, ucontext_t());
    state.assign(threads, 0);
    stacks.resize((size_t)threads * STACK_BYTES);
    for (unsigned t = 0; t < threads; ++t) {
        getcontext(&contexts[t]);
        contexts[t].uc_stack.ss_sp = stacks.data() + (size_t)t * STACK_BYTES;
        contexts[t].uc_stack.ss_size = STACK_BYTES;
        contexts[t].uc_link = &scheduler;
        makecontext(&contexts[t], thread_main, 0);
    }
    for (;;) {
        unsigned waiting = 0, returned = 0;
        for (unsigned t = 0; t < threads; ++t) {
            if (state[t] == 2) { ++returned; continue; }
            state[t] = 0;
            current = t;
            set_thread_index(t);
            swapcontext(&scheduler, &contexts[t]);
            if (state[t] == 1) ++waiting; else ++returned;
        }
        if (waiting == 0) break;
        if (returned > 0) {
            last_error = "barrier divergence: " + std::to_string(waiting) + " threads wait at "
                         "__syncthreads() while " + std::to_string(returned) + " have returned";
            return false;
        }
    }
    contexts.clear();
    return true;
}

}  // namespace emu

inline void __syncthreads() { emu::syncthreads(); }

inline void* emu_dynamic_shared() { return emu::dynamic_shared.data(); }

extern "C" const char* emu_last_error() { return emu::last_error.c_str(); }

// Runs `kernel_call` (the kernel with its arguments bound) for every thread of every
// block. Returns 0, or 1 with emu_last_error() saying what went wrong.
inline int emu_launch(const EmuLaunch* launch, const std::function<void()>& kernel_call)
{
    emu::last_error.clear();
    gridDim.x = launch->grid[0]; gridDim.y = launch->grid[1]; gridDim.z = launch->grid[2];
    blockDim.x = launch->block[0]; blockDim.y = launch->block[1]; blockDim.z = launch->block[2];
    const unsigned threads = blockDim.x * blockDim.y * blockDim.z;
    emu::body = &kernel_call;
    for (unsigned bz = 0; bz < gridDim.z; ++bz)
        for (unsigned by = 0; by < gridDim.y; ++by)
            for (unsigned bx = 0; bx < gridDim.x; ++bx) {
                blockIdx.x = bx; blockIdx.y = by; blockIdx.z = bz;
                emu::dynamic_shared.assign(launch->shared_bytes + 16, 0xFF);
                if (launch->barriers) {
                    if (!emu::run_block_with_barriers(threads)) return 1;
                } else {
                    for (unsigned t = 0; t < threads; ++t) {
                        emu::set_thread_index(t);
                        kernel_call();
                    }
                }
                if (!emu::last_error.empty()) return 1;
            }
    return 0;
}
