// lcmae/backend/cuda/graph.cuh - CudaGraphCache: the device work of a training step recorded once
// as a CUDA graph and replayed (backend/graph_cache.hpp says what a model promises for one key).
//
// Off by default until a GPU run has checked it (tests/cuda/test_cuda_graph.cu: eager and replayed
// training give bit-identical weights): Cuda::set_graphs(true), or LCMAE_CUDA_GRAPH=1 in the
// environment when the context is made. With graphs on, per key:
//   call 1: eager (warm-up: the context's scratch slots grow to their final size, the position
//           tables are uploaded, cuBLAS picks its kernels);
//   call 2: recorded (cudaStreamBeginCapture on the context's stream, relaxed mode), instantiated
//           and launched;
//   later:  launched; the function is not called at all.
// A recording that fails - an op that synchronises, copies from pageable host memory or grows a
// scratch slot inside it - is ended and thrown away, the key is marked eager-only (one line on
// stderr names the CUDA error), and the function runs eagerly again: the work it enqueued while
// recording never ran, so running it now is exact. A function that throws for its own reasons
// (invalid input) throws the same way from the eager run.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <unordered_map>

#include "lcmae/backend/cuda/check.cuh"
#include "lcmae/backend/cuda/context.cuh"

namespace lcmae::backend {

class CudaGraphCache {
public:
    CudaGraphCache() = default;
    CudaGraphCache(const CudaGraphCache&) = delete;
    CudaGraphCache& operator=(const CudaGraphCache&) = delete;
    ~CudaGraphCache() { clear(); }

    template <class F>
    void run(const Cuda& ctx, std::uint64_t key, F&& f) {
        if (!ctx.graphs() || key == 0) return f();
        Entry& e = entries_[key];
        if (e.exec != nullptr) {
            LCMAE_CUDA_CHECK(cudaGraphLaunch(e.exec, ctx.stream()));
            ++launches_;
            return;
        }
        if (e.eager_only || e.calls++ == 0) return f();  // the first call warms up
        record(ctx, key, e, f);
    }
    /// Graph launches so far (tests check that replay really happened).
    long launches() const noexcept { return launches_; }
    /// Drops every recorded graph (the next calls record again).
    void clear() noexcept {
        for (auto& [k, e] : entries_)
            if (e.exec != nullptr && cudaGraphExecDestroy(e.exec) != cudaSuccess) (void)cudaGetLastError();
        entries_.clear();
    }

private:
    struct Entry {
        cudaGraphExec_t exec = nullptr;
        int calls = 0;
        bool eager_only = false;
    };

    template <class F>
    void record(const Cuda& ctx, std::uint64_t key, Entry& e, F& f) {
        cudaStream_t s = ctx.stream();
        LCMAE_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
        cudaError_t failure = cudaSuccess;
        try {
            f();
        } catch (...) {
            failure = cudaErrorStreamCaptureInvalidated;  // whatever it was, the eager run below repeats it
        }
        cudaGraph_t graph = nullptr;
        const cudaError_t end = cudaStreamEndCapture(s, &graph);  // always: leaves capture mode
        if (failure == cudaSuccess) failure = end;
        cudaGraphExec_t exec = nullptr;
        if (failure == cudaSuccess) failure = cudaGraphInstantiate(&exec, graph, 0);
        if (graph != nullptr) cudaGraphDestroy(graph);
        if (failure != cudaSuccess) {
            (void)cudaGetLastError();  // the capture's error is not the next launch's
            e.eager_only = true;
            std::fprintf(stderr, "lcmae: CUDA graph of step key %016llx could not be recorded (%s); running it eagerly\n",
                         (unsigned long long)key, cudaGetErrorString(failure));
            f();
            return;
        }
        e.exec = exec;
        LCMAE_CUDA_CHECK(cudaGraphLaunch(exec, s));
        ++launches_;
    }

    std::unordered_map<std::uint64_t, Entry> entries_;
    long launches_ = 0;
};

}  // namespace lcmae::backend
