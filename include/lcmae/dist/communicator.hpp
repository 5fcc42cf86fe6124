// lcmae/dist/communicator.hpp - the communicator policy (DESIGN.md "Distributed"): what a
// data-parallel trainer needs from its process group, checked once with a sentence.
//
//   dist::Single  (dist/single.hpp)  one process; the default; needs no MPI
//   dist::Mpi     (dist/mpi.hpp)     CPU ranks: MPI_Allreduce of the gradient arena in host memory
//   dist::Nccl    (dist/nccl.cuh)    GPU ranks: ncclAllReduce on the compute stream
//
// The data-parallel contract every communicator keeps (train/trainer.hpp relies on it):
//   * allreduce_mean leaves the SAME bits on every rank (the optimiser, its schedule and the EMA
//     then see identical inputs, so weights stay bit-equal without re-broadcasting them);
//   * every collective either completes or ends the whole job with one message (no hang);
//   * make_gradient_sync gives the trainer an overlapped gradient mean with the same result as
//     allreduce_mean (dist/grad_ready.hpp), or null where there is nothing to overlap.
#pragma once

#include <concepts>
#include <cstddef>
#include <memory>

#include "lcmae/backend/tag.hpp"
#include "lcmae/core/error.hpp"
#include "lcmae/dist/grad_ready.hpp"
#include "lcmae/dist/reducer.hpp"

namespace lcmae::dist {

/// An error every rank throws together (rank 0's failed save or load, shared with all): a program
/// reports it once (rank 0) and exits normally, where an error of one rank alone must end the job.
struct CollectiveError : Error {
    using Error::Error;
};

template <class C, class Backend, class T = float>
concept Communicator = requires(const C& c, const Backend& ctx, dptr<Backend, T> p, double* h, void* raw) {
    { C::name } -> std::convertible_to<const char*>;
    { c.rank() } -> std::convertible_to<int>;
    { c.world() } -> std::convertible_to<int>;
    c.allreduce_mean(ctx, 1L, p, "");
    c.allreduce_sum_host(h, 1, "");
    c.broadcast(ctx, 1L, p, 0, "");
    c.broadcast_host(raw, std::size_t{1}, 0, "");
    { c.template reducer<Backend>() } -> std::convertible_to<const Reducer<Backend>*>;
    { c.template make_gradient_sync<Backend, T>() } -> std::convertible_to<std::unique_ptr<GradientSync<Backend, T>>>;
};

}  // namespace lcmae::dist
