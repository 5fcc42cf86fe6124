// The CPU backend's ops as plain functions, for the CUDA parity tests. Defined (and instantiated for
// float and double) in cpu_reference.cpp, compiled by the host compiler, so the nvcc-compiled test
// never includes Eigen or OpenMP. Same parameters as the ops minus the context (host pointers).
#pragma once

#include <cstdint>

namespace lcmae::test::cpuref {

template <class T>
void gemm(bool ta, bool tb, long M, long N, long K, T alpha, const T* A, long lda, const T* B, long ldb, T beta, T* C,
          long ldc);
template <class T>
void gemm_batched(bool ta, bool tb, long M, long N, long K, T alpha, const T* A, long lda, long sA, const T* B,
                  long ldb, long sB, T beta, T* C, long ldc, long sC, long batch);
template <class T>
void bias_fill(long rows, long cols, const T* bias, T* y);
template <class T>
void bias_grad(long rows, long cols, const T* dy, T* db);
template <class T>
void add(long n, const T* a, const T* b, T* y);
template <class T>
void add_inplace(long n, const T* x, T* y);
template <class T>
void scale_inplace(long n, T alpha, T* y);
template <class T>
void gelu_forward(long n, const T* x, T* y);
template <class T>
void gelu_backward(long n, const T* x, const T* dy, T* dx);
template <class T>
void relu_forward(long n, const T* x, T* y);
template <class T>
void relu_backward(long n, const T* x, const T* dy, T* dx);
template <class T>
void layernorm_forward(long rows, long cols, const T* x, const T* gamma, const T* beta, T eps, T* y, T* mean, T* rstd);
template <class T>
void layernorm_backward(long rows, long cols, const T* x, const T* mean, const T* rstd, const T* gamma, const T* dy,
                        T* dx, T* dgamma, T* dbeta);
template <class T>
void batchnorm_forward_train(long rows, long cols, const T* x, const T* gamma, const T* beta, T eps, T momentum, T* y,
                             T* mean, T* rstd, T* running_mean, T* running_var);
template <class T>
void batchnorm_forward_eval(long rows, long cols, const T* x, const T* gamma, const T* beta, T eps,
                            const T* running_mean, const T* running_var, T* y);
template <class T>
void batchnorm_backward(long rows, long cols, const T* x, const T* mean, const T* rstd, const T* gamma, const T* dy,
                        T* dx, T* dgamma, T* dbeta);
template <class T>
void softmax_rows(long rows, long cols, const T* x, T* y);
template <class T>
void attention_forward(long B, long N, long H, long hd, const T* qkv, T* P, T* out);
template <class T>
void attention_backward(long B, long N, long H, long hd, const T* qkv, const T* P, const T* dout, T* dqkv, T* scratch);
template <class T>
void gather_rows(long B, long Nsrc, long K, long D, const T* src, const std::int64_t* idx, T* dst);
template <class T>
void scatter_rows_add(long B, long Nsrc, long K, long D, const T* src, const std::int64_t* idx, T* dst);
template <class T>
double sum(long n, const T* x);
template <class T>
double dot(long n, const T* a, const T* b);
template <class T>
double sum_squares(long n, const T* x);
template <class T>
void mean_tokens(long B, long N, long D, const T* x, T* y);

}  // namespace lcmae::test::cpuref
