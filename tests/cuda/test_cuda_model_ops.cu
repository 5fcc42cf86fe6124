// CUDA backend, second wave: parity with the CPU backend of every op the models, losses and
// optimisers added to the catalogue (memory rows, scale_add_broadcast, col_sum_add, patches, token
// ops, losses, optimiser ops), plus their error paths. Without a device every case prints
// "skipped: no CUDA device" and passes.
//
// Method (as test_cuda_ops.cu): fresh Philox inputs per tensor; outputs the op writes are poisoned
// with NaN first (outputs it accumulates into, or only partly writes, start from the same random
// values on both sides and are compared whole, so untouched elements must stay untouched); the
// reference is the CPU op on backend::Cpu in this same TU; error = ||gpu - cpu|| / ||cpu|| over the
// whole output, printed for every check with the number of differing elements.
//
// Tolerances (float / double):
//   exact (bitwise): copy_rows, add_rows, scale_rows, patchify_conv/target, unpatchify_target, assemble_tokens,
//     split_token_grads (dcls walks b in the CPU's order), mask_token_mix with 0/1 weights and its
//     backward's dx, keep_to_slots, decoder_assemble, decoder_assemble_backward's demb, pool_tokens,
//     unpool_tokens_add (sums in the CPU's order)
//   expected bit-identical but checked with a tolerance (the printed count of differing elements
//     says whether they are): grad_clip_scale and ema_update 1e-7 / 1e-16, adamw_update (3 steps,
//     same sum of squares on both sides) 1e-6 / 1e-15 - the GPU uses the CPU's operations without
//     FMA contraction, and this TU's CPU code is built without -march=native (no FMA either)
//   1e-6 / 1e-15: scale_add_broadcast, mask_token_mix with fractional weights (nvcc may contract
//     a*b + c*d into an FMA: one rounding less)
//   2e-6 / 1e-12: col_sum_add, mask_token_mix_backward's and decoder_assemble_backward's
//     dmask_token (float sums in another, fixed, order)
//   losses (values in double on both sides, sums in another order): 1e-12 / 1e-12; gradients:
//     norm_pix_mse d_pred 1e-6 / 1e-12 (a double rounded to float: an ulp where the double differs
//     in its last bits), simmim_l1 d_pred exact, guidance dq 1e-6 / 1e-12
//   grad_sum_squares: 1e-12 (double); lars_update 1e-6 / 1e-12 (norms in double in another order
//     give a trust ratio equal to double rounding, then float updates)
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "cuda_test_util.hpp"
#include "lcmae/backend/cpu/ops_cpu.hpp"
#include "lcmae/backend/cpu/optim.hpp"
#include "lcmae/backend/cuda.cuh"

using namespace lcmae::test::cuda;
using lcmae::backend::Cpu;
using lcmae::backend::Cuda;
namespace ops = lcmae::ops;

// ---- memory rows, broadcast, column sums ------------------------------------------------------

template <class T>
void check_rows_ops() {
    Cuda ctx;
    Cpu cpu(1);
    const long rows = 37, cols = 53, ld_src = 61, ld_dst = 70;
    const auto src = random<T>(rows * ld_src);
    auto dst = random<T>(rows * ld_dst);
    auto ds = to_device(ctx, src), dd = to_device(ctx, dst);
    ops::copy_rows(ctx, rows, cols, ds.data(), ld_src, dd.data(), ld_dst);
    auto ref = dst;
    ops::copy_rows(cpu, rows, cols, src.data(), ld_src, ref.data(), ld_dst);
    expect_exact("copy_rows (padding untouched)", to_host(ctx, dd), ref);
    ops::add_rows(ctx, rows, cols, ds.data(), ld_src, dd.data(), ld_dst);
    ops::add_rows(cpu, rows, cols, src.data(), ld_src, ref.data(), ld_dst);
    expect_exact("add_rows (padding untouched)", to_host(ctx, dd), ref);
}

template <class T>
void check_broadcast_ops() {
    Cuda ctx;
    Cpu cpu(1);
    const long rows = 129, cols = 77;
    const auto v = random<T>(cols);
    auto y = random<T>(rows * cols);
    auto dv = to_device(ctx, v), dy = to_device(ctx, y);
    ops::scale_add_broadcast(ctx, rows, cols, T(0.75), dy.data(), T(-0.3), dv.data());
    ops::scale_add_broadcast(cpu, rows, cols, T(0.75), y.data(), T(-0.3), v.data());
    expect_close("scale_add_broadcast", to_host(ctx, dy), y, tol<T>(1e-6, 1e-15));
    {  // scale_rows (drop path): one product per element, exact; zero scales drop whole rows
        auto s = random<T>(rows);
        s[0] = T(0);
        s[1] = T(1) / T(0.9);
        auto ds = to_device(ctx, s);
        ops::scale_rows(ctx, rows, cols, ds.data(), dy.data());
        ops::scale_rows(cpu, rows, cols, s.data(), y.data());
        expect_exact("scale_rows", to_host(ctx, dy), y);
    }
    for (long R : {1L, 1000L, 5003L}) {
        const auto g = random<T>(R * cols);
        auto db = random<T>(cols);
        auto dg = to_device(ctx, g), ddb = to_device(ctx, db);
        ops::col_sum_add(ctx, R, cols, T(0.37), dg.data(), ddb.data());
        ops::col_sum_add(cpu, R, cols, T(0.37), g.data(), db.data());
        expect_close("col_sum_add rows " + std::to_string(R), to_host(ctx, ddb), db, tol<T>(2e-6));
    }
}

TEST_CASE("cuda copy_rows, add_rows, scale_add_broadcast, scale_rows, col_sum_add equal the CPU ops") {
    LCMAE_SKIP_WITHOUT_CUDA();
    check_rows_ops<float>();
    check_rows_ops<double>();
    check_broadcast_ops<float>();
    check_broadcast_ops<double>();
}

// ---- patches ----------------------------------------------------------------------------------

template <class T>
void check_patches(long C, long S, long p, long B) {
    Cuda ctx;
    Cpu cpu(1);
    const long G = S / p, L = G * G, Pd = C * p * p, K = std::max(1L, L / 4);
    const std::string geom = " C" + std::to_string(C) + " S" + std::to_string(S) + " p" + std::to_string(p);
    const auto img = random<T>(B * C * S * S);
    auto dimg = to_device(ctx, img);
    const auto keep = random_keep(B, L, K);
    auto dkeep = to_device(ctx, keep);
    {  // with ids
        auto out = poisoned<T>(ctx, B * K * Pd);
        std::vector<T> ref(B * K * Pd);
        ops::patchify_conv(ctx, C, S, p, B, dimg.data(), dkeep.data(), K, out.data());
        ops::patchify_conv(cpu, C, S, p, B, img.data(), keep.data(), K, ref.data());
        expect_exact("patchify_conv (ids)" + geom, to_host(ctx, out), ref);
    }
    {  // all tokens
        auto out = poisoned<T>(ctx, B * L * Pd);
        std::vector<T> ref(B * L * Pd);
        ops::patchify_conv(ctx, C, S, p, B, dimg.data(), (const std::int64_t*)nullptr, L, out.data());
        ops::patchify_conv(cpu, C, S, p, B, img.data(), (const std::int64_t*)nullptr, L, ref.data());
        expect_exact("patchify_conv (all)" + geom, to_host(ctx, out), ref);
    }
    auto tp = poisoned<T>(ctx, B * L * Pd);
    std::vector<T> tref(B * L * Pd);
    ops::patchify_target(ctx, C, S, p, B, dimg.data(), tp.data());
    ops::patchify_target(cpu, C, S, p, B, img.data(), tref.data());
    expect_exact("patchify_target" + geom, to_host(ctx, tp), tref);
    const auto patches = random<T>(B * L * Pd);
    auto dpatches = to_device(ctx, patches);
    auto back = poisoned<T>(ctx, B * C * S * S);
    std::vector<T> bref(B * C * S * S);
    ops::unpatchify_target(ctx, C, S, p, B, dpatches.data(), back.data());
    ops::unpatchify_target(cpu, C, S, p, B, patches.data(), bref.data());
    expect_exact("unpatchify_target" + geom, to_host(ctx, back), bref);
    ops::unpatchify_target(ctx, C, S, p, B, tp.data(), back.data());  // the round trip
    expect_exact("unpatchify_target(patchify_target(x)) == x" + geom, to_host(ctx, back), img);
}

TEST_CASE("cuda patchify_conv, patchify_target, unpatchify_target equal the CPU ops") {
    LCMAE_SKIP_WITHOUT_CUDA();
    check_patches<float>(3, 32, 4, 3);
    check_patches<float>(1, 8, 2, 4);
    check_patches<double>(3, 24, 8, 2);
    check_patches<float>(3, 224, 16, 2);  // the ViT-B/16 geometry
}

// ---- token ops --------------------------------------------------------------------------------

template <class T>
void check_token_ops() {
    Cuda ctx;
    Cpu cpu(1);
    const long B = 5, L = 36, K = 9, D = 40;
    const auto keep = random_keep(B, L, K);
    auto dkeep = to_device(ctx, keep);
    // assemble_tokens, with ids and without
    const auto emb = random<T>(B * L * D), cls = random<T>(D), pos = random<T>((1 + L) * D);
    auto demb_in = to_device(ctx, emb), dcls_v = to_device(ctx, cls), dpos = to_device(ctx, pos);
    for (bool with_ids : {true, false}) {
        const long Kx = with_ids ? K : L;
        auto x0 = poisoned<T>(ctx, B * (1 + Kx) * D);
        std::vector<T> ref(B * (1 + Kx) * D);
        ops::assemble_tokens(ctx, B, Kx, D, demb_in.data(), with_ids ? dkeep.data() : nullptr, dcls_v.data(), dpos.data(),
                             x0.data());
        ops::assemble_tokens(cpu, B, Kx, D, emb.data(), with_ids ? keep.data() : nullptr, cls.data(), pos.data(), ref.data());
        expect_exact(std::string("assemble_tokens ") + (with_ids ? "(ids)" : "(all)"), to_host(ctx, x0), ref);
    }
    // split_token_grads
    {
        const auto dx = random<T>(B * (1 + K) * D);
        auto dcls = random<T>(D);
        auto ddx = to_device(ctx, dx), ddcls = to_device(ctx, dcls);
        auto de = poisoned<T>(ctx, B * K * D);
        std::vector<T> de_ref(B * K * D);
        ops::split_token_grads(ctx, B, K, D, ddx.data(), ddcls.data(), de.data());
        ops::split_token_grads(cpu, B, K, D, dx.data(), dcls.data(), de_ref.data());
        expect_exact("split_token_grads dcls (accumulates)", to_host(ctx, ddcls), dcls);
        expect_exact("split_token_grads demb", to_host(ctx, de), de_ref);
    }
    // mask_token_mix and its backward, 0/1 weights (the models') and fractional ones
    for (bool binary : {true, false}) {
        const long rows = B * L;
        const auto w = binary ? random_mask<T>(rows, 0.6) : random<T>(rows, 0, 1);
        const auto mt = random<T>(D);
        auto x = random<T>(rows * D);
        auto dw = to_device(ctx, w), dmt = to_device(ctx, mt), dxm = to_device(ctx, x);
        ops::mask_token_mix(ctx, rows, D, dw.data(), dmt.data(), dxm.data());
        ops::mask_token_mix(cpu, rows, D, w.data(), mt.data(), x.data());
        const std::string kind = binary ? " (0/1 weights)" : " (fractional weights)";
        if (binary) expect_exact("mask_token_mix" + kind, to_host(ctx, dxm), x);
        else expect_close("mask_token_mix" + kind, to_host(ctx, dxm), x, tol<T>(1e-6, 1e-15));
        auto g = random<T>(rows * D);
        auto dmt_acc = random<T>(D);
        auto dg = to_device(ctx, g), ddmt = to_device(ctx, dmt_acc);
        ops::mask_token_mix_backward(ctx, rows, D, dw.data(), dg.data(), ddmt.data());
        ops::mask_token_mix_backward(cpu, rows, D, w.data(), g.data(), dmt_acc.data());
        expect_exact("mask_token_mix_backward dx" + kind, to_host(ctx, dg), g);
        expect_close("mask_token_mix_backward dmask_token" + kind, to_host(ctx, ddmt), dmt_acc, tol<T>(2e-6));
    }
    // keep_to_slots, decoder_assemble and its backward
    {
        DBuf<std::int64_t> slots(B * L);
        ops::fill(ctx, B * L, std::int64_t(12345), slots.data());
        std::vector<std::int64_t> slots_ref(B * L);
        ops::keep_to_slots(ctx, B, L, K, dkeep.data(), slots.data());
        ops::keep_to_slots(cpu, B, L, K, keep.data(), slots_ref.data());
        expect_exact("keep_to_slots", to_host(ctx, slots), slots_ref);
        const long Dd = 24;
        const auto e = random<T>(B * (1 + K) * Dd), mt = random<T>(Dd), dpos_h = random<T>((1 + L) * Dd);
        auto de = to_device(ctx, e), dmt = to_device(ctx, mt), dp = to_device(ctx, dpos_h);
        auto x0 = poisoned<T>(ctx, B * (1 + L) * Dd);
        std::vector<T> x0_ref(B * (1 + L) * Dd);
        ops::decoder_assemble(ctx, B, L, K, Dd, de.data(), slots.data(), dmt.data(), dp.data(), x0.data());
        ops::decoder_assemble(cpu, B, L, K, Dd, e.data(), slots_ref.data(), mt.data(), dpos_h.data(), x0_ref.data());
        expect_exact("decoder_assemble", to_host(ctx, x0), x0_ref);
        const auto dx = random<T>(B * (1 + L) * Dd);
        auto ddx = to_device(ctx, dx);
        auto demb = poisoned<T>(ctx, B * (1 + K) * Dd);
        std::vector<T> demb_ref(B * (1 + K) * Dd);
        auto dmt_acc = random<T>(Dd);
        auto ddmt = to_device(ctx, dmt_acc);
        ops::decoder_assemble_backward(ctx, B, L, K, Dd, ddx.data(), slots.data(), demb.data(), ddmt.data());
        ops::decoder_assemble_backward(cpu, B, L, K, Dd, dx.data(), slots_ref.data(), demb_ref.data(), dmt_acc.data());
        expect_exact("decoder_assemble_backward demb", to_host(ctx, demb), demb_ref);
        expect_close("decoder_assemble_backward dmask_token", to_host(ctx, ddmt), dmt_acc, tol<T>(2e-6));
    }
    // pool_tokens / unpool_tokens_add: all tokens, weighted (w == 0 pooled), cls
    {
        const long N = 1 + L;
        const auto x = random<T>(B * N * D);
        auto w = random_mask<T>(B * L, 0.5);
        for (long b = 0; b < B; ++b) w[b * L] = T(0);  // every sample pools at least one token
        auto dxv = to_device(ctx, x), dw = to_device(ctx, w);
        for (int mode = 0; mode < 3; ++mode) {
            const bool cls = mode == 2;
            const T* wh = mode == 1 ? w.data() : nullptr;
            const T* wd = mode == 1 ? dw.data() : nullptr;
            const std::string name = mode == 0 ? " (all tokens)" : (mode == 1 ? " (weighted)" : " (cls)");
            auto out = poisoned<T>(ctx, B * D);
            std::vector<T> ref(B * D);
            ops::pool_tokens(ctx, B, N, D, dxv.data(), wd, cls, out.data());
            ops::pool_tokens(cpu, B, N, D, x.data(), wh, cls, ref.data());
            expect_exact("pool_tokens" + name, to_host(ctx, out), ref);
            const auto d = random<T>(B * D);
            auto acc = random<T>(B * N * D);
            auto dd = to_device(ctx, d), dacc = to_device(ctx, acc);
            ops::unpool_tokens_add(ctx, B, N, D, dd.data(), wd, cls, dacc.data());
            ops::unpool_tokens_add(cpu, B, N, D, d.data(), wh, cls, acc.data());
            expect_exact("unpool_tokens_add" + name, to_host(ctx, dacc), acc);
        }
    }
    ctx.check_errors();  // nothing recorded
}

TEST_CASE("cuda token ops (assemble, split, mask-token mix, slots, decoder assemble, pooling) equal the CPU ops") {
    LCMAE_SKIP_WITHOUT_CUDA();
    check_token_ops<float>();
    check_token_ops<double>();
}

TEST_CASE("cuda token ops: invalid ids and empty pools are recorded, named by check_errors, and skipped") {
    LCMAE_SKIP_WITHOUT_CUDA();
    Cuda ctx;
    const long B = 2, C = 1, S = 8, p = 2, L = 16, K = 3, Pd = 4;
    std::vector<std::int64_t> ids = {0, 1, 2, 3, 99, 5};
    auto dids = to_device(ctx, ids);
    auto img = to_device(ctx, random<float>(B * C * S * S));
    auto out = poisoned<float>(ctx, B * K * Pd);
    ops::patchify_conv(ctx, C, S, p, B, img.data(), dids.data(), K, out.data());
    CHECK_THROWS_WITH_AS(ctx.check_errors(), doctest::Contains("patchify_conv"), lcmae::Error);
    DBuf<std::int64_t> slots(B * L);
    ops::keep_to_slots(ctx, B, L, K, dids.data(), slots.data());
    CHECK_THROWS_WITH_AS(ctx.check_errors(), doctest::Contains("keep_to_slots"), lcmae::Error);
    const long N = 5, D = 4;
    auto x = to_device(ctx, random<float>(B * N * D));
    std::vector<float> w(B * (N - 1), 0.0f);
    for (long n = 0; n < N - 1; ++n) w[1 * (N - 1) + n] = 1.0f;  // sample 1 pools nothing
    auto dw = to_device(ctx, w);
    auto pooled = poisoned<float>(ctx, B * D);
    ops::pool_tokens(ctx, B, N, D, x.data(), dw.data(), false, pooled.data());
    CHECK_THROWS_WITH_AS(ctx.check_errors(), doctest::Contains("pool_tokens"), lcmae::Error);
    auto zero_mask = to_device(ctx, std::vector<float>(B * L, 0.0f));
    auto pred = to_device(ctx, random<float>(B * L * Pd)), target = to_device(ctx, random<float>(B * L * Pd));
    DBuf<float> dpred(B * L * Pd);
    DBuf<double> loss(1);
    ops::norm_pix_mse(ctx, B, L, Pd, pred.data(), target.data(), zero_mask.data(), true, 1.0, dpred.data(), loss.data());
    CHECK_THROWS_WITH_AS(ctx.check_errors(), doctest::Contains("norm_pix_mse"), lcmae::Error);
    ctx.check_errors();  // the record was reset
}

// ---- losses -----------------------------------------------------------------------------------

template <class T>
void check_losses() {
    Cuda ctx;
    Cpu cpu(1);
    DBuf<double> dloss(1);
    for (long B : {3L, 64L}) {
        const long L = 49, P = 48;
        const auto pred = random<T>(B * L * P), target = random<T>(B * L * P, -2, 3);
        const auto mask = random_mask<T>(B * L, 0.75);
        auto dpr = to_device(ctx, pred), dtg = to_device(ctx, target), dmask = to_device(ctx, mask);
        for (bool norm_pix : {true, false}) {
            auto dpred = poisoned<T>(ctx, B * L * P);
            std::vector<T> dpred_ref(B * L * P);
            double ref = 0;
            ops::norm_pix_mse(ctx, B, L, P, dpr.data(), dtg.data(), dmask.data(), norm_pix, 0.7, dpred.data(), dloss.data());
            ops::norm_pix_mse(cpu, B, L, P, pred.data(), target.data(), mask.data(), norm_pix, 0.7, dpred_ref.data(), &ref);
            const std::string tag = std::string(norm_pix ? " norm_pix" : " raw") + " B" + std::to_string(B) + " <" + type_name<T>() + ">";
            expect_close_scalar("norm_pix_mse loss" + tag, device_scalar(ctx, dloss), ref, 1e-12);
            expect_close("norm_pix_mse d_pred" + tag, to_host(ctx, dpred), dpred_ref, tol<T>(1e-6));
        }
        {
            auto dpred = poisoned<T>(ctx, B * L * P);
            std::vector<T> dpred_ref(B * L * P);
            double ref = 0;
            ops::simmim_l1(ctx, B, L, P, 16, 3, dpr.data(), dtg.data(), dmask.data(), 0.9, dpred.data(), dloss.data());
            ops::simmim_l1(cpu, B, L, P, 16, 3, pred.data(), target.data(), mask.data(), 0.9, dpred_ref.data(), &ref);
            const std::string tag = std::string(" B") + std::to_string(B) + " <" + type_name<T>() + ">";
            expect_close_scalar("simmim_l1 loss" + tag, device_scalar(ctx, dloss), ref, 1e-12);
            expect_exact("simmim_l1 d_pred" + tag, to_host(ctx, dpred), dpred_ref);
        }
    }
    for (long R : {2L, 7L, 128L}) {
        for (long D : {8L, 256L, 768L}) {
            const auto q = random<T>(R * D), t = random<T>(R * D);
            auto dq_in = random<T>(R * D);
            auto dqv = to_device(ctx, q), dtv = to_device(ctx, t);
            const std::string tag = " R" + std::to_string(R) + " D" + std::to_string(D) + " <" + type_name<T>() + ">";
            {
                auto ddq = to_device(ctx, dq_in);
                auto ref_dq = dq_in;
                double ref = 0;
                ops::guidance_cosine(ctx, R, D, dqv.data(), dtv.data(), 0.3, ddq.data(), dloss.data());
                ops::guidance_cosine(cpu, R, D, q.data(), t.data(), 0.3, ref_dq.data(), &ref);
                expect_close_scalar("guidance_cosine loss" + tag, device_scalar(ctx, dloss), ref, 1e-12);
                expect_close("guidance_cosine dq (accumulates)" + tag, to_host(ctx, ddq), ref_dq, tol<T>(1e-6));
            }
            {
                auto ddq = to_device(ctx, dq_in);
                auto ref_dq = dq_in;
                double ref = 0;
                DBuf<double> scratch(ops::infonce_scratch_size(R, D));
                std::vector<double> scratch_h(ops::infonce_scratch_size(R, D));
                ops::guidance_infonce(ctx, R, D, 0.2, dqv.data(), dtv.data(), 0.3, ddq.data(), scratch.data(), dloss.data());
                ops::guidance_infonce(cpu, R, D, 0.2, q.data(), t.data(), 0.3, ref_dq.data(), scratch_h.data(), &ref);
                expect_close_scalar("guidance_infonce loss" + tag, device_scalar(ctx, dloss), ref, 1e-12);
                expect_close("guidance_infonce dq (accumulates)" + tag, to_host(ctx, ddq), ref_dq, tol<T>(1e-6));
            }
            {
                auto ddq = to_device(ctx, dq_in);
                auto ref_dq = dq_in;
                double ref = 0;
                ops::guidance_smooth_l1(ctx, R, D, 0.5, dqv.data(), dtv.data(), 0.3, ddq.data(), dloss.data());
                ops::guidance_smooth_l1(cpu, R, D, 0.5, q.data(), t.data(), 0.3, ref_dq.data(), &ref);
                expect_close_scalar("guidance_smooth_l1 loss" + tag, device_scalar(ctx, dloss), ref, 1e-12);
                expect_close("guidance_smooth_l1 dq (accumulates)" + tag, to_host(ctx, ddq), ref_dq, tol<T>(1e-6));
            }
        }
    }
    // a zero row (the clamped norms) in cosine and InfoNCE
    {
        const long R = 4, D = 16;
        auto q = random<T>(R * D);
        for (long c = 0; c < D; ++c) q[1 * D + c] = T(0);
        const auto t = random<T>(R * D);
        auto dqv = to_device(ctx, q), dtv = to_device(ctx, t);
        std::vector<T> ref_dq(R * D, T(0));
        auto ddq = to_device(ctx, ref_dq);
        double ref = 0;
        ops::guidance_cosine(ctx, R, D, dqv.data(), dtv.data(), 1.0, ddq.data(), dloss.data());
        ops::guidance_cosine(cpu, R, D, q.data(), t.data(), 1.0, ref_dq.data(), &ref);
        expect_close_scalar(std::string("guidance_cosine loss, a zero row <") + type_name<T>() + ">", device_scalar(ctx, dloss), ref, 1e-12);
        expect_close("guidance_cosine dq, a zero row", to_host(ctx, ddq), ref_dq, tol<T>(1e-6));
        std::vector<T> ref_dq2(R * D, T(0));
        auto ddq2 = to_device(ctx, ref_dq2);
        DBuf<double> scratch(ops::infonce_scratch_size(R, D));
        std::vector<double> scratch_h(ops::infonce_scratch_size(R, D));
        ops::guidance_infonce(ctx, R, D, 0.1, dqv.data(), dtv.data(), 1.0, ddq2.data(), scratch.data(), dloss.data());
        ops::guidance_infonce(cpu, R, D, 0.1, q.data(), t.data(), 1.0, ref_dq2.data(), scratch_h.data(), &ref);
        expect_close_scalar(std::string("guidance_infonce loss, a zero row <") + type_name<T>() + ">", device_scalar(ctx, dloss), ref, 1e-12);
        expect_close("guidance_infonce dq, a zero row", to_host(ctx, ddq2), ref_dq2, tol<T>(1e-6));
    }
    ctx.check_errors();
}

TEST_CASE("cuda losses (norm_pix_mse, simmim_l1, cosine, InfoNCE, Smooth L1) equal the CPU ops") {
    LCMAE_SKIP_WITHOUT_CUDA();
    check_losses<float>();
    check_losses<double>();
}

// ---- optimiser ops ----------------------------------------------------------------------------

namespace {
/// A table with gaps between segments (never touched), several lr scales and both decay flags.
std::vector<lcmae::ops::OptimSegment> test_segments(std::size_t& total) {
    std::vector<lcmae::ops::OptimSegment> s;
    std::size_t off = 3;
    const std::size_t counts[] = {1, 700, 33, 100000, 5, 4096, 257};
    for (std::size_t i = 0; i < std::size(counts); ++i) {
        s.push_back({off, counts[i], 1.0 - 0.1 * double(i), i % 2 == 1});
        off += counts[i] + (i % 3);  // gaps of 0, 1, 2
    }
    total = off + 5;
    return s;
}
}  // namespace

template <class T>
void check_optim_ops() {
    Cuda ctx;
    Cpu cpu(1);
    std::size_t n = 0;
    const auto segs = test_segments(n);
    const long nseg = long(segs.size());
    auto dsegs = to_device(ctx, segs);
    const auto g = random<T>(long(n), -0.5, 0.5);
    auto dg = to_device(ctx, g);
    DBuf<double> dsum(1);
    // grad_sum_squares
    double ref_sum = 0;
    ops::grad_sum_squares(ctx, nseg, segs.data(), dsegs.data(), 0.5, dg.data(), dsum.data());
    ops::grad_sum_squares(cpu, nseg, segs.data(), segs.data(), 0.5, g.data(), &ref_sum);
    expect_close_scalar(std::string("grad_sum_squares <") + type_name<T>() + ">", device_scalar(ctx, dsum), ref_sum, 1e-12);
    // grad_clip_scale, clipping (c < 1) and not (c == 1), from the SAME sum of squares on both sides
    for (double max_norm : {0.1, 1e6}) {
        auto gc = g;
        auto dgc = to_device(ctx, gc);
        ops::upload(ctx, 1, &ref_sum, dsum.data());
        ops::grad_clip_scale(ctx, nseg, segs.data(), dsegs.data(), max_norm, dsum.data(), dgc.data());
        ops::grad_clip_scale(cpu, nseg, segs.data(), segs.data(), max_norm, &ref_sum, gc.data());
        expect_close("grad_clip_scale max_norm " + std::to_string(max_norm), to_host(ctx, dgc), gc, tol<T>(1e-7, 1e-16));
    }
    // adamw_update: 3 steps, without and with clipping (same sum of squares on both sides)
    for (bool clip : {false, true}) {
        auto p = random<T>(long(n)), m = std::vector<T>(n, T(0)), v = std::vector<T>(n, T(0));
        auto dp = to_device(ctx, p), dm = to_device(ctx, m), dv = to_device(ctx, v);
        for (int step = 1; step <= 3; ++step) {
            const auto gs = random<T>(long(n), -0.5, 0.5);
            auto dgs = to_device(ctx, gs);
            lcmae::ops::AdamWStep st;
            st.lr = 1e-3 * step;
            st.weight_decay = 0.05;
            st.bias_correction1 = 1.0 - std::pow(st.beta1, step);
            st.bias_correction2_sqrt = std::sqrt(1.0 - std::pow(st.beta2, step));
            st.grad_scale = 0.5;
            st.max_grad_norm = clip ? 0.5 : 0.0;
            double sumsq = 0;
            ops::grad_sum_squares(cpu, nseg, segs.data(), segs.data(), st.grad_scale, gs.data(), &sumsq);
            ops::upload(ctx, 1, &sumsq, dsum.data());
            ops::adamw_update(ctx, nseg, segs.data(), dsegs.data(), st, clip ? dsum.data() : nullptr, dp.data(), dgs.data(),
                              dm.data(), dv.data());
            ops::adamw_update(cpu, nseg, segs.data(), segs.data(), st, clip ? &sumsq : nullptr, p.data(), gs.data(), m.data(),
                              v.data());
        }
        const std::string tag = clip ? " (clipped)" : "";
        expect_close("adamw_update p after 3 steps" + tag, to_host(ctx, dp), p, tol<T>(1e-6, 1e-15));
        expect_close("adamw_update exp_avg" + tag, to_host(ctx, dm), m, tol<T>(1e-6, 1e-15));
        expect_close("adamw_update exp_avg_sq" + tag, to_host(ctx, dv), v, tol<T>(1e-6, 1e-15));
    }
    // lars_update: 2 steps
    {
        auto p = random<T>(long(n)), mu = std::vector<T>(n, T(0));
        auto dp = to_device(ctx, p), dmu = to_device(ctx, mu);
        DBuf<double> norms(2 * segs.size() + 1);
        for (int step = 0; step < 2; ++step) {
            const auto gs = random<T>(long(n), -0.5, 0.5);
            auto dgs = to_device(ctx, gs);
            lcmae::ops::LarsStep st;
            st.lr = 0.1;
            st.weight_decay = 1e-4;
            st.grad_scale = 0.5;
            ops::lars_update(ctx, nseg, segs.data(), dsegs.data(), st, dp.data(), dgs.data(), dmu.data(), norms.data());
            ops::lars_update(cpu, nseg, segs.data(), segs.data(), st, p.data(), gs.data(), mu.data(), (double*)nullptr);
        }
        expect_close("lars_update p after 2 steps", to_host(ctx, dp), p, tol<T>(1e-6));
        expect_close("lars_update momentum", to_host(ctx, dmu), mu, tol<T>(1e-6));
    }
    // ema_update: runs with different target and online offsets
    {
        std::vector<lcmae::ops::EmaRun> runs = {{0, 10, 100}, {150, 300, 5000}, {6000, 5400, 1}};
        auto druns = to_device(ctx, runs);
        auto target = random<T>(7000);
        const auto online = random<T>(6000);
        auto dt = to_device(ctx, target), donl = to_device(ctx, online);
        for (double d : {0.996, 0.5}) {
            ops::ema_update(ctx, long(runs.size()), runs.data(), druns.data(), d, dt.data(), donl.data());
            ops::ema_update(cpu, long(runs.size()), runs.data(), runs.data(), d, target.data(), online.data());
        }
        expect_close("ema_update (gaps untouched)", to_host(ctx, dt), target, tol<T>(1e-7, 1e-16));
    }
    ctx.check_errors();
}

TEST_CASE("cuda optimiser ops (grad_sum_squares, grad_clip_scale, AdamW, LARS, EMA) equal the CPU ops") {
    LCMAE_SKIP_WITHOUT_CUDA();
    check_optim_ops<float>();
    check_optim_ops<double>();
}
