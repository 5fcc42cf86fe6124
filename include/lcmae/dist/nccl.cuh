// lcmae/dist/nccl.cuh - dist::Nccl: data parallelism over GPU ranks, one GPU per rank (nvcc; needs
// <nccl.h> and MPI). Launch with mpirun exactly as for CPU ranks.
//
// Setup (the constructor, every rank):
//   * the GPU is picked from the LOCAL rank (ranks on one host take GPUs 0, 1, ... in order:
//     local_rank % device count), so the same command line works on every host;
//   * rank 0 makes the NCCL unique id and MPI broadcasts it (dist::Mpi, under its timeout);
//   * ncclCommInitRank joins the clique.
// Collectives:
//   * gradient mean: ncclAllReduce(ncclAvg) of the whole gradient arena, in place, on the compute
//     stream (no copy, no host round trip) - what saves use, and training with
//     LCMAE_DIST_OVERLAP=0;
//   * overlapped gradient mean (NcclGradientSync, the trainer's default): as the backward reports
//     final gradients (dist/grad_ready.hpp), buckets of 25 MiB (LCMAE_DIST_BUCKET_MB) are cut from
//     the top of the arena down and each is ncclAllReduce(ncclAvg)'d on a second stream that
//     first waits for an event recorded on the compute stream at the report; the compute stream
//     goes on with the earlier layers' backward meanwhile, and waits for the second stream's last
//     event before the optimiser. Same per-element operation as the whole-arena call;
//   * SyncBatchNorm: ncclAllReduce(ncclSum) of the column sums on the stream (a few KB);
//   * losses, stop flags, the outcome of rank 0's save: host values, through the dist::Mpi.
// No hang: after the gradient all-reduce the host polls the stream and ncclCommGetAsyncError with
// a deadline (dist::Mpi's timeout); past it, or on an NCCL error, the communicator is aborted
// (ncclCommAbort) and MPI_Abort ends every rank with one line naming this rank.
//
// Status: compiles with nvcc; scripts/gpu-check.sh runs tests/cuda/test_nccl.cu (one rank: the
// all-reduce, the broadcast, the overlapped bucketed mean against the whole-arena one, and
// SyncBatchNorm's CUDA ops against a double reference), which had not run on a GPU when this was
// written. No multi-GPU machine has been available: a multi-rank NCCL run is untested.
#pragma once

#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>

#include "lcmae/backend/cuda.cuh"
#include "lcmae/dist/mpi.hpp"
#include "lcmae/dist/reducer.hpp"

#define LCMAE_NCCL_CHECK(call)                                                                         \
    do {                                                                                               \
        const ncclResult_t lcmae_nccl_r_ = (call);                                                     \
        LCMAE_CHECK(lcmae_nccl_r_ == ncclSuccess, #call " failed: " << ncclGetErrorString(lcmae_nccl_r_)); \
    } while (false)

namespace lcmae::dist {

/// The GPU a rank uses: its index among the ranks on its host, modulo the host's GPUs.
inline int device_for_local_rank(int local_rank) {
    int n = 0;
    LCMAE_CUDA_CHECK(cudaGetDeviceCount(&n));
    LCMAE_CHECK(n > 0, "dist::Nccl: this rank sees no CUDA device");
    return local_rank % n;
}

template <class T>
class NcclGradientSync;

class Nccl final : public Reducer<backend::Cuda> {
public:
    static constexpr const char* name = "nccl";
    static constexpr bool distributed = true;

    /// `mpi` (which must outlive this) carries the setup and the host-side collectives. Call
    /// cudaSetDevice(device_for_local_rank(mpi.local_rank())) - or build the backend::Cuda context
    /// on that device - before constructing.
    /// `bucket_bytes` sizes the overlapped all-reduce's buckets (0: LCMAE_DIST_BUCKET_MB when set,
    /// else 25 MiB, PyTorch DDP's default).
    explicit Nccl(const Mpi& mpi, std::size_t bucket_bytes = 0) : mpi_(&mpi) {
        ncclUniqueId id{};
        if (mpi.rank() == 0) LCMAE_NCCL_CHECK(ncclGetUniqueId(&id));
        mpi.broadcast_host(&id, sizeof id, 0, "the NCCL unique id");
        LCMAE_NCCL_CHECK(ncclCommInitRank(&comm_, mpi.world(), id, mpi.rank()));
        bucket_bytes_ = bucket_bytes > 0 ? bucket_bytes
                        : mpi.options().bucket_bytes > 0 ? mpi.options().bucket_bytes  // LCMAE_DIST_BUCKET_MB
                                                         : std::size_t(25) << 20;
    }
    ~Nccl() {
        if (comm_) ncclCommDestroy(comm_);
    }
    Nccl(const Nccl&) = delete;
    Nccl& operator=(const Nccl&) = delete;

    int rank() const noexcept { return mpi_->rank(); }
    int world() const override { return mpi_->world(); }

    template <class Backend, class T>
    void allreduce_mean(const Backend& ctx, long n, T* x, const char* what) const {
        static_assert(std::is_same_v<Backend, backend::Cuda>, "dist::Nccl reduces device memory of backend::Cuda");
        LCMAE_NCCL_CHECK(ncclAllReduce(x, x, std::size_t(n), nccl_type<T>(), ncclAvg, comm_, ctx.stream()));
        wait(ctx, what);
    }
    void allreduce_sum_host(double* x, int n, const char* what) const { mpi_->allreduce_sum_host(x, n, what); }
    template <class Backend, class T>
    void broadcast(const Backend& ctx, long n, T* x, int root, const char* what) const {
        static_assert(std::is_same_v<Backend, backend::Cuda>, "dist::Nccl broadcasts device memory of backend::Cuda");
        LCMAE_NCCL_CHECK(ncclBroadcast(x, x, std::size_t(n), nccl_type<T>(), root, comm_, ctx.stream()));
        wait(ctx, what);
    }
    void broadcast_host(void* x, std::size_t bytes, int root, const char* what) const {
        mpi_->broadcast_host(x, bytes, root, what);
    }
    // Reducer (SyncBatchNorm): on the stream, no wait (the step's loss download waits for it)
    void sum(const backend::Cuda& ctx, long n, double* x, const char*) const override {
        LCMAE_NCCL_CHECK(ncclAllReduce(x, x, std::size_t(n), ncclDouble, ncclSum, comm_, ctx.stream()));
    }
    template <class Backend>
    const Reducer<Backend>* reducer() const noexcept {
        static_assert(std::is_same_v<Backend, backend::Cuda>, "dist::Nccl synchronises BatchNorm for backend::Cuda only");
        return this;
    }
    /// The overlapped gradient mean (dist/grad_ready.hpp); null with overlap off
    /// (LCMAE_DIST_OVERLAP=0). Unlike dist::Mpi it is made for one rank too, so the one-GPU check
    /// exercises it.
    template <class Backend, class T>
    std::unique_ptr<GradientSync<Backend, T>> make_gradient_sync() const {
        static_assert(std::is_same_v<Backend, backend::Cuda>, "dist::Nccl reduces device memory of backend::Cuda");
        if (!mpi_->options().overlap) return nullptr;
        return std::make_unique<NcclGradientSync<T>>(*this);
    }
    std::size_t bucket_bytes() const noexcept { return bucket_bytes_; }

private:
    template <class T>
    friend class NcclGradientSync;
    template <class T>
    static ncclDataType_t nccl_type() {
        static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "dist::Nccl reduces float or double arrays");
        return std::is_same_v<T, float> ? ncclFloat : ncclDouble;
    }
    /// Polls the stream (and NCCL's asynchronous error) until the collective is done, with the
    /// Mpi's deadline: a dead or stopped peer would otherwise hang this rank's stream for ever.
    void wait(const backend::Cuda& ctx, const char* what) const { wait_stream(ctx.stream(), what); }
    void wait_stream(cudaStream_t stream, const char* what) const {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(mpi_->timeout_seconds());
        for (;;) {
            const cudaError_t q = cudaStreamQuery(stream);
            if (q == cudaSuccess) return;
            LCMAE_CHECK(q == cudaErrorNotReady, what << ": " << cudaGetErrorString(q));
            ncclResult_t async = ncclSuccess;
            ncclCommGetAsyncError(comm_, &async);
            if (async != ncclSuccess && async != ncclInProgress) {
                ncclCommAbort(comm_);
                mpi_->abort(std::string(what) + ": NCCL error " + ncclGetErrorString(async));
            }
            if (std::chrono::steady_clock::now() > deadline) {
                ncclCommAbort(comm_);
                mpi_->abort(std::string(what) + " did not complete within the timeout (LCMAE_DIST_TIMEOUT): another rank "
                                                "died, stopped or hangs", 3);
            }
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
    }

    const Mpi* mpi_;
    ncclComm_t comm_ = nullptr;
    std::size_t bucket_bytes_ = 0;
};

/// dist::Nccl's overlapped gradient mean. Owns a second (non-blocking) stream and two events on
/// the device current at construction (the rank's GPU). Every ncclAllReduce is issued from the
/// host thread in the same order on every rank (the buckets are cut from the same reports), which
/// is all NCCL asks of calls on one communicator; SyncBatchNorm's reductions on the compute stream
/// are all issued before the first bucket (the heads' backward runs first) and after finish.
template <class T>
class NcclGradientSync final : public GradientSync<backend::Cuda, T> {
public:
    explicit NcclGradientSync(const Nccl& nccl) : nccl_(&nccl) {
        LCMAE_CUDA_CHECK(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking));
        LCMAE_CUDA_CHECK(cudaEventCreateWithFlags(&ready_event_, cudaEventDisableTiming));
        LCMAE_CUDA_CHECK(cudaEventCreateWithFlags(&done_event_, cudaEventDisableTiming));
    }
    ~NcclGradientSync() override {
        if (done_event_) cudaEventDestroy(done_event_);
        if (ready_event_) cudaEventDestroy(ready_event_);
        if (side_) cudaStreamDestroy(side_);
    }
    NcclGradientSync(const NcclGradientSync&) = delete;
    NcclGradientSync& operator=(const NcclGradientSync&) = delete;

    void begin(const backend::Cuda&, long n, T* grads) override {
        LCMAE_CHECK(n >= 0 && grads != nullptr, "NcclGradientSync::begin needs a gradient arena, got " << n << " values");
        cut_.begin(std::size_t(n), std::max<std::size_t>(1, nccl_->bucket_bytes() / sizeof(T)));
        x_ = grads;
    }
    void ready_from(const backend::Cuda& ctx, std::size_t from) override {
        bool waited = false;
        cut_.report(from, [&](std::size_t lo, std::size_t hi) {
            if (!waited) wait_for_compute(ctx), waited = true;
            issue(lo, hi);
        });
    }
    void finish(const backend::Cuda& ctx, const char* what) override {
        if (cut_.unstarted()) wait_for_compute(ctx);  // a backward that did not report down to 0
        cut_.finish(cut_.size(), [&](std::size_t lo, std::size_t hi) { issue(lo, hi); });
        LCMAE_CUDA_CHECK(cudaEventRecord(done_event_, side_));
        LCMAE_CUDA_CHECK(cudaStreamWaitEvent(ctx.stream(), done_event_, 0));  // the optimiser sees the mean
        nccl_->wait_stream(side_, what);
    }
    long buckets_overlapped() const override { return cut_.overlapped(); }
    long buckets_total() const override { return cut_.total(); }

private:
    /// The side stream starts after everything the compute stream has enqueued so far.
    void wait_for_compute(const backend::Cuda& ctx) {
        LCMAE_CUDA_CHECK(cudaEventRecord(ready_event_, ctx.stream()));
        LCMAE_CUDA_CHECK(cudaStreamWaitEvent(side_, ready_event_, 0));
    }
    void issue(std::size_t lo, std::size_t hi) {
        LCMAE_NCCL_CHECK(ncclAllReduce(x_ + lo, x_ + lo, hi - lo, Nccl::nccl_type<T>(), ncclAvg, nccl_->comm_, side_));
    }

    const Nccl* nccl_;
    BucketCutter cut_;
    cudaStream_t side_ = nullptr;
    cudaEvent_t ready_event_ = nullptr, done_event_ = nullptr;
    T* x_ = nullptr;
};

}  // namespace lcmae::dist
