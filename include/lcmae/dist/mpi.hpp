// lcmae/dist/mpi.hpp - dist::Mpi: data parallelism over CPU ranks (mpirun -np N). Needs <mpi.h>
// (CMake: find_package(MPI COMPONENTS CXX), target lcmae::mpi); a build without MPI simply never
// includes this header and keeps dist::Single.
//
// What it does, and why:
//   * The gradient is ONE buffer (the parameter arena's gradient), so its average over ranks is
//     MPI_Iallreduce(MPI_IN_PLACE, SUM) over the arena, then a scale by 1/N.
//   * Overlap (MpiGradientSync, below): during the last micro-batch's backward the model reports
//     which gradients are final (dist/grad_ready.hpp); buckets of Options::bucket_bytes are cut
//     from the top of the arena down and their all-reduces start at once, and every report also
//     polls the outstanding ones (MPI moves data only inside MPI calls, and only the main thread
//     calls MPI: MPI_THREAD_FUNNELED). On CPU ranks this hides the waiting for the partner and
//     the latency; the copying and adding still take this rank's core (bench/README.md measures
//     it). LCMAE_DIST_OVERLAP=0 reduces after the backward instead; LCMAE_DIST_BUCKET_MB sets the
//     bucket size. allreduce_mean (the whole arena at once) is what saves and the tests' references use.
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
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "lcmae/backend/cpu.hpp"
#include "lcmae/core/error.hpp"
#include "lcmae/dist/grad_ready.hpp"
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
    /// Overlap the gradient all-reduce with the backward pass (LCMAE_DIST_OVERLAP=0|1), in buckets
    /// of this many bytes (LCMAE_DIST_BUCKET_MB). Small buckets start earlier and give MPI more
    /// chances to progress; each costs one collective's latency.
    bool overlap = true;
    std::size_t bucket_bytes = 0;  // 0: the communicator's default (dist::Mpi 4 MiB, dist::Nccl 25 MiB)
};

template <class T>
class MpiGradientSync;

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
        if (const char* o = std::getenv("LCMAE_DIST_OVERLAP")) {
            const std::string v = o;
            LCMAE_CHECK(v == "0" || v == "1", "LCMAE_DIST_OVERLAP must be 0 or 1, got '" << v << "'");
            opt_.overlap = v == "1";
        }
        if (const char* b = std::getenv("LCMAE_DIST_BUCKET_MB")) {
            char* end = nullptr;
            const double v = std::strtod(b, &end);
            LCMAE_CHECK(end != b && *end == '\0' && v >= 0.001 && v <= 1024,
                        "LCMAE_DIST_BUCKET_MB must be a number of MiB in [0.001, 1024], got '" << b << "'");
            opt_.bucket_bytes = std::size_t(v * double(1 << 20));
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
    const Options& options() const noexcept { return opt_; }
    /// Bytes per bucket of the overlapped gradient mean.
    std::size_t bucket_bytes() const noexcept { return opt_.bucket_bytes > 0 ? opt_.bucket_bytes : std::size_t(4) << 20; }

    /// The overlapped gradient mean (dist/grad_ready.hpp); null with one rank or overlap off.
    template <class Backend, class T>
    std::unique_ptr<GradientSync<Backend, T>> make_gradient_sync() const {
        static_assert(std::is_same_v<Backend, backend::Cpu>, "dist::Mpi reduces host memory (CPU ranks); a device backend needs dist::Nccl");
        if (world_ == 1 || !opt_.overlap) return nullptr;
        return std::make_unique<MpiGradientSync<T>>(*this);
    }

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
    template <class T>
    friend class MpiGradientSync;
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

/// dist::Mpi's overlapped gradient mean: buckets are cut from the top of the arena down as the
/// backward reports final gradients, each an MPI_Iallreduce started at once; every report polls
/// the outstanding requests (MPI_Testall) so the transfers progress between the layers' backward
/// passes; finish() sends what is left, waits (under the Mpi's deadline) and scales by 1/N.
/// Each element is summed by exactly one all-reduce, as in allreduce_mean, so the result has the
/// same bits (two ranks: one commutative add per element).
template <class T>
class MpiGradientSync final : public GradientSync<backend::Cpu, T> {
public:
    explicit MpiGradientSync(const Mpi& mpi) : mpi_(&mpi) {}

    void begin(const backend::Cpu&, long n, T* grads) override {
        LCMAE_CHECK(n >= 0 && grads != nullptr, "MpiGradientSync::begin needs a gradient arena, got " << n << " values");
        cut_.begin(std::size_t(n), std::max<std::size_t>(1, mpi_->bucket_bytes() / sizeof(T)));
        x_ = grads;
        reqs_.clear();
        seconds_ = 0;
    }
    void ready_from(const backend::Cpu&, std::size_t from) override {
        const auto t0 = std::chrono::steady_clock::now();
        cut_.report(from, [&](std::size_t lo, std::size_t hi) { issue(lo, hi); });
        if (!reqs_.empty()) {  // progress: MPI moves data only inside MPI calls
            int done = 0;
            MPI_Testall(int(reqs_.size()), reqs_.data(), &done, MPI_STATUSES_IGNORE);
        }
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        seconds_ += dt;
        in_backward_s_ += dt;
    }
    void finish(const backend::Cpu& ctx, const char* what) override {
        const auto t0 = std::chrono::steady_clock::now();
        cut_.finish(std::size_t(Mpi::kBucket), [&](std::size_t lo, std::size_t hi) { issue(lo, hi); });
        mpi_->wait_all(reqs_, what);
        if (mpi_->world_ > 1) scale_inplace(ctx, long(cut_.size()), T(1.0 / mpi_->world_), x_);
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        seconds_ += dt;
        after_backward_s_ += dt;
        mpi_->grad_seconds_ += seconds_;  // the time this rank spent on the gradient mean, in or after the backward
        ++mpi_->grad_calls_;
    }
    long buckets_overlapped() const override { return cut_.overlapped(); }
    long buckets_total() const override { return cut_.total(); }
    /// Seconds spent so far issuing and polling inside the backward, and in finish() after it (the
    /// exposed part of the all-reduce).
    double seconds_in_backward() const noexcept { return in_backward_s_; }
    double seconds_after_backward() const noexcept { return after_backward_s_; }

private:
    void issue(std::size_t lo, std::size_t hi) {
        reqs_.emplace_back();
        MPI_Iallreduce(MPI_IN_PLACE, x_ + lo, int(hi - lo), Mpi::mpi_type<T>(), MPI_SUM, mpi_->opt_.comm, &reqs_.back());
    }

    const Mpi* mpi_;
    BucketCutter cut_;
    T* x_ = nullptr;
    std::vector<MPI_Request> reqs_;
    double seconds_ = 0, in_backward_s_ = 0, after_backward_s_ = 0;
};

}  // namespace lcmae::dist
