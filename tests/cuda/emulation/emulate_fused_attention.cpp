// emulate_fused_attention.cpp - runs the fused attention kernels of fused_attention.cuh on the CPU
// (mock_cuda.hpp: one std::thread per CUDA thread, exact-size shared and global buffers so that
// AddressSanitizer catches any out-of-bounds access) and compares P, out and dqkv with a double
// reference, at the shapes the GPU tests use. Shared memory starts as NaN bytes: a padded element
// that is read without being staged poisons the result. Build and run: run.sh in this folder.
#include "mock_cuda.hpp"
#include "extracted.hpp"

#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <thread>
#include <vector>

namespace cd = lcmae::backend::cuda_detail;

struct Grid {
    unsigned x, y;
};

template <class F>
void launch(Grid g, std::size_t smem_bytes, F kernel) {
    constexpr int threads = cd::kFusedThreads;
    for (unsigned by = 0; by < g.y; ++by)
        for (unsigned bx = 0; bx < g.x; ++bx) {
            auto* sm = static_cast<unsigned char*>(std::aligned_alloc(128, smem_bytes));
            std::memset(sm, 0xff, smem_bytes);  // NaN floats and NaN bf16s
            std::barrier<> block(threads);
            std::vector<std::unique_ptr<std::barrier<>>> warps;
            for (int w = 0; w < threads / 32; ++w) warps.push_back(std::make_unique<std::barrier<>>(32));
            std::vector<float> wbuf(threads);
            std::vector<std::thread> ts;
            for (int t = 0; t < threads; ++t)
                ts.emplace_back([&, t] {
                    mock::t_thread = {unsigned(t), 0, 0};
                    mock::t_block = {bx, by, 0};
                    mock::smem = sm;
                    mock::block_bar = &block;
                    mock::warp_bar = warps[t / 32].get();
                    mock::warp_buf = wbuf.data() + 32 * (t / 32);
                    kernel();
                });
            for (auto& t : ts) t.join();
            std::free(sm);
        }
}

/// Exact-size heap copy (ASan sees one element past the end).
struct Buf {
    std::unique_ptr<float[]> p;
    std::size_t n;
    explicit Buf(std::size_t count, float fill = NAN) : p(new float[count]), n(count) {
        for (std::size_t i = 0; i < n; ++i) p[i] = fill;
    }
    Buf(const std::vector<float>& v) : Buf(v.size()) { std::copy(v.begin(), v.end(), p.get()); }
    std::vector<float> vec() const { return std::vector<float>(p.get(), p.get() + n); }
};

double rel(const std::vector<float>& a, const std::vector<double>& r) {
    double num = 0, den = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (!std::isfinite(a[i])) return INFINITY;
        num += (a[i] - r[i]) * (a[i] - r[i]);
        den += r[i] * r[i];
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

template <class E, int HDP>
bool run_case(long B, long N, long H, long hd, double tf, double tb, const char* prec) {
    using G = cd::FusedGeom<E, HDP>;
    const long D = H * hd, ld = 3 * D;
    std::mt19937 rng(unsigned(B * 1000003 + N * 1009 + H * 31 + hd));
    std::uniform_real_distribution<float> u(-2, 2), u1(-1, 1);
    std::vector<float> qkv(B * N * ld), dout(B * N * D);
    for (auto& x : qkv) x = u(rng);
    for (auto& x : dout) x = u1(rng);
    // double reference (the CPU op's formulas)
    const double scale = 1.0 / std::sqrt(double(hd));
    std::vector<double> rP(B * H * N * N), rout(B * N * D), rdq(B * N * ld);
    std::vector<float> fP(rP.size());
    for (long b = 0; b < B; ++b)
        for (long h = 0; h < H; ++h) {
            const float* q = qkv.data() + b * N * ld + h * hd;
            double* P = rP.data() + (b * H + h) * N * N;
            for (long i = 0; i < N; ++i) {
                double mx = -INFINITY;
                for (long j = 0; j < N; ++j) {
                    double s = 0;
                    for (long c = 0; c < hd; ++c) s += double(q[i * ld + c]) * q[j * ld + D + c];
                    P[i * N + j] = s * scale;
                    mx = std::max(mx, s * scale);
                }
                double sum = 0;
                for (long j = 0; j < N; ++j) sum += (P[i * N + j] = std::exp(P[i * N + j] - mx));
                for (long j = 0; j < N; ++j) P[i * N + j] /= sum;
                for (long c = 0; c < hd; ++c) {
                    double o = 0;
                    for (long j = 0; j < N; ++j) o += P[i * N + j] * q[j * ld + 2 * D + c];
                    rout[(b * N + i) * D + h * hd + c] = o;
                }
            }
            for (long i = 0; i < N * N; ++i) fP[(b * H + h) * N * N + i] = float(P[i]);
            // backward from the float P (as the GPU test feeds the CPU's P)
            const float* fp = fP.data() + (b * H + h) * N * N;
            const float* dO = dout.data() + b * N * D + h * hd;
            std::vector<double> dS(N * N);
            for (long i = 0; i < N; ++i) {
                double dot = 0;
                for (long j = 0; j < N; ++j) {
                    double dp = 0;
                    for (long c = 0; c < hd; ++c) dp += double(dO[i * D + c]) * q[j * ld + 2 * D + c];
                    dS[i * N + j] = dp;
                    dot += dp * fp[i * N + j];
                }
                for (long j = 0; j < N; ++j) dS[i * N + j] = fp[i * N + j] * (dS[i * N + j] - dot) * scale;
            }
            double* dq = rdq.data() + b * N * ld + h * hd;
            for (long i = 0; i < N; ++i)
                for (long c = 0; c < hd; ++c) {
                    double gq = 0, gk = 0, gv = 0;
                    for (long j = 0; j < N; ++j) {
                        gq += dS[i * N + j] * q[j * ld + D + c];
                        gk += dS[j * N + i] * q[j * ld + c];
                        gv += double(fp[j * N + i]) * dO[j * D + c];
                    }
                    dq[i * ld + c] = gq;
                    dq[i * ld + D + c] = gk;
                    dq[i * ld + 2 * D + c] = gv;
                }
        }

    Buf dqkv_in(qkv), P(rP.size()), out(rout.size());
    const Grid grid{unsigned(B * H), unsigned((N + cd::kFusedTile - 1) / cd::kFusedTile)};
    const float fscale = 1.0f / std::sqrt(float(hd));
    launch(grid, G::row_kernel_bytes, [&] {
        cd::fused_attention_forward_kernel<E, HDP>(int(N), int(H), int(hd), fscale, dqkv_in.p.get(), P.p.get(),
                                                   out.p.get());
    });
    Buf Pin(fP), dO(dout), dqkv(rdq.size()), scratch(rP.size());
    launch(grid, G::row_kernel_bytes, [&] {
        cd::fused_attention_backward_dq_kernel<E, HDP>(int(N), int(H), int(hd), fscale, dqkv_in.p.get(), Pin.p.get(),
                                                       dO.p.get(), dqkv.p.get(), scratch.p.get());
    });
    launch(grid, G::key_kernel_bytes, [&] {
        cd::fused_attention_backward_dkv_kernel<E, HDP>(int(N), int(H), int(hd), dqkv_in.p.get(), Pin.p.get(),
                                                        dO.p.get(), scratch.p.get(), dqkv.p.get());
    });
    const double eP = rel(P.vec(), rP), eo = rel(out.vec(), rout), eg = rel(dqkv.vec(), rdq);
    const bool ok = eP <= tf && eo <= tf && eg <= tb;
    std::printf("%s %-4s B %ld N %3ld H %ld hd %3ld (HDP %3d): P %.2e out %.2e dqkv %.2e  (tol %.0e / %.0e)\n",
                ok ? "ok  " : "FAIL", prec, B, N, H, hd, HDP, eP, eo, eg, tf, tb);
    return ok;
}

template <class E>
bool run_all(double tf, double tb, const char* prec) {
    bool ok = true;
    ok &= run_case<E, 64>(2, 197, 2, 64, tf, tb, prec);  // ViT-B (N not a multiple of 64)
    ok &= run_case<E, 64>(3, 50, 3, 64, tf, tb, prec);   // masked tokens
    ok &= run_case<E, 32>(2, 50, 3, 32, tf, tb, prec);   // decoder hd 32
    ok &= run_case<E, 32>(3, 17, 2, 8, tf, tb, prec);    // hd padded 8 -> 32
    ok &= run_case<E, 32>(2, 1, 3, 32, tf, tb, prec);    // N 1
    ok &= run_case<E, 64>(1, 64, 1, 48, tf, tb, prec);   // exactly one tile, hd 48 -> 64
    ok &= run_case<E, 128>(1, 300, 1, 128, tf, tb, prec);  // N > 256 (5 tiles), hd 128
    ok &= run_case<E, 128>(1, 65, 2, 100, tf, tb, prec);   // hd 100 -> 128, one row in the last tile
    ok &= run_case<E, 32>(4, 5, 2, 4, tf, tb, prec);       // the tiny test models: hd 4, N 1 + 4
    ok &= run_case<E, 32>(2, 17, 4, 16, tf, tb, prec);     // the RGB test model's encoder: hd 16
    return ok;
}

int main() {
    bool ok = run_all<float>(5e-3, 2e-2, "tf32");
    ok &= run_all<__nv_bfloat16>(2e-2, 5e-2, "bf16");
    std::printf(ok ? "all ok\n" : "FAILURES\n");
    return ok ? 0 : 1;
}
