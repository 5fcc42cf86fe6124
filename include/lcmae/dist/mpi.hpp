// lcmae/dist/mpi.hpp - dist::Mpi: data parallelism over CPU ranks (mpirun -np N). Needs <mpi.h>
// (CMake: find_package(MPI COMPONENTS CXX), target lcmae::mpi); a build without MPI simply never
// includes this header and keeps dist::Single.
//
// What it does, and why:
//   * The gradient is ONE buffer (the parameter arena's gradient), so its average over ranks is
//     MPI_Allreduce(MPI_IN_PLACE, SUM) over the whole arena, then a scale by 1/N. The arena is
//     cut into buckets only to keep each MPI count within an int; all buckets are in flight at
//     once. There is no overlap with the backward pass (the reduction starts after it; see
//     README "Data-parallel training" for what that costs).
//   * Identical bits on every rank: sum and scale are the same on all ranks (MPI's reduction
//     algorithms in OpenMPI combine the same operands in the same order for every rank: ring,
//     recursive doubling and Rabenseifner all do; the two-rank case is a single commutative add).
//     tests/dist checks the weights for bit-equality across ranks after training.
//   * No hang: every collective is non-blocking (MPI_I*) and waited for with a deadline
//     (Options::timeout_s, LCMAE_DIST_TIMEOUT seconds in the environment). Past it, this rank
//     prints one line naming itself and the collective, and MPI_Abort ends every rank. A rank that
//     dies is normally noticed first by mpirun, which then ends the job itself and names the rank.
//   * SyncBatchNorm: Mpi is also the Reducer the model's BatchNorm layers use (sums of column
//     statistics, a few KB per layer).
#pragma once

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "lcmae/backend/cpu.hpp"
#include "lcmae/core/error.hpp"
#include "lcmae/dist/reducer.hpp"

namespace lcmae::dist {

/// MPI_Init / MPI_Finalize for a program's lifetime (nothing when MPI is already initialised, e.g.
/// by the caller). Construct it first in main().
class MpiSession {
public:
    MpiSession(int* argc = nullptr, char*** argv = nullptr) {
        int inited = 0;
        MPI_Initialized(&inited);
        if (!inited) {
            int provided = 0;
            // FUNNELED: only the main thread calls MPI (OpenMP and loader threads never do).
            MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
            owner_ = true;
        }
    }
    ~MpiSession() {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (owner_ && !finalized) MPI_Finalize();
    }
    MpiSession(const MpiSession&) = delete;
    MpiSession& operator=(const MpiSession&) = delete;

private:
    bool owner_ = false;
};

/// True when this process was started by mpirun/mpiexec (OpenMPI, MPICH or a Slurm step), so a
/// program may decide to initialise MPI at all.
inline bool launched_by_mpirun() {
    for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
        if (std::getenv(v)) return true;
    return false;
}

struct MpiOptions {
    /// Seconds any one collective may take before every rank is aborted. The default is long
    /// because rank 0 alone writes checkpoints while the others wait in the next collective.
    double timeout_s = 600;
    MPI_Comm comm = MPI_COMM_WORLD;
};

class Mpi final : public Reducer<backend::Cpu> {
public:
    static constexpr const char* name = "mpi";
    static constexpr bool distributed = true;
    using Options = MpiOptions;

    Mpi() : Mpi(Options{}) {}
    explicit Mpi(Options o) : opt_(o) {
        int inited = 0;
        MPI_Initialized(&inited);
        LCMAE_CHECK(inited, "dist::Mpi needs MPI to be initialised first (construct a dist::MpiSession in main)");
        if (const char* t = std::getenv("LCMAE_DIST_TIMEOUT")) {
            char* end = nullptr;
            const double v = std::strtod(t, &end);
            LCMAE_CHECK(end != t && *end == '\0' && v > 0, "LCMAE_DIST_TIMEOUT must be a positive number of seconds, got '" << t << "'");
            opt_.timeout_s = v;
        }
        MPI_Comm_rank(opt_.comm, &rank_);
        MPI_Comm_size(opt_.comm, &world_);
        // the ranks on this host (threads per rank, and dist::Nccl's GPU per rank)
        MPI_Comm local;
        MPI_Comm_split_type(opt_.comm, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
        MPI_Comm_rank(local, &local_rank_);
        MPI_Comm_size(local, &local_size_);
        MPI_Comm_free(&local);
    }

    int rank() const noexcept { return rank_; }
    int world() const override { return world_; }
    /// This rank's index among the ranks on its host, and their number.
    int local_rank() const noexcept { return local_rank_; }
    int local_size() const noexcept { return local_size_; }
    double timeout_seconds() const noexcept { return opt_.timeout_s; }
    /// Seconds spent in gradient all-reduces so far (the benchmark's "all-reduce per step").
    double allreduce_seconds() const noexcept { return grad_seconds_; }
    /// Seconds spent waiting in any collective (gradients, SyncBatchNorm, losses, broadcasts).
    double collective_seconds() const noexcept { return wait_seconds_; }
    long allreduce_calls() const noexcept { return grad_calls_; }

    /// x = mean over ranks of x (in place): the gradient arena. Host memory only.
    template <class Backend, class T>
    void allreduce_mean(const Backend& ctx, long n, T* x, const char* what) const {
        static_assert(Backend::host_memory, "dist::Mpi reduces host memory (CPU ranks); a device backend needs dist::Nccl");
        static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "dist::Mpi reduces float or double arrays");
        const auto t0 = std::chrono::steady_clock::now();
        ctx.synchronize();
        T* p = x;  // host memory (the static_assert above)
        std::vector<MPI_Request> reqs;
        for (long off = 0; off < n; off += kBucket) {
            reqs.emplace_back();
            MPI_Iallreduce(MPI_IN_PLACE, p + off, int(std::min(kBucket, n - off)), mpi_type<T>(), MPI_SUM, opt_.comm,
                           &reqs.back());
        }
        wait_all(reqs, what);
        if (world_ > 1) scale_inplace(ctx, n, T(1.0 / world_), x);
        grad_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        ++grad_calls_;
    }
    void allreduce_sum_host(double* x, int n, const char* what) const {
        std::vector<MPI_Request> reqs(1);
        MPI_Iallreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, opt_.comm, &reqs[0]);
        wait_all(reqs, what);
    }
    template <class Backend, class T>
    void broadcast(const Backend& ctx, long n, T* x, int root, const char* what) const {
        static_assert(Backend::host_memory, "dist::Mpi broadcasts host memory (CPU ranks); a device backend needs dist::Nccl");
        ctx.synchronize();
        broadcast_host(static_cast<void*>(x), std::size_t(n) * sizeof(T), root, what);
    }
    void broadcast_host(void* x, std::size_t bytes, int root, const char* what) const {
        std::vector<MPI_Request> reqs;
        char* p = static_cast<char*>(x);
        for (std::size_t off = 0; off < bytes; off += std::size_t(kBucket)) {
            reqs.emplace_back();
            MPI_Ibcast(p + off, int(std::min<std::size_t>(std::size_t(kBucket), bytes - off)), MPI_BYTE, root, opt_.comm,
                       &reqs.back());
        }
        wait_all(reqs, what);
    }
    void barrier(const char* what) const {
        std::vector<MPI_Request> reqs(1);
        MPI_Ibarrier(opt_.comm, &reqs[0]);
        wait_all(reqs, what);
    }

    // Reducer (SyncBatchNorm)
    void sum(const backend::Cpu& ctx, long n, double* x, const char* what) const override {
        ctx.synchronize();
        allreduce_sum_host(x, int(n), what);
    }
    template <class Backend>
    const Reducer<Backend>* reducer() const noexcept {
        static_assert(std::is_same_v<Backend, backend::Cpu>, "dist::Mpi synchronises BatchNorm for backend::Cpu only");
        return world_ > 1 ? this : nullptr;
    }

    /// Ends every rank now, with one line on stderr naming this rank (for errors that only this
    /// rank saw: the others would otherwise wait in their next collective).
    [[noreturn]] void abort(const std::string& message, int code = 1) const {
        std::fprintf(stderr, "lcmae: rank %d of %d: %s; aborting all %d ranks\n", rank_, world_, message.c_str(), world_);
        std::fflush(stderr);
        MPI_Abort(opt_.comm, code);
        std::abort();  // not reached
    }

private:
    static constexpr long kBucket = 1L << 28;  // elements (or bytes) per MPI call: an int count
    template <class T>
    static MPI_Datatype mpi_type() {
        return std::is_same_v<T, float> ? MPI_FLOAT : MPI_DOUBLE;
    }

    /// Waits for every request, polling (MPI progresses a transfer only inside MPI calls, so a
    /// large all-reduce needs many polls in a row), with a deadline. For the first 0.5 s it polls
    /// back to back, yielding the core between polls (other ranks on the host keep running); a
    /// wait longer than that is a slow partner (rank 0 writing a checkpoint), so it then sleeps
    /// 1 ms between polls.
    void wait_all(std::vector<MPI_Request>& reqs, const char* what) const {
        const auto t0 = std::chrono::steady_clock::now();
        const auto deadline = t0 + std::chrono::duration<double>(opt_.timeout_s);
        const auto patient = t0 + std::chrono::milliseconds(500);
        long polls = 0;
        bool sleeping = false;
        for (;;) {
            int done = 0;
            MPI_Testall(int(reqs.size()), reqs.data(), &done, MPI_STATUSES_IGNORE);
            if (done) {
                wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                return;
            }
            ++polls;
            if (sleeping)
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            else
                std::this_thread::yield();
            if ((polls & 63) == 0 && !sleeping && std::chrono::steady_clock::now() > patient) sleeping = true;
            if ((polls & 63) == 0 && std::chrono::steady_clock::now() > deadline) {
                char msg[512];
                std::snprintf(msg, sizeof msg,
                              "%s did not complete within %.0f s (LCMAE_DIST_TIMEOUT): another rank died, stopped or "
                              "hangs",
                              what, opt_.timeout_s);
                abort(msg, 3);
            }
        }
    }

    Options opt_;
    int rank_ = 0, world_ = 1, local_rank_ = 0, local_size_ = 1;
    mutable double grad_seconds_ = 0, wait_seconds_ = 0;
    mutable long grad_calls_ = 0;
};

}  // namespace lcmae::dist
