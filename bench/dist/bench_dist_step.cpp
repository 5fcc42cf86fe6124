// bench/dist/bench_dist_step.cpp - the data-parallel LC-MAE step on CPU ranks (issue 11): the Tiny
// 32 px preset of bench_train_step.cpp (D 192, 12 blocks, decoder 128 x 4, heads 4096, symmetric
// views) at a GLOBAL batch of --batch (default 64), split over the ranks. Full trainer steps
// (forward, backward, SyncBatchNorm, gradient all-reduce, AdamW, EMA). Prints, on rank 0, the
// global images/s and the seconds per step spent in the gradient all-reduce and in all collectives
// (gradient, SyncBN sums, losses), averaged over ranks; these include waiting for the slower rank.
// Then the gradient all-reduce alone (ranks aligned by a barrier first), the transfer's own cost.
// With the overlapped all-reduce (the default; LCMAE_DIST_OVERLAP=0 turns it off, and
// LCMAE_DIST_BUCKET_MB sets its buckets) it also prints how many buckets started inside the
// backward and the gradient all-reduce's seconds inside the backward (issuing and polling) and
// after it (the exposed part).
//
//   mpirun -np 2 --oversubscribe build/bench/dist/bench_dist_step --threads 1   # 2 ranks x 1 thread
//   build/bench/dist/bench_dist_step --threads 2                                 # 1 rank x 2 threads
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "lcmae/dist/mpi.hpp"
#include "lcmae/models/lcmae_model.hpp"
#include "lcmae/train/trainer.hpp"
#include "lcmae/vit/config.hpp"

using namespace lcmae;

namespace {
models::ModelSpec tiny32(long max_batch) {
    models::ModelSpec s;
    s.encoder = vit::Tiny32::dims();
    s.decoder = {128, 4, 4};
    s.head_hidden = 4096;
    s.loss = models::GuidanceLoss::Cosine;
    s.views = models::ViewSchedule::Symmetric;
    s.max_batch = max_batch;
    return s;
}

template <class Comm>
void run(const Comm& comm, const dist::Mpi& mpi, int threads, long global_batch, int warmup, int steps) {
    const int W = comm.world(), rank = comm.rank();
    const long b = global_batch / W;
    backend::Cpu ctx(threads);
    models::LcmaeModel<float> model(tiny32(b), 0);
    train::TrainConfig tc;
    tc.batch = b;
    tc.epochs = 10;
    tc.warmup_epochs = 1;
    train::Trainer<float, backend::Cpu, Comm> tr(ctx, model, tc, 1000, comm);
    const long img = 3 * 32 * 32;
    std::vector<float> v1(std::size_t(b * img)), v2(std::size_t(b * img));
    Rng r(1, std::uint64_t(rank));
    for (auto& v : v1) v = float(r.normal());
    for (auto& v : v2) v = float(r.normal());
    for (int i = 0; i < warmup; ++i) tr.micro_batch(ctx, v1.data(), v2.data(), b);
    mpi.barrier("bench start");
    const auto* sync = dynamic_cast<const dist::MpiGradientSync<float>*>(tr.gradient_sync());
    const double ar0 = mpi.allreduce_seconds(), co0 = mpi.collective_seconds();
    const double in0 = sync ? sync->seconds_in_backward() : 0, after0 = sync ? sync->seconds_after_backward() : 0;
    const long ov0 = sync ? sync->buckets_overlapped() : 0, tot0 = sync ? sync->buckets_total() : 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; ++i) tr.micro_batch(ctx, v1.data(), v2.data(), b);
    mpi.barrier("bench end");
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double t[4] = {mpi.allreduce_seconds() - ar0, mpi.collective_seconds() - co0,
                   sync ? sync->seconds_in_backward() - in0 : 0, sync ? sync->seconds_after_backward() - after0 : 0};
    mpi.allreduce_sum_host(t, 4, "bench timings");
    const long overlapped = sync ? sync->buckets_overlapped() - ov0 : 0, buckets = sync ? sync->buckets_total() - tot0 : 0;
    // the all-reduce alone: the same arena, ranks aligned by a barrier before each call, so the
    // time is the transfer and the sum, without the wait for a slower rank that the step includes
    double alone = 0;
    if (W > 1) {
        auto& g = model.params().grads();
        for (int i = 0; i < 5; ++i) {
            mpi.barrier("bench align");
            const auto a0 = std::chrono::steady_clock::now();
            mpi.allreduce_mean(ctx, long(g.size()), g.data(), "bench all-reduce");
            alone += std::chrono::duration<double>(std::chrono::steady_clock::now() - a0).count();
        }
        double v[1] = {alone / 5};
        mpi.allreduce_sum_host(v, 1, "bench timings");
        alone = v[0] / W;
    }
    if (rank == 0) {
        const double grad_mb = double(model.params().grads().size()) * sizeof(float) / 1e6;
        std::printf("{\"ranks\": %d, \"threads_per_rank\": %d, \"global_batch\": %ld, \"steps\": %d, \"s_per_step\": %.4f, "
                    "\"images_per_s\": %.1f, \"grad_allreduce_s_per_step\": %.5f, \"all_collectives_s_per_step\": %.5f, "
                    "\"gradient_MB\": %.1f, \"allreduce_alone_s\": %.5f, \"overlap\": %d, \"bucket_MB\": %.2f, "
                    "\"buckets_per_step\": %.1f, \"buckets_started_in_backward_per_step\": %.1f, "
                    "\"grad_s_in_backward_per_step\": %.5f, \"grad_s_after_backward_per_step\": %.5f}\n",
                    W, threads, global_batch, steps, secs / steps, double(global_batch) * steps / secs,
                    t[0] / W / steps, t[1] / W / steps, grad_mb, alone, sync ? 1 : 0,
                    double(mpi.bucket_bytes()) / double(1 << 20), double(buckets) / steps, double(overlapped) / steps,
                    t[2] / W / steps, t[3] / W / steps);
    }
}
}  // namespace

int main(int argc, char** argv) {
    dist::MpiSession session(&argc, &argv);
    const dist::Mpi mpi;
    int threads = 1, warmup = 2, steps = 10;
    long batch = 64;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i];
        if (k == "--threads") threads = std::atoi(argv[i + 1]);
        else if (k == "--batch") batch = std::atol(argv[i + 1]);
        else if (k == "--warmup") warmup = std::atoi(argv[i + 1]);
        else if (k == "--steps") steps = std::atoi(argv[i + 1]);
        else {
            std::fprintf(stderr, "usage: bench_dist_step [--threads T] [--batch GLOBAL] [--warmup N] [--steps N]\n");
            return 2;
        }
    }
    if (batch % mpi.world() != 0) {
        std::fprintf(stderr, "--batch %ld does not split over %d ranks\n", batch, mpi.world());
        return 2;
    }
    if (mpi.world() == 1) run(dist::Single{}, mpi, threads, batch, warmup, steps);
    else run(mpi, mpi, threads, batch, warmup, steps);
    return 0;
}
