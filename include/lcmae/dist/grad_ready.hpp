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

#include <algorithm>
#include <cstddef>

#include "lcmae/backend/tag.hpp"
#include "lcmae/core/error.hpp"

namespace lcmae::dist {

template <class Backend>
struct GradReady {
    virtual ~GradReady() = default;
    /// Every gradient at arena offset >= `from` (elements) is final for this backward. Called on the
    /// compute thread, in stream order on a device backend.
    virtual void ready_from(const Backend& ctx, std::size_t from) = 0;
};

/// The bucket arithmetic every GradientSync shares: reports of a falling offset come in, buckets of
/// `bucket` elements are cut from the top of the arena down as soon as they are whole, and the
/// report of 0 (or finish) releases the rest. Every rank cuts the same buckets from the same
/// reports, which is what lets each bucket be one collective. `start(lo, hi)` starts one bucket.
class BucketCutter {
public:
    void begin(std::size_t n, std::size_t bucket) {
        LCMAE_CHECK(!active_, "GradientSync::begin: the previous gradient mean was never finished");
        LCMAE_CHECK(bucket > 0, "a gradient bucket needs at least one element");
        n_ = issued_ = ready_ = n;
        bucket_ = bucket;
        active_ = true;
    }
    /// Everything at offset >= from is final: starts the whole buckets that makes (all of the rest
    /// when from is 0). Returns how many it started.
    template <class Start>
    long report(std::size_t from, Start&& start) {
        LCMAE_CHECK(active_, "GradReady::ready_from outside a gradient mean (begin was not called)");
        LCMAE_CHECK(from <= ready_, "GradReady::ready_from(" << from << ") after ready_from(" << ready_
                                                            << "): reports must not increase (dist/grad_ready.hpp)");
        ready_ = from;
        long started = 0;
        while (issued_ > ready_ && (issued_ - ready_ >= bucket_ || ready_ == 0)) {
            cut(std::min(issued_ - ready_, bucket_), start);
            ++started;
            if (from > 0) ++overlapped_;  // from 0 the backward is over: nothing left to hide behind
        }
        return started;
    }
    /// Ends the mean: starts what was never reported final, in pieces of at most max_count.
    template <class Start>
    void finish(std::size_t max_count, Start&& start) {
        LCMAE_CHECK(active_, "GradientSync::finish without begin");
        active_ = false;
        while (issued_ > 0) cut(std::min(issued_, max_count), start);
    }
    bool unstarted() const noexcept { return issued_ > 0; }
    std::size_t size() const noexcept { return n_; }
    long overlapped() const noexcept { return overlapped_; }
    long total() const noexcept { return total_; }

private:
    template <class Start>
    void cut(std::size_t count, Start& start) {
        start(issued_ - count, issued_);
        issued_ -= count;
        ++total_;
    }
    std::size_t n_ = 0, issued_ = 0, ready_ = 0, bucket_ = 1;  // [issued_, n_) started; [ready_, n_) final
    bool active_ = false;
    long overlapped_ = 0, total_ = 0;
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
