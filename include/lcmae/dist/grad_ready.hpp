// lcmae/dist/grad_ready.hpp - how a backward pass tells the data-parallel group which gradients are
// final, so their all-reduce can start while the earlier layers still compute theirs (the bucketed
// overlap of issue 11; PyTorch DDP's gradient hooks, without per-tensor hooks).
//
// Why a watermark and not per-tensor events: the parameter arena is planned in forward order
// (encoder: cls, patch embedding, blocks 0..depth-1, norm; then the decoder; then the guidance
// heads), and the backward pass finishes them in the reverse order, so at every moment the final
// gradients form ONE suffix of the arena: "everything at offset >= from". One number describes it,
// buckets are cut from the top of the arena down, and every rank cuts the same buckets.
//
// The contract the model keeps (tests/models/test_grad_ready.cpp checks it for every model kind):
//   * calls come with non-increasing `from`, the last one with from == 0, once per backward;
//   * after ready_from(from), no gradient at offset >= from changes again in this backward.
// The trainer installs a sink only for the last micro-batch of an accumulation cycle (earlier
// micro-batches keep accumulating, so nothing is final there).
#pragma once

#include <cstddef>

#include "lcmae/backend/tag.hpp"

namespace lcmae::dist {

template <class Backend>
struct GradReady {
    virtual ~GradReady() = default;
    /// Every gradient at arena offset >= `from` (elements) is final for this backward. Called on the
    /// compute thread, in stream order on a device backend.
    virtual void ready_from(const Backend& ctx, std::size_t from) = 0;
};

/// One overlapped gradient mean per optimiser step, made by a communicator
/// (`comm.template make_gradient_sync<Backend, T>()`, null where there is nothing to overlap) and
/// owned by the trainer:
///     begin(ctx, n, grads)         before the last micro-batch's backward (nothing is sent yet);
///     ready_from(ctx, from)        from the backward: buckets of final gradients start reducing;
///     finish(ctx, what)            after it: the rest is sent, everything waited for, and
///                                  grads[0:n] is the mean over ranks, the same bits on every rank.
/// The result equals the communicator's allreduce_mean of the whole arena (tests/dist checks the
/// weights bit for bit with and without overlap).
template <class Backend, class T>
struct GradientSync : GradReady<Backend> {
    virtual void begin(const Backend& ctx, long n, dptr<Backend, T> grads) = 0;
    virtual void finish(const Backend& ctx, const char* what) = 0;
    /// Buckets whose reduction started inside the backward pass (before finish), and all buckets,
    /// since construction: what the overlap achieved (the benchmark and the tests read them).
    virtual long buckets_overlapped() const = 0;
    virtual long buckets_total() const = 0;
};

}  // namespace lcmae::dist
