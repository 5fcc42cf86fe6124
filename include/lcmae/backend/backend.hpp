// lcmae/backend/backend.hpp - the Backend concept: what a backend context must provide for the
// models, layers, optimisers and the trainer to run on it. Each requirement is one op or memory
// service of the catalogue (backend/ops.hpp has every contract); this concept only checks that a
// call with the backend's own handle types resolves. It is checked where the typed front end picks
// a backend (LCMAE<..., Backend, ...>), so a missing op is one readable error there, not pages of
// template errors inside models/.
//
// Writing a backend: docs/writing-a-backend.md.
#pragma once

#include <concepts>
#include <cstdint>

#include "lcmae/backend/ops.hpp"
#include "lcmae/backend/optim_types.hpp"
#include "lcmae/backend/tag.hpp"

namespace lcmae::backend {

/// The context, its handle and buffer types, and the memory services.
template <class B>
concept BackendMemory = std::derived_from<B, ops::BackendTag> && requires(const B& ctx, dptr<B, float> p,
                                                                           dptr<B, const float> cp, const float* host,
                                                                           float* host_out, long n) {
    typename B::template ptr<float>;
    typename B::template buffer<float>;
    { B::name } -> std::convertible_to<const char*>;
    { B::host_memory } -> std::convertible_to<bool>;
    ctx.synchronize();
    fill(ctx, n, 1.0f, p);
    copy(ctx, n, cp, p);
    upload(ctx, n, host, p);
    download(ctx, n, cp, host_out);
    copy_rows(ctx, n, n, cp, n, p, n);
    add_rows(ctx, n, n, cp, n, p, n);
};

/// Every op of the catalogue for scalar type T (float for training; double for gradient checks).
template <class B, class T>
concept BackendOps = requires(const B& ctx, dptr<B, T> p, dptr<B, const T> cp, dptr<B, const std::int64_t> ids,
                              dptr<B, std::int64_t> slots, dptr<B, double> scalar, dptr<B, const double> cscalar, long n, T a) {
    gemm(ctx, false, true, n, n, n, a, cp, n, cp, n, a, p, n);
    gemm_batched(ctx, false, true, n, n, n, a, cp, n, n, cp, n, n, a, p, n, n, n);
    bias_fill(ctx, n, n, cp, p);
    bias_grad(ctx, n, n, cp, p);
    add(ctx, n, cp, cp, p);
    add_inplace(ctx, n, cp, p);
    scale_inplace(ctx, n, a, p);
    scale_rows(ctx, n, n, cp, p);
    gelu_forward(ctx, n, cp, p);
    gelu_backward(ctx, n, cp, cp, p);
    relu_forward(ctx, n, cp, p);
    relu_backward(ctx, n, cp, cp, p);
    scale_add_broadcast(ctx, n, n, a, p, a, cp);
    col_sum_add(ctx, n, n, a, cp, p);
    layernorm_forward(ctx, n, n, cp, cp, cp, a, p, p, p);
    layernorm_backward(ctx, n, n, cp, cp, cp, cp, cp, p, p, p);
    batchnorm_forward_train(ctx, n, n, cp, cp, cp, a, a, p, p, p, p, p);
    batchnorm_forward_eval(ctx, n, n, cp, cp, cp, a, cp, cp, p);
    batchnorm_backward(ctx, n, n, cp, cp, cp, cp, cp, p, p, p);
    batchnorm_local_sums(ctx, n, n, cp, scalar);
    batchnorm_forward_global(ctx, n, n, cscalar, cp, cp, cp, a, a, p, p, p, p, p);
    batchnorm_backward_local_sums(ctx, n, n, cp, cp, cp, cp, scalar, p, p);
    batchnorm_backward_global(ctx, n, n, cscalar, cp, cp, cp, cp, cp, p);
    attention_forward(ctx, n, n, n, n, cp, p, p);
    attention_backward(ctx, n, n, n, n, cp, cp, cp, p, p);
    softmax_rows(ctx, n, n, cp, p);
    patchify_conv(ctx, n, n, n, n, cp, ids, n, p);
    patchify_target(ctx, n, n, n, n, cp, p);
    unpatchify_target(ctx, n, n, n, n, cp, p);
    gather_rows(ctx, n, n, n, n, cp, ids, p);
    scatter_rows_add(ctx, n, n, n, n, cp, ids, p);
    assemble_tokens(ctx, n, n, n, cp, ids, cp, cp, p);
    split_token_grads(ctx, n, n, n, cp, p, p);
    mask_token_mix(ctx, n, n, cp, cp, p);
    mask_token_mix_backward(ctx, n, n, cp, p, p);
    keep_to_slots(ctx, n, n, n, ids, slots);
    decoder_assemble(ctx, n, n, n, n, cp, ids, cp, cp, p);
    decoder_assemble_backward(ctx, n, n, n, n, cp, ids, p, p);
    pool_tokens(ctx, n, n, n, cp, cp, true, p);
    unpool_tokens_add(ctx, n, n, n, cp, cp, true, p);
    sum_squares(ctx, n, cp, scalar);
    norm_pix_mse(ctx, n, n, n, cp, cp, cp, true, 1.0, p, scalar);
    simmim_l1(ctx, n, n, n, n, n, cp, cp, cp, 1.0, p, scalar);
    guidance_cosine(ctx, n, n, cp, cp, 1.0, p, scalar);
    guidance_infonce(ctx, n, n, 0.2, cp, cp, 1.0, p, scalar, scalar);
    guidance_smooth_l1(ctx, n, n, 1.0, cp, cp, 1.0, p, scalar);
};

/// The optimiser ops (segment / run tables on the host and in backend memory).
template <class B, class T>
concept BackendOptimOps = requires(const B& ctx, dptr<B, T> p, dptr<B, const T> cp, dptr<B, double> scalar,
                                   dptr<B, const double> cscalar, const ops::OptimSegment* seg_host,
                                   dptr<B, const ops::OptimSegment> seg, const ops::EmaRun* run_host,
                                   dptr<B, const ops::EmaRun> run, long n) {
    grad_sum_squares(ctx, n, seg_host, seg, 1.0, cp, scalar);
    grad_clip_scale(ctx, n, seg_host, seg, 1.0, cscalar, p);
    adamw_update(ctx, n, seg_host, seg, ops::AdamWStep{}, cscalar, p, cp, p, p);
    lars_update(ctx, n, seg_host, seg, ops::LarsStep{}, p, cp, p, scalar);
    ema_update(ctx, n, run_host, run, 0.99, p, cp);
};

/// A complete backend for scalar type T.
template <class B, class T = float>
concept Backend = BackendMemory<B> && BackendOps<B, T> && BackendOptimOps<B, T>;

}  // namespace lcmae::backend
