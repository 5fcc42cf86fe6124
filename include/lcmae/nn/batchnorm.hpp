// lcmae/nn/batchnorm.hpp - BatchNorm1d over (rows, features): train mode uses batch statistics
// and updates the running buffers (momentum 0.1, unbiased var, PyTorch's convention); eval mode
// uses the running buffers. The running buffers are arena entries of kind Buffer, so checkpoints
// and the EMA target see them.
#pragma once

#include <string>

#include "lcmae/backend/ops.hpp"
#include "lcmae/core/arena.hpp"
#include "lcmae/dist/reducer.hpp"
#include "lcmae/nn/init.hpp"

namespace lcmae::nn {

template <class T, class Backend = backend::Cpu>
struct BatchNorm1d {
    using Ptr = dptr<Backend, T>;
    using CPtr = dptr<Backend, const T>;
    long dim = 0;
    bool affine = true;
    T eps = T(1e-5), momentum = T(0.1);
    Slot g, b, running_mean, running_var;
    std::string name;

    BatchNorm1d() = default;
    BatchNorm1d(ParamArena<T, Backend>& P, std::string prefix, long d, bool with_affine = true, T epsilon = T(1e-5),
                T mom = T(0.1))
        : dim(d), affine(with_affine), eps(epsilon), momentum(mom), name(std::move(prefix)) {
        LCMAE_CHECK(dim > 0, "BatchNorm1d '" << name << "' needs a positive width, got " << dim);
        if (affine) {
            g = P.add(name + ".weight", Shape{dim});
            b = P.add(name + ".bias", Shape{dim});
        }
        running_mean = P.add_buffer(name + ".running_mean", Shape{dim});
        running_var = P.add_buffer(name + ".running_var", Shape{dim});
    }
    template <class HostParams>
    void init(HostParams& P, std::uint64_t) const {
        if (affine) {
            init_constant(P.value(g), dim, T(1));
            init_constant(P.value(b), dim, T(0));
        }
        init_constant(P.value(running_mean), dim, T(0));
        init_constant(P.value(running_var), dim, T(1));
    }
    CPtr gamma(const ParamArena<T, Backend>& P) const { return affine ? P.value(g) : nullptr; }
    CPtr beta(const ParamArena<T, Backend>& P) const { return affine ? P.value(b) : nullptr; }

    /// Train mode: saves mean and rstd (dim values each); updates the running buffers.
    void forward_train(const Backend& ctx, ParamArena<T, Backend>& P, CPtr x, Ptr y, Ptr mean, Ptr rstd,
                       long rows) const {
        batchnorm_forward_train(ctx, rows, dim, x, gamma(P), beta(P), eps, momentum, y, mean, rstd,
                                     P.value(running_mean), P.value(running_var));
    }
    void forward_eval(const Backend& ctx, const ParamArena<T, Backend>& P, CPtr x, Ptr y, long rows) const {
        batchnorm_forward_eval(ctx, rows, dim, x, gamma(P), beta(P), eps, P.value(running_mean),
                                    P.value(running_var), y);
    }
    /// SyncBatchNorm (data-parallel training): the same train-mode forward with the statistics of
    /// the global batch. `sums` is 2 dim + 1 doubles of backend scratch; the reducer sums this
    /// rank's column sums over every rank between the two halves.
    void forward_train(const Backend& ctx, ParamArena<T, Backend>& P, CPtr x, Ptr y, Ptr mean, Ptr rstd, long rows,
                       const dist::Reducer<Backend>& group, dptr<Backend, double> sums) const {
        batchnorm_local_sums(ctx, rows, dim, x, sums);
        group.sum(ctx, 2 * dim + 1, sums, "SyncBatchNorm statistics (forward)");
        batchnorm_forward_global(ctx, rows, dim, dptr<Backend, const double>(sums), x, gamma(P), beta(P), eps, momentum, y,
                                 mean, rstd, P.value(running_mean), P.value(running_var));
    }
    /// SyncBatchNorm backward: dx as the global batch's BatchNorm gives it (in this rank's loss
    /// scale); dgamma/dbeta accumulate this rank's share (the gradient all-reduce averages them).
    void backward(const Backend& ctx, ParamArena<T, Backend>& P, CPtr x, CPtr mean, CPtr rstd, CPtr dy, Ptr dx, long rows,
                  const dist::Reducer<Backend>& group, dptr<Backend, double> sums) const {
        batchnorm_backward_local_sums(ctx, rows, dim, x, mean, rstd, dy, sums, affine ? P.grad(g) : nullptr,
                                      affine ? P.grad(b) : nullptr);
        group.sum(ctx, 2 * dim + 1, sums, "SyncBatchNorm gradient sums (backward)");
        batchnorm_backward_global(ctx, rows, dim, dptr<Backend, const double>(sums), x, mean, rstd, gamma(P), dy, dx);
    }
    /// Train-mode backward: dx written, dgamma/dbeta accumulate.
    void backward(const Backend& ctx, ParamArena<T, Backend>& P, CPtr x, CPtr mean, CPtr rstd,
                  CPtr dy, Ptr dx, long rows) const {
        batchnorm_backward(ctx, rows, dim, x, mean, rstd, gamma(P), dy, dx, affine ? P.grad(g) : nullptr,
                                affine ? P.grad(b) : nullptr);
    }
};

}  // namespace lcmae::nn
