// Data-parallel training over MPI ranks (issue 11), run as `mpirun -np 2 test_dist_mpi`:
//   * SyncBatchNorm's two halves around an all-reduce equal single-process BatchNorm on the
//     concatenated batch (forward: output, statistics, running buffers; backward: dx, dgamma, dbeta);
//   * k training steps with dist::Mpi at batch b per rank equal one process training with batch
//     2b on the same samples (weights, EMA target, BN running buffers), and are bit-equal across
//     the ranks, for LC-MAE (symmetric views, accumulation 2, gradient clipping), a masked target
//     (Table 5c), token-wise Smooth L1 guidance, LC-SimMIM and MAE, in double and float;
//   * a NaN on one rank stops both ranks (the loss is all-reduced before the finiteness check);
//   * a run saved by 2 ranks resumes in 1 process, and the reverse, inside an accumulation cycle.
//
// Tolerances (relative, per tensor: max|a - b| / max|b|): the two runs add the same numbers in a
// different order (the batch's sums are split into two partial sums and an all-reduce; SyncBN
// computes the variance in one pass from sums of squares), so they are not bit-equal; measured
// worst cases are in tests/README.md, and the tolerances sit a small margin above.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "dist_util.hpp"

using namespace lcmae;
using namespace lcmae::models;

namespace {
backend::Cpu ctx(1);
constexpr long kB = 2;                   // samples per rank
constexpr std::int64_t kIpe = 5;         // micro-batches per epoch
constexpr std::int64_t kMicro = 8;       // micro-batches trained (4 optimiser steps at accumulation 2)

const dist::Mpi& comm() {
    static const dist::Mpi c;
    return c;
}

train::TrainConfig config(long batch) {
    train::TrainConfig c;
    c.batch = batch;
    c.accumulation = 2;
    c.epochs = 4;
    c.warmup_epochs = 0.6;
    c.blr = 2e-2;
    c.min_lr = 1e-4;
    c.max_grad_norm = 1.0;
    c.ema_base = 0.9;
    c.seed = 42;
    return c;
}

ModelSpec spec_for(const std::string& kind, long max_batch) {
    ModelSpec s = test::tiny_spec(kind == "MAE" ? GuidanceLoss::None
                                  : kind == "token-wise" ? GuidanceLoss::SmoothL1
                                                         : GuidanceLoss::Cosine,
                                  max_batch);
    if (kind == "LC-SimMIM") {
        s.baseline = Baseline::SimMim;
        s.views = ViewSchedule::Paper;
    }
    if (kind == "masked target") s.target_mask_ratio = 0.5;
    if (kind == "token-wise") s.guidance = GuidanceType::TokenWise;
    return s;
}

// Weights after 4 AdamW steps. Measured worst cases (tests/README.md): double 7.9e-14, float
// 8.8e-6. Float is looser than the gradients' 1e-6 (below) because AdamW divides each gradient
// element by its own running RMS: an element whose gradient is near rounding level gets an
// lr-sized step from noise, so summation-order noise of 1e-7 in a gradient grows to ~1e-5 in
// weights after a few steps (the PyTorch fixtures see the same: tests/reference/README.md).
template <class T>
double tolerance() {
    return std::is_same_v<T, float> ? 2e-5 : 1e-11;
}

/// The gradient of one micro-batch after the all-reduce equals the single-process gradient of the
/// global batch (before any optimiser step amplifies rounding differences).
template <class T>
void check_gradients(const std::string& kind) {
    const int rank = comm().rank(), W = comm().world();
    const long img = 64;
    LcmaeModel<T> local(spec_for(kind, kB), 7), whole(spec_for(kind, kB * W), 7);
    local.set_batch_reducer(comm().template reducer<backend::Cpu>());
    std::vector<T> g1, g2;
    test::global_views<T>(0, kB * W, img, g1, g2);
    const auto v1 = test::rank_rows(g1, kB * W, img, rank, W), v2 = test::rank_rows(g2, kB * W, img, rank, W);
    Rng r1(42, 1), r2(42, 1);
    local.forward_backward(ctx, v1.data(), v2.data(), kB, r1, 1.0, BatchShard{rank, W});
    whole.forward_backward(ctx, g1.data(), g2.data(), kB * W, r2, 1.0);
    auto& g = local.params().grads();
    comm().allreduce_mean(ctx, long(g.size()), g.data(), "test");
    double worst = 0;
    std::string where;
    for (const auto& e : whole.params().entries()) {
        const T* a = local.params().grad(local.params().entry(e.name).slot);
        const T* b = whole.params().grad(e.slot);
        double d = 0, m = 0;
        for (std::size_t i = 0; i < e.slot.count; ++i) {
            d = std::max(d, std::abs(double(a[i]) - double(b[i])));
            m = std::max(m, std::abs(double(b[i])));
        }
        if (m > 0 && d / m > worst) {
            worst = d / m;
            where = e.name;
        }
    }
    MESSAGE(kind << " (" << (sizeof(T) == 8 ? "double" : "float") << "): gradient after all-reduce rel " << worst << " ("
                 << where << ")");
    // measured worst: double 2.9e-15, float 2.5e-6 (sums over the batch in another order: a
    // gradient that is a sum with cancellation keeps float's absolute rounding, not its relative)
    CHECK(worst <= (std::is_same_v<T, double> ? 1e-12 : 5e-6));
}

template <class T>
void check_equivalence(const std::string& kind) {
    const int rank = comm().rank(), W = comm().world();
    const long img = 64;
    // the data-parallel run: b per rank
    LcmaeModel<T> local(spec_for(kind, kB), 7);
    train::Trainer<T, backend::Cpu, dist::Mpi> dp(ctx, local, config(kB), kIpe, comm());
    test::train_micro(dp, ctx, 0, kMicro, kB, rank, W, img, kIpe);
    // the single-process run: 2b on the same samples (every rank computes it, to compare locally)
    LcmaeModel<T> whole(spec_for(kind, kB * W), 7);
    train::Trainer<T> sp(ctx, whole, config(kB * W), kIpe);
    test::train_micro(sp, ctx, 0, kMicro, kB * W, 0, 1, img, kIpe);

    std::string where;
    double key_bias = 0;
    const double dw = test::max_rel_diff(local.params(), whole.params(), &where, &key_bias);
    MESSAGE(kind << " (" << (sizeof(T) == 8 ? "double" : "float") << "): weights + BN buffers rel " << dw << " (" << where
                 << "), qkv key-bias block abs " << key_bias);
    CHECK(dw <= tolerance<T>());
    // the key-bias block (zero exact gradient, see max_rel_diff): AdamW moves it by at most ~lr per
    // step, so the two runs may differ by up to 2 lr_max per optimiser step there, no more
    CHECK(key_bias <= 2 * dp.lr_max() * double(dp.step()));
    if (local.has_target()) {
        double target_key_bias = 0;
        const double dt = test::max_rel_diff(local.target_params(), whole.target_params(), &where, &target_key_bias);
        MESSAGE(kind << ": EMA target rel " << dt << " (" << where << ")");
        CHECK(dt <= tolerance<T>());
        CHECK(target_key_bias <= 2 * dp.lr_max() * double(dp.step()));
        CHECK(test::bit_equal_across_ranks(local.target_params().values().data(),
                                           local.target_params().values().size() * sizeof(T)));
    }
    CHECK(test::bit_equal_across_ranks(local.params().values().data(), local.params().values().size() * sizeof(T)));
    CHECK(test::bit_equal_across_ranks(dp.optimizer().exp_avg_sq().data(), dp.optimizer().exp_avg_sq().size() * sizeof(T)));
    CHECK(dp.step() == sp.step());
}
}  // namespace

TEST_CASE("the MPI tests run on 2 ranks") { REQUIRE(comm().world() == 2); }

TEST_CASE_TEMPLATE("SyncBatchNorm equals BatchNorm on the concatenated batch", T, double, float) {
    const int rank = comm().rank(), W = comm().world();
    const long R = 5, C = 7, N = R * W;  // 5 rows per rank
    std::vector<T> x(N * C), dy(N * C), gamma(C), beta(C);
    Rng r(3, 3);
    for (auto& v : x) v = T(r.uniform(-2, 3));
    for (auto& v : dy) v = T(r.uniform(-1, 1));
    for (auto& v : gamma) v = T(r.uniform(0.5, 1.5));
    for (auto& v : beta) v = T(r.uniform(-0.5, 0.5));
    // single process on all N rows
    std::vector<T> y(N * C), mean(C), rstd(C), rm(C, T(0.2)), rv(C, T(1.1)), dx(N * C), dg(C, T(0)), db(C, T(0));
    ops::batchnorm_forward_train(ctx, N, C, x.data(), gamma.data(), beta.data(), T(1e-5), T(0.1), y.data(), mean.data(),
                                 rstd.data(), rm.data(), rv.data());
    ops::batchnorm_backward(ctx, N, C, x.data(), mean.data(), rstd.data(), gamma.data(), dy.data(), dx.data(), dg.data(),
                            db.data());
    // this rank's rows (contiguous halves here: the statistics do not depend on the split)
    const T* xl = x.data() + rank * R * C;
    const T* dyl = dy.data() + rank * R * C;
    std::vector<double> sums(2 * C + 1);
    std::vector<T> yl(R * C), ml(C), sl(C), rml(C, T(0.2)), rvl(C, T(1.1)), dxl(R * C), dgl(C, T(0)), dbl(C, T(0));
    ops::batchnorm_local_sums(ctx, R, C, xl, sums.data());
    comm().sum(ctx, 2 * C + 1, sums.data(), "test");
    CHECK(sums[2 * C] == double(N));
    ops::batchnorm_forward_global(ctx, R, C, sums.data(), xl, gamma.data(), beta.data(), T(1e-5), T(0.1), yl.data(),
                                  ml.data(), sl.data(), rml.data(), rvl.data());
    ops::batchnorm_backward_local_sums(ctx, R, C, xl, ml.data(), sl.data(), dyl, sums.data(), dgl.data(), dbl.data());
    comm().sum(ctx, 2 * C + 1, sums.data(), "test");
    ops::batchnorm_backward_global(ctx, R, C, sums.data(), xl, ml.data(), sl.data(), gamma.data(), dyl, dxl.data());
    // dgamma / dbeta: this rank's share; their sum over ranks is the whole batch's
    std::vector<double> dgs(dgl.begin(), dgl.end()), dbs(dbl.begin(), dbl.end());
    comm().allreduce_sum_host(dgs.data(), int(C), "test");
    comm().allreduce_sum_host(dbs.data(), int(C), "test");

    const double tol = std::is_same_v<T, double> ? 1e-13 : 2e-6;
    double e = 0;
    const auto rel = [&](double a, double b) { e = std::max(e, std::abs(a - b) / std::max(1.0, std::abs(b))); };
    for (long i = 0; i < R * C; ++i) rel(yl[i], y[rank * R * C + i]);
    for (long c = 0; c < C; ++c) {
        rel(ml[c], mean[c]);
        rel(sl[c], rstd[c]);
        rel(rml[c], rm[c]);
        rel(rvl[c], rv[c]);
        rel(dgs[c], dg[c]);
        rel(dbs[c], db[c]);
    }
    MESSAGE("SyncBN forward + running stats + dgamma/dbeta: max rel " << e);
    CHECK(e <= tol);
    e = 0;
    for (long i = 0; i < R * C; ++i) rel(dxl[i], dx[rank * R * C + i]);
    MESSAGE("SyncBN dx: max rel " << e);
    CHECK(e <= tol);
}

TEST_CASE_TEMPLATE("2 ranks at batch b train as 1 process at batch 2b", T, double, float) {
    for (const char* kind : {"LC-MAE", "masked target", "token-wise", "LC-SimMIM", "MAE"}) {
        CAPTURE(kind);
        check_gradients<T>(kind);
        check_equivalence<T>(kind);
    }
}

// The overlapped gradient mean (dist/grad_ready.hpp): buckets reduced during the backward give the
// same bits as one all-reduce after it (each element is still one two-rank sum), and with buckets
// smaller than the tiny model's arena most of them do start inside the backward.
template <class T>
void check_overlap_is_exact(const std::string& kind) {
    const int rank = comm().rank(), W = comm().world();
    const long img = 64;
    dist::MpiOptions off, small;
    off.overlap = false;
    small.bucket_bytes = 64 * sizeof(T);  // the tiny arena is a few thousand values: dozens of buckets
    const dist::Mpi c_off(off), c_small(small);
    LcmaeModel<T> a(spec_for(kind, kB), 7), b(spec_for(kind, kB), 7);
    train::Trainer<T, backend::Cpu, dist::Mpi> ta(ctx, a, config(kB), kIpe, c_off), tb(ctx, b, config(kB), kIpe, c_small);
    CHECK(ta.gradient_sync() == nullptr);
    REQUIRE(tb.gradient_sync() != nullptr);
    test::train_micro(ta, ctx, 0, kMicro, kB, rank, W, img, kIpe);
    test::train_micro(tb, ctx, 0, kMicro, kB, rank, W, img, kIpe);
    const auto* sync = tb.gradient_sync();
    MESSAGE(kind << ": " << sync->buckets_overlapped() << " of " << sync->buckets_total()
                 << " buckets started inside the backward over " << tb.step() << " optimiser steps");
    CHECK(sync->buckets_total() > 4 * tb.step());
    CHECK(sync->buckets_overlapped() * 2 > sync->buckets_total());
    const auto same = [](const auto& x, const auto& y) {
        return x.size() == y.size() && std::equal(x.data(), x.data() + x.size(), y.data());
    };
    CHECK(same(a.params().values(), b.params().values()));
    CHECK(same(ta.optimizer().exp_avg_sq(), tb.optimizer().exp_avg_sq()));
    if (a.has_target()) CHECK(same(a.target_params().values(), b.target_params().values()));
    CHECK(test::bit_equal_across_ranks(b.params().values().data(), b.params().values().size() * sizeof(T)));
}

TEST_CASE_TEMPLATE("the gradient all-reduce overlapped with the backward gives the same bits", T, double, float) {
    for (const char* kind : {"LC-MAE", "LC-SimMIM", "MAE"}) {
        CAPTURE(kind);
        check_overlap_is_exact<T>(kind);
    }
}

TEST_CASE("LCMAE_DIST_OVERLAP and LCMAE_DIST_BUCKET_MB are read, and bad values are refused") {
    ::setenv("LCMAE_DIST_OVERLAP", "0", 1);
    CHECK_FALSE(dist::Mpi().options().overlap);
    ::setenv("LCMAE_DIST_OVERLAP", "yes", 1);
    CHECK_THROWS_WITH(dist::Mpi(), doctest::Contains("LCMAE_DIST_OVERLAP must be 0 or 1, got 'yes'"));
    ::unsetenv("LCMAE_DIST_OVERLAP");
    ::setenv("LCMAE_DIST_BUCKET_MB", "0.5", 1);
    CHECK(dist::Mpi().options().bucket_bytes == std::size_t(1) << 19);
    ::setenv("LCMAE_DIST_BUCKET_MB", "-3", 1);
    CHECK_THROWS_WITH(dist::Mpi(), doctest::Contains("LCMAE_DIST_BUCKET_MB must be a number of MiB"));
    ::unsetenv("LCMAE_DIST_BUCKET_MB");
    CHECK(dist::Mpi().options().overlap);
}

TEST_CASE("a NaN on one rank stops every rank") {
    const int rank = comm().rank(), W = comm().world();
    LcmaeModel<float> m(spec_for("LC-MAE", kB), 7);
    train::Trainer<float, backend::Cpu, dist::Mpi> tr(ctx, m, config(kB), kIpe, comm());
    std::vector<float> g1, g2;
    test::global_views<float>(0, kB * W, 64, g1, g2);
    auto v1 = test::rank_rows(g1, kB * W, 64, rank, W), v2 = test::rank_rows(g2, kB * W, 64, rank, W);
    if (rank == 1) v1[5] = std::nanf("");
    CHECK_THROWS_AS(tr.micro_batch(ctx, v1.data(), v2.data(), kB), train::NonFiniteLoss);
    CHECK(tr.step() == 0);
}

TEST_CASE("a run moves between 2 ranks and 1 process (resume with another number of ranks)") {
    const int rank = comm().rank(), W = comm().world();
    const long img = 64;
    const std::int64_t k1 = 3, k2 = 5;  // saved inside an accumulation cycle (3 of accumulation 2)
    test::SharedTempDir tmp("resume");
    const auto dir_a = tmp.path / "from-2-ranks", dir_b = tmp.path / "from-1-process";

    // the reference: one process at 2b, uninterrupted (every rank computes it)
    LcmaeModel<double> ref(spec_for("LC-MAE", kB * W), 7);
    train::Trainer<double> rt(ctx, ref, config(kB * W), kIpe);
    test::train_micro(rt, ctx, 0, k1 + k2, kB * W, 0, 1, img, kIpe);

    SUBCASE("2 ranks save, 1 process resumes") {
        {
            LcmaeModel<double> m(spec_for("LC-MAE", kB), 7);
            train::Trainer<double, backend::Cpu, dist::Mpi> tr(ctx, m, config(kB), kIpe, comm());
            test::train_micro(tr, ctx, 0, k1, kB, rank, W, img, kIpe);
            tr.save(ctx, dir_a);
        }
        if (rank == 0) {
            LcmaeModel<double> m(spec_for("LC-MAE", kB * W), 99);  // another seed: load must restore everything
            train::Trainer<double> tr(ctx, m, config(kB * W), kIpe);
            tr.load(ctx, dir_a);
            CHECK(tr.step() == 1);
            CHECK(tr.micro_step() == 1);
            test::train_micro(tr, ctx, k1, k2, kB * W, 0, 1, img, kIpe);
            std::string where;
            const double d = std::max(test::max_rel_diff(m.params(), ref.params(), &where),
                                      test::max_rel_diff(m.target_params(), ref.target_params()));
            MESSAGE("2 ranks -> 1 process: rel " << d << " (" << where << ")");
            CHECK(d <= tolerance<double>());
            CHECK(tr.step() == rt.step());
        }
        MPI_Barrier(MPI_COMM_WORLD);
    }
    SUBCASE("1 process saves, 2 ranks resume") {
        if (rank == 0) {
            LcmaeModel<double> m(spec_for("LC-MAE", kB * W), 7);
            train::Trainer<double> tr(ctx, m, config(kB * W), kIpe);
            test::train_micro(tr, ctx, 0, k1, kB * W, 0, 1, img, kIpe);
            tr.save(ctx, dir_b);
        }
        MPI_Barrier(MPI_COMM_WORLD);
        LcmaeModel<double> m(spec_for("LC-MAE", kB), 99 + rank);  // other seeds: load must restore everything
        train::Trainer<double, backend::Cpu, dist::Mpi> tr(ctx, m, config(kB), kIpe, comm());
        tr.load(ctx, dir_b);
        CHECK(tr.step() == 1);
        CHECK(tr.micro_step() == 1);
        test::train_micro(tr, ctx, k1, k2, kB, rank, W, img, kIpe);
        std::string where;
        const double d = std::max(test::max_rel_diff(m.params(), ref.params(), &where),
                                  test::max_rel_diff(m.target_params(), ref.target_params()));
        MESSAGE("1 process -> 2 ranks: rel " << d << " (" << where << ")");
        CHECK(d <= tolerance<double>());
        CHECK(test::bit_equal_across_ranks(m.params().values().data(), m.params().values().size() * sizeof(double)));
        CHECK(tr.step() == rt.step());
    }
}

TEST_CASE("only rank 0 writes, and a failed save fails on every rank") {
    const int rank = comm().rank();
    test::SharedTempDir tmp("writes");
    LcmaeModel<float> m(spec_for("MAE", kB), 7);
    train::Trainer<float, backend::Cpu, dist::Mpi> tr(ctx, m, config(kB), kIpe, comm());
    // rank 1 points at a directory of its own: it must stay empty (nothing written by rank 1)
    const auto dir = rank == 0 ? tmp.path / "run" : tmp.path / "rank1-must-stay-empty";
    tr.save(ctx, dir);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        CHECK(std::filesystem::exists(tmp.path / "run" / "checkpoint.safetensors"));
        CHECK_FALSE(std::filesystem::exists(tmp.path / "rank1-must-stay-empty"));
    }
    // rank 0 cannot write (a file where the directory should be): both ranks throw its message
    if (rank == 0) std::ofstream(tmp.path / "a-file") << "x";
    MPI_Barrier(MPI_COMM_WORLD);
    CHECK_THROWS_AS(tr.save(ctx, tmp.path / "a-file" / "run"), Error);
}
