// lcmae/eval/linear_probe.hpp - SPEC 4's linear probe (MAE's protocol) on cached features.
//
//   head = BatchNorm1d(D, affine = false, eps 1e-6) then Linear(D, classes), weight N(0, 0.01),
//   bias 0; softmax cross-entropy; LARS (momentum 0.9, trust 0.001, wd 0; the 1-D bias skips the
//   trust ratio), lr = blr * batch / 256 with blr 0.1, per-iteration linear warm-up then half cosine
//   (optim::WarmupCosine). MAE trains 90 epochs with 10 of warm-up at batch 16384 on ImageNet;
//   epochs and warm-up are run-time values here (scale them down for short runs).
//
// The encoder is frozen, so its features are computed once (eval/features.hpp) and the probe trains
// on them: every epoch shuffles the train rows (counter-based RNG, seed) and drops the last partial
// batch (as MAE's loader), BatchNorm uses batch statistics while training and its running
// statistics for the test split. Only the Linear layer has parameters (the BN has no affine part
// and its input is constant), so the backward is one Linear backward, no BatchNorm backward.
//
// Backends: the BN, the Linear and LARS run as ops on `Backend`. The loss is the one piece of host
// code: the logits (batch x classes) are downloaded, eval::cross_entropy computes the loss and its
// gradient on the host, and the gradient is uploaded (documented in eval/cross_entropy.hpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <numeric>
#include <type_traits>
#include <vector>

#include "lcmae/core/arena.hpp"
#include "lcmae/core/error.hpp"
#include "lcmae/core/rng.hpp"
#include "lcmae/eval/cross_entropy.hpp"
#include "lcmae/eval/features.hpp"
#include "lcmae/nn/batchnorm.hpp"
#include "lcmae/nn/init.hpp"
#include "lcmae/nn/linear.hpp"
#include "lcmae/optim/grad_norm.hpp"
#include "lcmae/optim/lars.hpp"
#include "lcmae/optim/schedule.hpp"

namespace lcmae::eval {

struct LinearProbeConfig {
    long epochs = 90;            // MAE: 90
    double warmup_epochs = 10;   // MAE: 10
    long batch = 256;            // lr = blr * batch / 256
    double blr = 0.1;
    double min_lr = 0.0;
    optim::LarsConfig lars{};    // momentum 0.9, trust 0.001, weight decay 0
    double label_smoothing = 0.0;
    double bn_eps = 1e-6;
    double head_init_std = 0.01;
    std::uint64_t seed = 0;

    void validate() const {
        LCMAE_CHECK(epochs >= 1, "linear probe: epochs must be >= 1, got " << epochs);
        LCMAE_CHECK(warmup_epochs >= 0 && warmup_epochs <= double(epochs),
                    "linear probe: warm-up epochs " << warmup_epochs << " must lie in [0, " << epochs << "]");
        LCMAE_CHECK(batch >= 2, "linear probe: batch must be >= 2 (BatchNorm needs statistics), got " << batch);
        LCMAE_CHECK(blr > 0, "linear probe: blr must be positive, got " << blr);
    }
};

struct LinearProbeResult {
    double top1 = 0, top5 = 0;  // percent, on the test split
    bool has_top5 = false;      // more than 5 classes
    double train_loss = 0;      // mean loss of the last epoch
    double lr = 0;              // the peak lr (blr * batch / 256)
    long steps = 0, batch = 0, epochs = 0;
};

/// The probe itself (BN without affine + Linear), trainable one batch at a time.
template <class T = float, class Backend = backend::Cpu>
class LinearProbe {
public:
    LinearProbe(const Backend& ctx, long dim, int classes, long max_batch, const LinearProbeConfig& cfg = {})
        : dim_(dim), classes_(classes), max_batch_(max_batch), cfg_(cfg),
          bn_(P_, "bn", dim, /*affine=*/false, T(cfg.bn_eps)), head_(P_, "head", dim, classes) {
        LCMAE_CHECK(max_batch >= 1 && classes >= 2, "LinearProbe: needs max_batch >= 1 and >= 2 classes");
        P_.allocate();
        {  // host initialisation, one upload
            auto host = host_layout(P_);
            bn_.init(host, cfg.seed);
            nn::init_normal(host.value(head_.w), long(classes) * dim, cfg.head_init_std, nn::init_rng(cfg.seed, "head.weight"));
            nn::init_constant(host.value(head_.b), long(classes), T(0));
            upload(ctx, static_cast<long>(P_.planned_size()), host.values().data(), P_.values().data());
        }
        lars_ = std::make_unique<optim::Lars<T, Backend>>(P_, cfg.lars);
        x_.resize(static_cast<std::size_t>(max_batch * dim));
        xn_.resize(static_cast<std::size_t>(max_batch * dim));
        mean_.resize(static_cast<std::size_t>(dim));
        rstd_.resize(static_cast<std::size_t>(dim));
        logits_.resize(static_cast<std::size_t>(max_batch * classes));
        dlogits_.resize(static_cast<std::size_t>(max_batch * classes));
        host_logits_.resize(static_cast<std::size_t>(max_batch * classes));
        host_dlogits_.resize(static_cast<std::size_t>(max_batch * classes));
    }
    LinearProbe(const LinearProbe&) = delete;
    LinearProbe& operator=(const LinearProbe&) = delete;

    /// One training step on B rows of host features x (B, dim) with labels; returns the loss.
    double train_step(const Backend& ctx, const float* x, const int* labels, long B, double lr) {
        LCMAE_CHECK(B >= 2 && B <= max_batch_, "LinearProbe: training batch " << B << " is outside [2, " << max_batch_ << "]");
        put(ctx, x, B);
        bn_.forward_train(ctx, P_, CPtr(x_.data()), xn_.data(), mean_.data(), rstd_.data(), B);
        head_.forward(ctx, P_, CPtr(xn_.data()), logits_.data(), B);
        download(ctx, B * classes_, CPtr(logits_.data()), host_logits_.data());
        const double loss = cross_entropy(B, classes_, host_logits_.data(), labels, cfg_.label_smoothing, host_dlogits_.data());
        upload(ctx, B * classes_, static_cast<const T*>(host_dlogits_.data()), dlogits_.data());
        optim::zero_grad(ctx, P_);
        head_.backward(ctx, P_, CPtr(xn_.data()), CPtr(dlogits_.data()), Ptr(nullptr), B);
        lars_->step(ctx, lr);
        return loss;
    }
    /// Eval-mode logits (BN running statistics) of B rows into host out (B, classes).
    void logits(const Backend& ctx, const float* x, long B, T* out) {
        LCMAE_CHECK(B >= 1 && B <= max_batch_, "LinearProbe: batch " << B << " is outside [1, " << max_batch_ << "]");
        put(ctx, x, B);
        bn_.forward_eval(ctx, P_, CPtr(x_.data()), xn_.data(), B);
        head_.forward(ctx, P_, CPtr(xn_.data()), logits_.data(), B);
        download(ctx, B * classes_, CPtr(logits_.data()), out);
    }

    long dim() const noexcept { return dim_; }
    int classes() const noexcept { return classes_; }
    long max_batch() const noexcept { return max_batch_; }
    ParamArena<T, Backend>& params() noexcept { return P_; }

private:
    using Ptr = dptr<Backend, T>;
    using CPtr = dptr<Backend, const T>;

    void put(const Backend& ctx, const float* x, long B) {
        if constexpr (std::is_same_v<T, float>) {
            upload(ctx, B * dim_, x, x_.data());
        } else {
            staging_.assign(x, x + B * dim_);
            upload(ctx, B * dim_, static_cast<const T*>(staging_.data()), x_.data());
        }
    }

    long dim_;
    int classes_;
    long max_batch_;
    LinearProbeConfig cfg_;
    ParamArena<T, Backend> P_;
    nn::BatchNorm1d<T, Backend> bn_;
    nn::Linear<T, Backend> head_;
    std::unique_ptr<optim::Lars<T, Backend>> lars_;
    dbuffer<Backend, T> x_, xn_, mean_, rstd_, logits_, dlogits_;
    std::vector<T> host_logits_, host_dlogits_, staging_;
};

/// Called after every epoch with (epoch, mean train loss, lr at its last step).
using ProbeProgress = std::function<void(long epoch, double loss, double lr)>;

/// Trains the probe on `train` and reports top-1 / top-5 on `test`.
template <class T = float, class Backend = backend::Cpu>
LinearProbeResult linear_probe(const Backend& ctx, const FeatureSet& train, const FeatureSet& test,
                               const LinearProbeConfig& cfg = {}, const ProbeProgress& progress = {}) {
    cfg.validate();
    train.validate("linear probe train features");
    test.validate("linear probe test features");
    LCMAE_CHECK(train.dim == test.dim, "linear probe: train features have width " << train.dim << ", test features " << test.dim);
    LCMAE_CHECK(train.n >= 2, "linear probe: needs at least 2 train rows, got " << train.n);
    const int C = std::max(train.num_classes, test.num_classes);
    const long batch = std::min(cfg.batch, train.n);
    const long ipe = train.n / batch;  // drop the last partial batch
    LinearProbe<T, Backend> probe(ctx, train.dim, C, std::max(batch, std::min<long>(test.n, 1024)), cfg);
    const auto sched = optim::WarmupCosine::from_blr(cfg.blr, batch, cfg.min_lr, cfg.warmup_epochs, double(cfg.epochs));
    LinearProbeResult res;
    res.lr = sched.lr_max;
    res.batch = batch;
    res.epochs = cfg.epochs;
    std::vector<long> order(static_cast<std::size_t>(train.n));
    std::vector<float> xb(static_cast<std::size_t>(batch * train.dim));
    std::vector<int> yb(static_cast<std::size_t>(batch));
    for (long epoch = 0; epoch < cfg.epochs; ++epoch) {
        std::iota(order.begin(), order.end(), 0L);
        Rng rng(cfg.seed, 0x11e4ull + static_cast<std::uint64_t>(epoch));
        for (long i = train.n - 1; i > 0; --i)  // Fisher-Yates
            std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(rng.below(static_cast<std::uint64_t>(i + 1)))]);
        double loss_sum = 0, lr = 0;
        for (long it = 0; it < ipe; ++it) {
            for (long r = 0; r < batch; ++r) {
                const long src = order[static_cast<std::size_t>(it * batch + r)];
                std::copy(train.row(src), train.row(src) + train.dim, xb.data() + r * train.dim);
                yb[static_cast<std::size_t>(r)] = train.labels[static_cast<std::size_t>(src)];
            }
            lr = sched.at(epoch, it, ipe);
            loss_sum += probe.train_step(ctx, xb.data(), yb.data(), batch, lr);
            ++res.steps;
        }
        res.train_loss = loss_sum / double(ipe);
        if (progress) progress(epoch, res.train_loss, lr);
    }
    long c1 = 0, c5 = 0;
    std::vector<T> out(static_cast<std::size_t>(probe.max_batch() * C));
    for (long first = 0; first < test.n; first += probe.max_batch()) {
        const long B = std::min(probe.max_batch(), test.n - first);
        probe.logits(ctx, test.row(first), B, out.data());
        for (long r = 0; r < B; ++r)
            topk_hits(C, out.data() + r * C, test.labels[static_cast<std::size_t>(first + r)], c1, c5);
    }
    res.top1 = 100.0 * double(c1) / double(test.n);
    res.top5 = 100.0 * double(c5) / double(test.n);
    res.has_top5 = C > 5;
    return res;
}

}  // namespace lcmae::eval
