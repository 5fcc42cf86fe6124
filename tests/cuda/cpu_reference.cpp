// Wraps the CPU backend's ops (backend/cpu/*.hpp) for the CUDA parity tests; see cpu_reference.hpp.
#include "cpu_reference.hpp"

#include "lcmae/backend/cpu/ops_cpu.hpp"  // the CPU implementations (ops.hpp is only the catalogue)

namespace lcmae::test::cpuref {
namespace {
const backend::Cpu& ctx() {
    static const backend::Cpu c(2);
    return c;
}
}  // namespace

template <class T>
void gemm(bool ta, bool tb, long M, long N, long K, T alpha, const T* A, long lda, const T* B, long ldb, T beta, T* C, long ldc) {
    ops::gemm(ctx(), ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <class T>
void gemm_batched(bool ta, bool tb, long M, long N, long K, T alpha, const T* A, long lda, long sA, const T* B, long ldb, long sB, T beta, T* C, long ldc, long sC, long batch) {
    ops::gemm_batched(ctx(), ta, tb, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch);
}

template <class T>
void bias_fill(long rows, long cols, const T* bias, T* y) {
    ops::bias_fill(ctx(), rows, cols, bias, y);
}

template <class T>
void bias_grad(long rows, long cols, const T* dy, T* db) {
    ops::bias_grad(ctx(), rows, cols, dy, db);
}

template <class T>
void add(long n, const T* a, const T* b, T* y) {
    ops::add(ctx(), n, a, b, y);
}

template <class T>
void add_inplace(long n, const T* x, T* y) {
    ops::add_inplace(ctx(), n, x, y);
}

template <class T>
void scale_inplace(long n, T alpha, T* y) {
    ops::scale_inplace(ctx(), n, alpha, y);
}

template <class T>
void gelu_forward(long n, const T* x, T* y) {
    ops::gelu_forward(ctx(), n, x, y);
}

template <class T>
void gelu_backward(long n, const T* x, const T* dy, T* dx) {
    ops::gelu_backward(ctx(), n, x, dy, dx);
}

template <class T>
void relu_forward(long n, const T* x, T* y) {
    ops::relu_forward(ctx(), n, x, y);
}

template <class T>
void relu_backward(long n, const T* x, const T* dy, T* dx) {
    ops::relu_backward(ctx(), n, x, dy, dx);
}

template <class T>
void layernorm_forward(long rows, long cols, const T* x, const T* gamma, const T* beta, T eps, T* y, T* mean, T* rstd) {
    ops::layernorm_forward(ctx(), rows, cols, x, gamma, beta, eps, y, mean, rstd);
}

template <class T>
void layernorm_backward(long rows, long cols, const T* x, const T* mean, const T* rstd, const T* gamma, const T* dy, T* dx, T* dgamma, T* dbeta) {
    ops::layernorm_backward(ctx(), rows, cols, x, mean, rstd, gamma, dy, dx, dgamma, dbeta);
}

template <class T>
void batchnorm_forward_train(long rows, long cols, const T* x, const T* gamma, const T* beta, T eps, T momentum, T* y, T* mean, T* rstd, T* running_mean, T* running_var) {
    ops::batchnorm_forward_train(ctx(), rows, cols, x, gamma, beta, eps, momentum, y, mean, rstd, running_mean, running_var);
}

template <class T>
void batchnorm_forward_eval(long rows, long cols, const T* x, const T* gamma, const T* beta, T eps, const T* running_mean, const T* running_var, T* y) {
    ops::batchnorm_forward_eval(ctx(), rows, cols, x, gamma, beta, eps, running_mean, running_var, y);
}

template <class T>
void batchnorm_backward(long rows, long cols, const T* x, const T* mean, const T* rstd, const T* gamma, const T* dy, T* dx, T* dgamma, T* dbeta) {
    ops::batchnorm_backward(ctx(), rows, cols, x, mean, rstd, gamma, dy, dx, dgamma, dbeta);
}

template <class T>
void softmax_rows(long rows, long cols, const T* x, T* y) {
    ops::softmax_rows(ctx(), rows, cols, x, y);
}

template <class T>
void attention_forward(long B, long N, long H, long hd, const T* qkv, T* P, T* out) {
    ops::attention_forward(ctx(), B, N, H, hd, qkv, P, out);
}

template <class T>
void attention_backward(long B, long N, long H, long hd, const T* qkv, const T* P, const T* dout, T* dqkv, T* scratch) {
    ops::attention_backward(ctx(), B, N, H, hd, qkv, P, dout, dqkv, scratch);
}

template <class T>
void gather_rows(long B, long Nsrc, long K, long D, const T* src, const std::int64_t* idx, T* dst) {
    ops::gather_rows(ctx(), B, Nsrc, K, D, src, idx, dst);
}

template <class T>
void scatter_rows_add(long B, long Nsrc, long K, long D, const T* src, const std::int64_t* idx, T* dst) {
    ops::scatter_rows_add(ctx(), B, Nsrc, K, D, src, idx, dst);
}

template <class T>
double sum(long n, const T* x) {
    return ops::sum(ctx(), n, x);
}

template <class T>
double dot(long n, const T* a, const T* b) {
    return ops::dot(ctx(), n, a, b);
}

template <class T>
double sum_squares(long n, const T* x) {
    return ops::sum_squares(ctx(), n, x);
}

template <class T>
void mean_tokens(long B, long N, long D, const T* x, T* y) {
    ops::mean_tokens(ctx(), B, N, D, x, y);
}

template void gemm<float>(bool ta, bool tb, long M, long N, long K, float alpha, const float* A, long lda, const float* B, long ldb, float beta, float* C, long ldc);
template void gemm<double>(bool ta, bool tb, long M, long N, long K, double alpha, const double* A, long lda, const double* B, long ldb, double beta, double* C, long ldc);
template void gemm_batched<float>(bool ta, bool tb, long M, long N, long K, float alpha, const float* A, long lda, long sA, const float* B, long ldb, long sB, float beta, float* C, long ldc, long sC, long batch);
template void gemm_batched<double>(bool ta, bool tb, long M, long N, long K, double alpha, const double* A, long lda, long sA, const double* B, long ldb, long sB, double beta, double* C, long ldc, long sC, long batch);
template void bias_fill<float>(long rows, long cols, const float* bias, float* y);
template void bias_fill<double>(long rows, long cols, const double* bias, double* y);
template void bias_grad<float>(long rows, long cols, const float* dy, float* db);
template void bias_grad<double>(long rows, long cols, const double* dy, double* db);
template void add<float>(long n, const float* a, const float* b, float* y);
template void add<double>(long n, const double* a, const double* b, double* y);
template void add_inplace<float>(long n, const float* x, float* y);
template void add_inplace<double>(long n, const double* x, double* y);
template void scale_inplace<float>(long n, float alpha, float* y);
template void scale_inplace<double>(long n, double alpha, double* y);
template void gelu_forward<float>(long n, const float* x, float* y);
template void gelu_forward<double>(long n, const double* x, double* y);
template void gelu_backward<float>(long n, const float* x, const float* dy, float* dx);
template void gelu_backward<double>(long n, const double* x, const double* dy, double* dx);
template void relu_forward<float>(long n, const float* x, float* y);
template void relu_forward<double>(long n, const double* x, double* y);
template void relu_backward<float>(long n, const float* x, const float* dy, float* dx);
template void relu_backward<double>(long n, const double* x, const double* dy, double* dx);
template void layernorm_forward<float>(long rows, long cols, const float* x, const float* gamma, const float* beta, float eps, float* y, float* mean, float* rstd);
template void layernorm_forward<double>(long rows, long cols, const double* x, const double* gamma, const double* beta, double eps, double* y, double* mean, double* rstd);
template void layernorm_backward<float>(long rows, long cols, const float* x, const float* mean, const float* rstd, const float* gamma, const float* dy, float* dx, float* dgamma, float* dbeta);
template void layernorm_backward<double>(long rows, long cols, const double* x, const double* mean, const double* rstd, const double* gamma, const double* dy, double* dx, double* dgamma, double* dbeta);
template void batchnorm_forward_train<float>(long rows, long cols, const float* x, const float* gamma, const float* beta, float eps, float momentum, float* y, float* mean, float* rstd, float* running_mean, float* running_var);
template void batchnorm_forward_train<double>(long rows, long cols, const double* x, const double* gamma, const double* beta, double eps, double momentum, double* y, double* mean, double* rstd, double* running_mean, double* running_var);
template void batchnorm_forward_eval<float>(long rows, long cols, const float* x, const float* gamma, const float* beta, float eps, const float* running_mean, const float* running_var, float* y);
template void batchnorm_forward_eval<double>(long rows, long cols, const double* x, const double* gamma, const double* beta, double eps, const double* running_mean, const double* running_var, double* y);
template void batchnorm_backward<float>(long rows, long cols, const float* x, const float* mean, const float* rstd, const float* gamma, const float* dy, float* dx, float* dgamma, float* dbeta);
template void batchnorm_backward<double>(long rows, long cols, const double* x, const double* mean, const double* rstd, const double* gamma, const double* dy, double* dx, double* dgamma, double* dbeta);
template void softmax_rows<float>(long rows, long cols, const float* x, float* y);
template void softmax_rows<double>(long rows, long cols, const double* x, double* y);
template void attention_forward<float>(long B, long N, long H, long hd, const float* qkv, float* P, float* out);
template void attention_forward<double>(long B, long N, long H, long hd, const double* qkv, double* P, double* out);
template void attention_backward<float>(long B, long N, long H, long hd, const float* qkv, const float* P, const float* dout, float* dqkv, float* scratch);
template void attention_backward<double>(long B, long N, long H, long hd, const double* qkv, const double* P, const double* dout, double* dqkv, double* scratch);
template void gather_rows<float>(long B, long Nsrc, long K, long D, const float* src, const std::int64_t* idx, float* dst);
template void gather_rows<double>(long B, long Nsrc, long K, long D, const double* src, const std::int64_t* idx, double* dst);
template void scatter_rows_add<float>(long B, long Nsrc, long K, long D, const float* src, const std::int64_t* idx, float* dst);
template void scatter_rows_add<double>(long B, long Nsrc, long K, long D, const double* src, const std::int64_t* idx, double* dst);
template double sum<float>(long n, const float* x);
template double sum<double>(long n, const double* x);
template double dot<float>(long n, const float* a, const float* b);
template double dot<double>(long n, const double* a, const double* b);
template double sum_squares<float>(long n, const float* x);
template double sum_squares<double>(long n, const double* x);
template void mean_tokens<float>(long B, long N, long D, const float* x, float* y);
template void mean_tokens<double>(long B, long N, long D, const double* x, double* y);

}  // namespace lcmae::test::cpuref
