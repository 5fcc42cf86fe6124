// lcmae/dist/single.hpp - dist::Single, the default communicator: one process, no MPI at build or
// run time. Every collective is the identity, so a Trainer<T, B, dist::Single> runs exactly the
// single-process step (no extra copies, no extra ops: bit-identical to a trainer without one).
#pragma once

#include <cstddef>
#include <memory>

#include "lcmae/backend/tag.hpp"
#include "lcmae/dist/grad_ready.hpp"
#include "lcmae/dist/reducer.hpp"

namespace lcmae::dist {

struct Single {
    static constexpr const char* name = "single";
    static constexpr bool distributed = false;
    int rank() const noexcept { return 0; }
    int world() const noexcept { return 1; }
    /// Gradient all-reduce (mean over ranks), in place: nothing to do.
    template <class Backend, class P>
    void allreduce_mean(const Backend&, long, P, const char*) const {}
    /// Host doubles (losses, flags), summed over ranks: nothing to do.
    void allreduce_sum_host(double*, int, const char*) const {}
    template <class Backend, class P>
    void broadcast(const Backend&, long, P, int, const char*) const {}
    void broadcast_host(void*, std::size_t, int, const char*) const {}
    /// Nothing to overlap: the trainer's backward runs without gradient reports.
    template <class Backend, class T>
    std::unique_ptr<GradientSync<Backend, T>> make_gradient_sync() const {
        return nullptr;
    }
    /// No SyncBatchNorm: the layers keep their single-process ops.
    template <class Backend>
    const Reducer<Backend>* reducer() const noexcept {
        return nullptr;
    }
};

}  // namespace lcmae::dist
