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
//     stream (no copy, no host round trip);
//   * SyncBatchNorm: ncclAllReduce(ncclSum) of the column sums on the stream (a few KB);
//   * losses, stop flags, the outcome of rank 0's save: host values, through the dist::Mpi.
// No hang: after the gradient all-reduce the host polls the stream and ncclCommGetAsyncError with
// a deadline (dist::Mpi's timeout); past it, or on an NCCL error, the communicator is aborted
// (ncclCommAbort) and MPI_Abort ends every rank with one line naming this rank.
//
// Status: compiles with nvcc; scripts/gpu-check.sh runs tests/cuda/test_nccl.cu (one rank: the
// all-reduce, the broadcast, and SyncBatchNorm's CUDA ops against a double reference), which had
// not run on a GPU when this was written. No multi-GPU machine has been available: a multi-rank
// NCCL run is untested.
#pragma once

#include <nccl.h>

#include <chrono>
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

class Nccl final : public Reducer<backend::Cuda> {
public:
    static constexpr const char* name = "nccl";
    static constexpr bool distributed = true;

    /// `mpi` (which must outlive this) carries the setup and the host-side collectives. Call
    /// cudaSetDevice(device_for_local_rank(mpi.local_rank())) - or build the backend::Cuda context
    /// on that device - before constructing.
    explicit Nccl(const Mpi& mpi) : mpi_(&mpi) {
        ncclUniqueId id{};
        if (mpi.rank() == 0) LCMAE_NCCL_CHECK(ncclGetUniqueId(&id));
        mpi.broadcast_host(&id, sizeof id, 0, "the NCCL unique id");
        LCMAE_NCCL_CHECK(ncclCommInitRank(&comm_, mpi.world(), id, mpi.rank()));
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

private:
    template <class T>
    static ncclDataType_t nccl_type() {
        static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "dist::Nccl reduces float or double arrays");
        return std::is_same_v<T, float> ? ncclFloat : ncclDouble;
    }
    /// Polls the stream (and NCCL's asynchronous error) until the collective is done, with the
    /// Mpi's deadline: a dead or stopped peer would otherwise hang this rank's stream for ever.
    void wait(const backend::Cuda& ctx, const char* what) const {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(mpi_->timeout_seconds());
        for (;;) {
            const cudaError_t q = cudaStreamQuery(ctx.stream());
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
};

}  // namespace lcmae::dist
