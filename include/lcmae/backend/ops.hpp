// lcmae/backend/ops.hpp - THE op catalogue. Every op's contract is written here once; each backend
// implements the same names (backend/cpu/*.hpp for backend::Cpu; CUDA in .cuh headers).
//
// Conventions for every op:
//   * Tensors are dense row-major arrays of the scalar T (float, or double for gradient checks).
//     "(R, C)" means R rows of C contiguous values; leading dimensions (ld*) are in elements.
//   * The first argument is the backend context (threads, stream).
//   * Outputs are written (=) unless the contract says "accumulates" (+=). Parameter gradients
//     always accumulate, so gradient accumulation and a shared encoder over two views need no
//     special case; activation gradients are written unless stated.
//   * No op allocates: scratch lives in the caller's activation arena.
//   * Ops validate only what is cheap (sizes > 0); layers validate shapes against their plans.
//
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
//   relu_forward / relu_backward                 y = max(x, 0); dx = dy * (x > 0)
// Normalisation
//   layernorm_forward(ctx, rows, cols, x, gamma, beta, eps, y, mean, rstd)
//       per row: mean, rstd = 1/sqrt(biased var + eps) saved for backward; y = (x-mean) rstd g + b
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
// Attention (multi-head, batched over batch x heads)
//   attention_forward(ctx, B, N, H, hd, qkv, P, out)
//       qkv (B*N, 3*H*hd): q, k, v are consecutive H*hd blocks, each split into contiguous heads.
//       P (B, H, N, N) = softmax(q k^T / sqrt(hd)) saved; out (B*N, H*hd) = P v.
//   attention_backward(ctx, B, N, H, hd, qkv, P, dout, dqkv)       dqkv written
//   softmax_rows(ctx, rows, cols, x, y)                              y = softmax over each row
// Tokens
//   gather_rows(ctx, B, Nsrc, K, D, src, idx, dst)     dst[b, k, :] = src[b, idx[b, k], :]
//   scatter_rows_add(ctx, B, Nsrc, K, D, src, idx, dst) dst[b, idx[b, k], :] += src[b, k, :]
// Reductions
//   sum(ctx, n, x) -> double; dot(ctx, n, a, b) -> double; sum_squares(ctx, n, x) -> double
//   mean_tokens(ctx, B, N, D, x, y)                   y[b, :] = mean_n x[b, n, :]
#pragma once

#include "lcmae/backend/cpu.hpp"
#include "lcmae/backend/cpu/ops_cpu.hpp"
