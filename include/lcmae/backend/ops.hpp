// lcmae/backend/ops.hpp - THE op catalogue. Every op's contract is written here once; each backend
// implements the same names as free functions in namespace lcmae::ops overloaded on its context
// (backend/cpu/*.hpp for backend::Cpu; backend/cuda/*.cuh for backend::Cuda; tests/support/
// strict_backend.hpp forwards to the CPU). LCMAE_FOR_EACH_OP below lists every name once; the
// Backend concept (backend/backend.hpp) checks a backend provides them. This header includes no
// implementation: generic code includes it, a program includes the backend it runs on.
//
// Conventions for every op:
//   * Tensors are dense row-major arrays of the scalar T (float, or double for gradient checks),
//     passed as the backend's handles (dptr<B, T>: T* on the CPU and the GPU, an opaque handle for
//     backend::Strict). Host arrays are plain pointers and are named host_* below.
//   * Ops run in the context's order (its stream on the GPU): an op may return before its work is
//     done; only download() waits. Ops are called from the host thread, never inside a parallel
//     region (the CPU ops open their own, sized by ctx.threads()).
//   * Scalars that a step reports (losses, norms) are written into backend memory (a double* out),
//     so no op needs a device-to-host sync; the caller downloads them once per step.
//     "(R, C)" means R rows of C contiguous values; leading dimensions (ld*) are in elements.
//   * The first argument is the backend context (threads, stream).
//   * Outputs are written (=) unless the contract says "accumulates" (+=). Parameter gradients
//     always accumulate, so gradient accumulation and a shared encoder over two views need no
//     special case; activation gradients are written unless stated.
//   * No op allocates: scratch lives in the caller's activation arena.
//   * Ops validate only what is cheap (sizes > 0); layers validate shapes against their plans.
//
// Memory services (besides the context's buffer<T> type: one zeroed allocation, RAII)
//   fill(ctx, n, value, dst)                       dst[0:n] = value
//   copy(ctx, n, src, dst)                         dst[0:n] = src[0:n] (backend to backend)
//   upload(ctx, n, host_src, dst)                  host to backend (the host array may be reused
//                                                  as soon as the call returns)
//   download(ctx, n, src, host_dst)                backend to host; waits for all earlier work
//   copy_rows(ctx, rows, cols, src, ld_src, dst, ld_dst)   dst[r, 0:cols] = src[r, 0:cols]
//   add_rows(ctx, rows, cols, src, ld_src, dst, ld_dst)    dst[r, 0:cols] += src[r, 0:cols]
// GEMM
//   gemm(ctx, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
//       C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C, op = transpose when t* is true.
//       beta == 0 ignores C's old contents (NaNs included).
//   gemm_batched(ctx, ta, tb, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch)
//       the same for `batch` independent problems at strides sA, sB, sC; parallel over the batch.
// Elementwise / rows
//   bias_fill(ctx, rows, cols, bias, y)          y[r, :] = bias (so a GEMM with beta 1 adds it)
//   bias_grad(ctx, rows, cols, dy, db)           db += sum_r dy[r, :]                 (accumulates)
//   add(ctx, n, a, b, y)                         y = a + b (y may alias a or b)
//   add_inplace(ctx, n, x, y)                    y += x
//   gelu_forward(ctx, n, x, y)                   y = x * Phi(x), the erf form (PyTorch's default
//                                                nn.GELU, not the tanh approximation); double uses
//                                                std::erf, float a vectorisable rational erf with
//                                                |error| <= 3.3e-7 (a few float ulps)
//   gelu_backward(ctx, n, x, dy, dx)             dx = dy * (Phi(x) + x phi(x))
//   bias_gelu_forward(ctx, rows, cols, bias, pre, y)   fused MLP fc1 epilogue, one pass:
//                                                pre[r, c] += bias[c]; y[r, c] = gelu(pre[r, c])
//                                                (the same arithmetic as add-then-gelu_forward,
//                                                bit for bit). OPTIONAL: not part of the Backend
//                                                concept; nn::Mlp uses it where the backend has it
//                                                (CPU, Strict) and bias_fill + GEMM beta 1 +
//                                                gelu_forward elsewhere (CUDA)
//   relu_forward / relu_backward                 y = max(x, 0); dx = dy * (x > 0)
//   scale_inplace(ctx, n, alpha, y)              y *= alpha
//   scale_rows(ctx, rows, cols, s, y)            y[r, :] *= s[r] (s: rows values in backend memory;
//                                                drop path scales each sample's residual branch)
//   scale_add_broadcast(ctx, rows, cols, a, y, b, v)   y[r, c] = a y[r, c] + b v[c]
//   col_sum_add(ctx, rows, cols, alpha, dy, db)  db[c] += alpha sum_r dy[r, c]       (accumulates)
// Normalisation
//   layernorm_forward(ctx, rows, cols, x, gamma, beta, eps, y, mean, rstd)
//       per row: mean, rstd = 1/sqrt(biased var + eps) saved for backward; y = (x-mean) rstd g + b
//   add_layernorm_forward(ctx, rows, cols, res, x, gamma, beta, eps, y, mean, rstd)
//       fused residual add + LayerNorm, one pass: x += res (x keeps the sum: the backward needs
//       it), then layernorm_forward of x; the same bits as add_inplace + layernorm_forward.
//       OPTIONAL (not in the Backend concept): nn::Block uses it where the backend has it
//   layernorm_backward(ctx, rows, cols, x, mean, rstd, gamma, dy, dx, dgamma, dbeta)
//       dx ACCUMULATES (+=) (a pre-norm block adds it onto the residual gradient in place);
//       dgamma, dbeta accumulate.
//   batchnorm_forward_train(ctx, rows, cols, x, gamma, beta, eps, momentum, y, mean, rstd,
//                           running_mean, running_var)
//       per column over the rows: batch mean, biased var for normalising; running stats updated
//       with the unbiased var (PyTorch's BatchNorm1d); gamma/beta may be null (no affine).
//   batchnorm_forward_eval(ctx, rows, cols, x, gamma, beta, eps, running_mean, running_var, y)
//   batchnorm_backward(ctx, rows, cols, x, mean, rstd, gamma, dy, dx, dgamma, dbeta)
//       train-mode gradient; dx written; dgamma, dbeta accumulate.
//   SyncBatchNorm (a data-parallel group's statistics; sums: 2 cols + 1 doubles in backend memory,
//   [part 0 | part 1 | row count], summed over ranks by the communicator between the two halves):
//   batchnorm_local_sums(ctx, rows, cols, x, sums)        sums = [sum x | sum x^2 | rows] (written)
//   batchnorm_forward_global(ctx, rows, cols, sums, x, gamma, beta, eps, momentum, y, mean, rstd,
//                            running_mean, running_var)
//       as batchnorm_forward_train with N = sums[2 cols], mean = sum x / N, biased var =
//       max(sum x^2 / N - mean^2, 0) (one pass, in double), unbiased var = var N / (N - 1)
//   batchnorm_backward_local_sums(ctx, rows, cols, x, mean, rstd, dy, sums, dgamma, dbeta)
//       sums = [sum dy | sum dy xhat | rows] (written); dgamma, dbeta accumulate this rank's share
//   batchnorm_backward_global(ctx, rows, cols, sums, x, mean, rstd, gamma, dy, dx)
//       dx = g rstd (dy - sum dy / N - xhat sum dy xhat / N) (written)
// Attention (multi-head, batched over batch x heads)
//   attention_forward(ctx, B, N, H, hd, qkv, P, out)
//       qkv (B*N, 3*H*hd): q, k, v are consecutive H*hd blocks, each split into contiguous heads.
//       P (B, H, N, N) = softmax(q k^T / sqrt(hd)) saved; out (B*N, H*hd) = P v.
//   attention_backward(ctx, B, N, H, hd, qkv, P, dout, dqkv)       dqkv written
//   softmax_rows(ctx, rows, cols, x, y)                              y = softmax over each row
// Patches (geometry: C channels, S x S images, p x p patches, G = S / p, L = G^2 tokens)
//   patchify_conv(ctx, C, S, p, B, images, ids, K, out)
//       images (B, C, S, S) -> out (B*K, C*p*p) in conv order (c, ky, kx) for the K token ids of
//       each sample in ids (B, K) (int64, in backend memory), or all L in order when ids is null.
//   patchify_target(ctx, C, S, p, B, images, out)  -> (B, L, p*p*C), target order (ky, kx, c)
//   unpatchify_target(ctx, C, S, p, B, patches, images)   the inverse of patchify_target
// Tokens (index arrays are int64 in backend memory; ids outside their range are an error: the CPU
// throws at once, a device backend records it for ctx.check_errors() and skips the row)
//   gather_rows(ctx, B, Nsrc, K, D, src, idx, dst)     dst[b, k, :] = src[b, idx[b, k], :]
//   scatter_rows_add(ctx, B, Nsrc, K, D, src, idx, dst) dst[b, idx[b, k], :] += src[b, k, :]
//   assemble_tokens(ctx, B, K, D, emb, ids, cls, pos, x0)
//       x0 (B, 1+K, D): x0[b, 0] = cls + pos[0]; x0[b, 1+k] = emb[b, k] + pos[1 + ids[b, k]]
//   split_token_grads(ctx, B, K, D, dx, dcls, demb)
//       dcls[:] += sum_b dx[b, 0, :] (accumulates); demb[b, k] = dx[b, 1+k] (written)
//   mask_token_mix(ctx, rows, D, w, mask_token, x)      x[r] = x[r] (1 - w[r]) + mask_token w[r]
//   mask_token_mix_backward(ctx, rows, D, w, dx, dmask_token)
//       dmask_token += sum_r w[r] dx[r] (accumulates); then dx[r] *= 1 - w[r]
//   keep_to_slots(ctx, B, L, K, keep, slot_of)   slot_of (B, L) int64 = -1, then slot_of[b, keep[b, k]] = k
//   decoder_assemble(ctx, B, L, K, D, emb, slot_of, mask_token, pos, x0)
//       emb (B, 1+K, D) -> x0 (B, 1+L, D): row 0 = emb[b, 0]; row 1+n = emb[b, 1 + slot_of[b, n]] or
//       mask_token when slot_of is -1; plus pos[row]
//   decoder_assemble_backward(ctx, B, L, K, D, dx, slot_of, demb, dmask_token)
//       demb written from the rows dx came from; dmask_token += the rows that were mask tokens
//   pool_tokens(ctx, B, N, D, x, w, cls, out)
//       out[b] = x[b, 0] when cls; else the mean of x[b, n] over n in 1..N-1 with w[b, n-1] == 0
//       (w (B, N-1) may be null: all tokens); a sample with no such token is an error
//   unpool_tokens_add(ctx, B, N, D, d, w, cls, dx)     the adjoint of pool_tokens, ADDED into dx
// Reductions
//   sum(ctx, n, x) -> double; dot(ctx, n, a, b) -> double; sum_squares(ctx, n, x) -> double
//       (host results: these wait; generic code uses the losses' and optimisers' device scalars)
//   mean_tokens(ctx, B, N, D, x, y)                   y[b, :] = mean_n x[b, n, :]
// Losses (SPEC 2-3; each writes its value into *loss (backend double) and d/d(prediction), scaled
// by `scale`; sums in double so the value does not depend on the thread count)
//   norm_pix_mse(ctx, B, L, P, pred, target, mask, norm_pix, scale, d_pred, loss)   d_pred written
//   simmim_l1(ctx, B, L, P, pixels_per_token, channels, pred, target, mask, scale, d_pred, loss)
//   guidance_cosine(ctx, R, D, q, t, scale, dq, loss)                         dq ACCUMULATES
//   guidance_infonce(ctx, R, D, temperature, q, t, scale, dq, scratch, loss)  dq ACCUMULATES;
//       scratch: infonce_scratch_size(R, D) doubles of backend memory
//   guidance_smooth_l1(ctx, R, D, beta, q, t, scale, dq, loss)                dq ACCUMULATES
// Optimisers (optim/; structs in optim_types.hpp). One call covers a whole arena: p, g and the
// moments (m, v, mu) are the arena's value, gradient and moment buffers, all laid out alike, and a
// table of nseg OptimSegment {offset, count, lr_scale, decay} (or EmaRun) rows says which elements
// to touch; elements outside the table (padding, buffers, frozen entries) are never read or written.
// Every table op takes the table twice, with the same rows: host_segments (a host array: the CPU
// reads it; a device backend may use it for launch geometry) and segments (a copy in backend memory
// for kernels; the CPU ignores it). The caller uploads that copy when the table changes, not per
// step. Per-step scalars come as double values; sums are in double; a norm that a step needs stays
// in backend memory (double*), so no op requires a device-to-host sync.
//   grad_sum_squares(ctx, nseg, host_segments, segments, scale, g, out)
//       *out = sum over segments, in table order, of sum_i (double(g[offset+i]) * scale)^2 (written)
//   grad_clip_scale(ctx, nseg, host_segments, segments, max_norm, sumsq, g)
//       c = clip_coefficient(sqrt(*sumsq), max_norm) (min(1, max_norm / (norm + 1e-6)), as
//       torch.nn.utils.clip_grad_norm_); when c < 1, g *= T(c) over the segments. sumsq is the
//       backend double grad_sum_squares wrote (read by the op, not by the host)
//   adamw_update(ctx, nseg, host_segments, segments, AdamWStep st, grad_sumsq, p, g, m, v)
//       gs = st.grad_scale, times clip_coefficient(sqrt(*grad_sumsq), st.max_grad_norm) when
//       grad_sumsq (backend double) is not null; per segment lr_e = st.lr * lr_scale and per element
//       m = b1 m + (1-b1) g gs;  v = b2 v + (1-b2) (g gs)^2;
//       p = p * (decay ? 1 - lr_e wd : 1) - (lr_e / bias_correction1) m / (sqrt(v) / bias_correction2_sqrt + eps)
//       (scalars converted to T first, as torch.optim.AdamW); p, m, v updated in place, g read only
//   lars_update(ctx, nseg, host_segments, segments, LarsStep st, p, g, mu, norms)
//       per segment, d = g gs (+ wd p when `decay`: a matrix); q = trust |p| / |d| for matrices with
//       |p|, |d| > 0 (norms in double, over the segment), else 1; mu = momentum mu + q d; p -= lr mu.
//       norms: 2 * nseg doubles of backend scratch (per-segment |p|, |d| on a device; the CPU does
//       not touch it)
//   ema_update(ctx, nrun, host_runs, runs, d, target, online)
//       target[target_offset+i] = T(d) target[...] + T(1-d) online[online_offset+i] over the runs
//   zero-grad is fill(ctx, n, T(0), grads); the EMA target's initial copy is copy() per run.
#pragma once

#include "lcmae/backend/optim_types.hpp"
#include "lcmae/backend/tag.hpp"

// Every op name of the catalogue, once. Backends that forward (backend::Strict) and the docs use it.
#define LCMAE_FOR_EACH_OP(X)                                                                           \
    /* memory */ X(fill) X(copy) X(upload) X(download) X(copy_rows) X(add_rows)                        \
    /* gemm */ X(gemm) X(gemm_batched)                                                                 \
    /* elementwise */ X(bias_fill) X(bias_grad) X(add) X(add_inplace) X(scale_inplace)                  \
    X(scale_rows)                                                                                      \
    X(gelu_forward) X(gelu_backward) X(bias_gelu_forward) X(relu_forward) X(relu_backward) X(scale_add_broadcast)           \
    X(col_sum_add)                                                                                     \
    /* norms */ X(layernorm_forward) X(add_layernorm_forward) X(layernorm_backward) X(batchnorm_forward_train)                  \
    X(batchnorm_forward_eval) X(batchnorm_backward) X(batchnorm_local_sums) X(batchnorm_forward_global) \
    X(batchnorm_backward_local_sums) X(batchnorm_backward_global)                                      \
    /* attention */ X(attention_forward) X(attention_backward) X(softmax_rows)                         \
    /* patches */ X(patchify_conv) X(patchify_target) X(unpatchify_target)                            \
    /* tokens */ X(gather_rows) X(scatter_rows_add) X(assemble_tokens) X(split_token_grads)             \
    X(mask_token_mix) X(mask_token_mix_backward) X(keep_to_slots) X(decoder_assemble)                  \
    X(decoder_assemble_backward) X(pool_tokens) X(unpool_tokens_add)                                   \
    /* reductions */ X(sum) X(dot) X(sum_squares) X(mean_tokens)                                       \
    /* losses */ X(norm_pix_mse) X(simmim_l1) X(guidance_cosine) X(guidance_infonce)                   \
    X(guidance_smooth_l1)                                                                              \
    LCMAE_FOR_EACH_OPTIM_OP(X)

// The optimiser ops (optim/): listed separately; contracts above ("Optimisers").
#define LCMAE_FOR_EACH_OPTIM_OP(X)                                                                     \
    X(grad_sum_squares) X(grad_clip_scale) X(adamw_update) X(lars_update) X(ema_update)

namespace lcmae::ops {
/// Scratch (doubles) the InfoNCE loss needs for R rows of width D.
inline constexpr long infonce_scratch_size(long R, long D) { return 3 * R * D + 3 * R; }
}  // namespace lcmae::ops
