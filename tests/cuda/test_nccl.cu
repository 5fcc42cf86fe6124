// dist::Nccl on one GPU, one rank (issue 11; scripts/gpu-check.sh runs it, CI only compiles it):
// the NCCL unique id travels by MPI, the gradient all-reduce (ncclAvg) and the broadcast run on the
// compute stream and leave the data as one rank must (mean over one rank = itself), SyncBatchNorm's
// sum goes through NCCL, and the four SyncBatchNorm CUDA ops give BatchNorm's train-mode forward
// and backward as a plain double reference computes them, and the overlapped bucketed gradient mean
// (NcclGradientSync on a second stream, events from the compute stream) trains a GPU model to the
// same bits as the whole-arena all-reduce. Skips without a CUDA device.
// Run: test_nccl (an MPI singleton) or mpirun -np 1 test_nccl.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "lcmae/backend/cuda.cuh"
#include "lcmae/core/rng.hpp"
#include "lcmae/dist/nccl.cuh"
#include "lcmae/models/lcmae_model.hpp"
#include "lcmae/train/trainer.hpp"

using namespace lcmae;

namespace {
bool have_gpu() {
    if (backend::Cuda::available()) return true;
    MESSAGE("skipped: no CUDA device");
    return false;
}
}  // namespace

TEST_CASE("dist::Nccl: all-reduce and broadcast on one GPU, one rank") {
    if (!have_gpu()) return;
    const dist::Mpi mpi;
    REQUIRE(mpi.world() == 1);
    backend::Cuda gpu(dist::device_for_local_rank(mpi.local_rank()));
    LCMAE_CUDA_CHECK(cudaSetDevice(gpu.device()));
    const dist::Nccl nccl(mpi);
    const long n = 1000003;  // odd: no size NCCL would special-case
    std::vector<float> host(n), back(n, -1.f);
    for (long i = 0; i < n; ++i) host[i] = float(i % 977) * 0.25f - 7.f;
    backend::Cuda::buffer<float> d;
    d.resize(std::size_t(n));
    ops::upload(gpu, n, host.data(), d.data());
    nccl.allreduce_mean(gpu, n, d.data(), "test all-reduce");
    ops::download(gpu, n, d.data(), back.data());
    CHECK(back == host);  // the mean over one rank is bit-identical
    nccl.broadcast(gpu, n, d.data(), 0, "test broadcast");
    ops::download(gpu, n, d.data(), back.data());
    CHECK(back == host);
    std::vector<double> s{1.5, -2.25, 3.0}, sb(3);
    backend::Cuda::buffer<double> ds;
    ds.resize(3);
    ops::upload(gpu, 3, s.data(), ds.data());
    nccl.sum(gpu, 3, ds.data(), "test sum");
    ops::download(gpu, 3, ds.data(), sb.data());
    CHECK(sb == s);
}

TEST_CASE("SyncBatchNorm's CUDA ops equal BatchNorm (train mode) in double arithmetic") {
    if (!have_gpu()) return;
    const dist::Mpi mpi;
    backend::Cuda gpu(dist::device_for_local_rank(mpi.local_rank()));
    LCMAE_CUDA_CHECK(cudaSetDevice(gpu.device()));
    const dist::Nccl nccl(mpi);
    const long R = 37, C = 300;
    std::vector<double> x(R * C), dy(R * C), g(C), b(C);
    Rng r(5, 5);
    for (auto& v : x) v = r.uniform(-2, 3);
    for (auto& v : dy) v = r.uniform(-1, 1);
    for (auto& v : g) v = r.uniform(0.5, 1.5);
    for (auto& v : b) v = r.uniform(-0.5, 0.5);
    // reference: two-pass statistics, PyTorch's BatchNorm1d formulas
    std::vector<double> ym(R * C), mean(C), rstd(C), rm(C, 0.2), rv(C, 1.1), dx(R * C), dg(C), db(C);
    const double eps = 1e-5, mom = 0.1;
    for (long c = 0; c < C; ++c) {
        double m = 0, v = 0;
        for (long i = 0; i < R; ++i) m += x[i * C + c];
        m /= R;
        for (long i = 0; i < R; ++i) v += (x[i * C + c] - m) * (x[i * C + c] - m);
        mean[c] = m;
        rstd[c] = 1 / std::sqrt(v / R + eps);
        rm[c] = (1 - mom) * rm[c] + mom * m;
        rv[c] = (1 - mom) * rv[c] + mom * v / (R - 1);
        double sd = 0, sdx = 0;
        for (long i = 0; i < R; ++i) {
            const double xh = (x[i * C + c] - m) * rstd[c];
            ym[i * C + c] = xh * g[c] + b[c];
            sd += dy[i * C + c];
            sdx += dy[i * C + c] * xh;
        }
        dg[c] = sdx;
        db[c] = sd;
        for (long i = 0; i < R; ++i) {
            const double xh = (x[i * C + c] - m) * rstd[c];
            dx[i * C + c] = g[c] * rstd[c] * (dy[i * C + c] - sd / R - xh * sdx / R);
        }
    }
    using Buf = backend::Cuda::buffer<double>;
    Buf dx_d, dy_d, g_d, b_d, y_d, mean_d, rstd_d, rm_d, rv_d, dxo_d, dg_d, db_d, sums;
    for (Buf* p : {&dx_d, &dy_d, &y_d, &dxo_d}) p->resize(std::size_t(R * C));
    for (Buf* p : {&g_d, &b_d, &mean_d, &rstd_d, &rm_d, &rv_d, &dg_d, &db_d}) p->resize(std::size_t(C));
    sums.resize(std::size_t(2 * C + 1));
    ops::upload(gpu, R * C, x.data(), dx_d.data());
    ops::upload(gpu, R * C, dy.data(), dy_d.data());
    ops::upload(gpu, C, g.data(), g_d.data());
    ops::upload(gpu, C, b.data(), b_d.data());
    const std::vector<double> rm0(C, 0.2), rv0(C, 1.1);
    ops::upload(gpu, C, rm0.data(), rm_d.data());
    ops::upload(gpu, C, rv0.data(), rv_d.data());
    ops::batchnorm_local_sums(gpu, R, C, (const double*)dx_d.data(), sums.data());
    nccl.sum(gpu, 2 * C + 1, sums.data(), "test");
    ops::batchnorm_forward_global(gpu, R, C, (const double*)sums.data(), (const double*)dx_d.data(),
                                  (const double*)g_d.data(), (const double*)b_d.data(), eps, mom, y_d.data(),
                                  mean_d.data(), rstd_d.data(), rm_d.data(), rv_d.data());
    ops::batchnorm_backward_local_sums(gpu, R, C, (const double*)dx_d.data(), (const double*)mean_d.data(),
                                       (const double*)rstd_d.data(), (const double*)dy_d.data(), sums.data(),
                                       dg_d.data(), db_d.data());
    nccl.sum(gpu, 2 * C + 1, sums.data(), "test");
    ops::batchnorm_backward_global(gpu, R, C, (const double*)sums.data(), (const double*)dx_d.data(),
                                   (const double*)mean_d.data(), (const double*)rstd_d.data(), (const double*)g_d.data(),
                                   (const double*)dy_d.data(), dxo_d.data());
    std::vector<double> y(R * C), m2(C), s2(C), rm2(C), rv2(C), dx2(R * C), dg2(C), db2(C);
    ops::download(gpu, R * C, (const double*)y_d.data(), y.data());
    ops::download(gpu, C, (const double*)mean_d.data(), m2.data());
    ops::download(gpu, C, (const double*)rstd_d.data(), s2.data());
    ops::download(gpu, C, (const double*)rm_d.data(), rm2.data());
    ops::download(gpu, C, (const double*)rv_d.data(), rv2.data());
    ops::download(gpu, R * C, (const double*)dxo_d.data(), dx2.data());
    ops::download(gpu, C, (const double*)dg_d.data(), dg2.data());
    ops::download(gpu, C, (const double*)db_d.data(), db2.data());
    double e = 0;
    const auto rel = [&](const std::vector<double>& a, const std::vector<double>& w) {
        for (std::size_t i = 0; i < a.size(); ++i) e = std::max(e, std::abs(a[i] - w[i]) / std::max(1.0, std::abs(w[i])));
    };
    rel(y, ym); rel(m2, mean); rel(s2, rstd); rel(rm2, rm); rel(rv2, rv); rel(dx2, dx); rel(dg2, dg); rel(db2, db);
    MESSAGE("SyncBatchNorm CUDA ops vs the double reference: max rel " << e);
    CHECK(e <= 1e-12);  // one-pass variance (sums of squares) vs two-pass: a few ulps on these data
}

TEST_CASE("dist::Nccl: the overlapped gradient mean trains to the same bits as the whole-arena all-reduce") {
    if (!have_gpu()) return;
    dist::MpiOptions off;
    off.overlap = false;
    const dist::Mpi mpi, mpi_off(off);
    backend::Cuda gpu(dist::device_for_local_rank(mpi.local_rank()));
    LCMAE_CUDA_CHECK(cudaSetDevice(gpu.device()));
    const dist::Nccl overlapped(mpi, 1024), whole(mpi_off);  // 1 KiB buckets: many per backward
    models::ModelSpec spec;
    spec.encoder = vit::VitDims{32, 3, 2, 4, 16, 3, 4};
    spec.decoder = models::DecoderDims{16, 1, 2};
    spec.head_hidden = 48;
    spec.loss = models::GuidanceLoss::Cosine;
    spec.max_batch = 4;
    train::TrainConfig cfg;
    cfg.batch = 4;
    cfg.accumulation = 2;
    cfg.epochs = 2;
    cfg.max_grad_norm = 1.0;
    models::LcmaeModel<float, backend::Cuda> a(gpu, spec, 3), b(gpu, spec, 3);
    train::Trainer<float, backend::Cuda, dist::Nccl> ta(gpu, a, cfg, 4, overlapped), tb(gpu, b, cfg, 4, whole);
    REQUIRE(ta.gradient_sync() != nullptr);
    CHECK(tb.gradient_sync() == nullptr);
    std::vector<float> v1(4 * 3 * 16 * 16), v2(v1.size());
    for (int m = 0; m < 6; ++m) {
        Rng r(9, std::uint64_t(m));
        for (auto& x : v1) x = float(r.uniform(-1, 1));
        for (auto& x : v2) x = float(r.uniform(-1, 1));
        ta.micro_batch(gpu, v1.data(), v2.data(), 4);
        tb.micro_batch(gpu, v1.data(), v2.data(), 4);
    }
    gpu.check_errors();
    const auto* sync = ta.gradient_sync();
    MESSAGE(sync->buckets_overlapped() << " of " << sync->buckets_total() << " buckets started inside the backward");
    CHECK(sync->buckets_overlapped() * 2 > sync->buckets_total());
    const auto host = [&](const auto& buf) {
        std::vector<float> h(buf.size());
        ops::download(gpu, long(buf.size()), buf.data(), h.data());
        return h;
    };
    CHECK(host(a.params().values()) == host(b.params().values()));
    CHECK(host(a.target_params().values()) == host(b.target_params().values()));
}
