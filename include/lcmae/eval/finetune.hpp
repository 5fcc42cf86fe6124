// lcmae/eval/finetune.hpp - SPEC 4's fine-tuning protocol (MAE's recipe, its models_vit.py with
// global_pool and main_finetune.py), end to end on a labelled dataset.
//
//   model: the ViT encoder on all tokens WITHOUT its final `norm` (MAE deletes it with
//     global_pool), the mean of the L patch tokens, LayerNorm `fc_norm`, Linear `head` (weight
//     N(0, 2e-5), bias 0). Drop path linspace(0, rate, depth) on every residual branch
//     (models::drop_path_scales, keyed by seed and step).
//   optimiser: AdamW (0.9, 0.999), weight decay 0.05 except 1-D tensors, biases and cls_token
//     (MAE's param_groups_lrd no_weight_decay_list); layer-wise lr decay (optim/layer_decay.hpp:
//     scale decay^(n - id), n = depth + 1); lr = blr * batch / 256, per-iteration linear warm-up
//     then half cosine to min_lr (optim::WarmupCosine); no gradient clipping (MAE's default).
//   data (train): RandomResizedCrop(scale 0.08-1, ratio 3/4-4/3, bicubic) + horizontal flip, then
//     optional RandAugment, normalisation, optional RandomErasing (data/randaugment.hpp); each
//     sample's draws are keyed by (seed, epoch, index). Mixup / CutMix with soft targets and label
//     smoothing folded in (eval/mixup.hpp); without mixing, the targets are the smoothed one-hots
//     (MAE's LabelSmoothingCrossEntropy). The last partial batch is dropped, as MAE's loader.
//   loss: soft-target cross-entropy on the host (eval/cross_entropy.hpp: the (batch, classes)
//     logits are downloaded, their gradient uploaded).
//   evaluation: the test split prepared without augmentation (eval::ImagePrep), drop path off,
//     the final weights (no EMA): top-1, and top-5 with more than 5 classes.
//
// Everything that touches tensors runs as ops on `Backend`; host work is the image preparation
// (OpenMP over the batch), mixup, and the loss.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <omp.h>

#include "lcmae/core/arena.hpp"
#include "lcmae/core/error.hpp"
#include "lcmae/core/rng.hpp"
#include "lcmae/data/dataset.hpp"
#include "lcmae/data/randaugment.hpp"
#include "lcmae/data/transforms.hpp"
#include "lcmae/eval/cross_entropy.hpp"
#include "lcmae/eval/features.hpp"
#include "lcmae/eval/mixup.hpp"
#include "lcmae/io/checkpoint.hpp"
#include "lcmae/models/vit_encoder.hpp"
#include "lcmae/nn/init.hpp"
#include "lcmae/nn/layernorm.hpp"
#include "lcmae/nn/linear.hpp"
#include "lcmae/optim/adamw.hpp"
#include "lcmae/optim/grad_norm.hpp"
#include "lcmae/optim/layer_decay.hpp"
#include "lcmae/optim/schedule.hpp"

namespace lcmae::eval {

struct FineTuneConfig {
    long epochs = 100;           // MAE ViT-B: 100
    double warmup_epochs = 5;    // SPEC 4
    long batch = 256;            // MAE: 1024 (ViT-B); lr = blr * batch / 256
    double blr = 1e-3;           // MAE ViT-B: 5e-4; 1e-3 is common for small ViTs
    double min_lr = 1e-6;
    double layer_decay = 0.75;   // SPEC 4: 0.75 for small models (0.65 ViT-B/L)
    double weight_decay = 0.05;
    double beta1 = 0.9, beta2 = 0.999;
    double drop_path = 0.1;      // the rate of the last block
    MixupConfig mix{};           // mixup 0.8, cutmix 1.0, prob 1, switch 0.5, label smoothing 0.1
    int randaug_n = 2;           // RandAugment ops per image (0 = off)
    double randaug_m = 9;        // its magnitude (MAE: rand-m9-mstd0.5-inc1)
    double reprob = 0.25;        // random erasing probability (0 = off)
    double crop_scale_lo = 0.08; // RandomResizedCrop area range (timm's default (0.08, 1))
    double head_init_std = 2e-5;
    std::uint64_t seed = 0;
    std::size_t limit_train = 0, limit_test = 0;  // first N images (0 = all)
    long eval_every = 0;         // also score the test split every this many epochs (0: at the end only)
    int threads = 0;             // host threads preparing images (0 = all)

    void validate() const {
        LCMAE_CHECK(epochs >= 1, "fine-tune: epochs must be >= 1, got " << epochs);
        LCMAE_CHECK(warmup_epochs >= 0 && warmup_epochs <= double(epochs),
                    "fine-tune: warm-up epochs " << warmup_epochs << " must lie in [0, " << epochs << "]");
        LCMAE_CHECK(batch >= 1, "fine-tune: batch must be >= 1, got " << batch);
        LCMAE_CHECK(blr > 0 && min_lr >= 0, "fine-tune: blr must be positive and min_lr >= 0");
        LCMAE_CHECK(layer_decay > 0 && layer_decay <= 1, "fine-tune: layer decay must lie in (0, 1], got " << layer_decay);
        LCMAE_CHECK(drop_path >= 0 && drop_path < 1, "fine-tune: drop path must lie in [0, 1), got " << drop_path);
        LCMAE_CHECK(randaug_n >= 0 && randaug_m >= 0 && randaug_m <= 10, "fine-tune: RandAugment needs n >= 0 and m in [0, 10]");
        LCMAE_CHECK(reprob >= 0 && reprob <= 1, "fine-tune: random erasing probability must lie in [0, 1], got " << reprob);
        LCMAE_CHECK(crop_scale_lo > 0 && crop_scale_lo <= 1, "fine-tune: crop scale must lie in (0, 1], got " << crop_scale_lo);
        mix.validate();
    }
};

/// The classifier: encoder (no final norm) -> mean of patch tokens -> fc_norm -> head.
template <class T = float, class Backend = backend::Cpu>
class FineTuneModel {
public:
    using Ptr = dptr<Backend, T>;
    using CPtr = dptr<Backend, const T>;
    using Ids = dptr<Backend, const std::int64_t>;

    /// drop_path: plan drop-path scales (set them with encoder().set_drop_path each step).
    FineTuneModel(const Backend& ctx, const vit::VitDims& dims, int classes, long max_batch, bool drop_path)
        : dims_(dims), classes_(classes), max_batch_(max_batch) {
        LCMAE_CHECK(classes >= 2 && max_batch >= 1, "FineTuneModel: needs >= 2 classes and max_batch >= 1");
        encoder_ = std::make_unique<models::VitEncoder<T, Backend>>(
            P_, dims, models::EncoderOptions{.max_batch = max_batch, .final_norm = false, .drop_path = drop_path});
        fc_norm_ = nn::LayerNorm<T, Backend>(P_, "fc_norm", dims.dim);
        head_ = nn::Linear<T, Backend>(P_, "head", dims.dim, classes);
        P_.allocate();
        const long D = dims.dim, B = max_batch;
        pooled_ = A_.reserve(B * D);
        normed_ = A_.reserve(B * D);
        mean_ = A_.reserve(B);
        rstd_ = A_.reserve(B);
        logits_ = A_.reserve(B * classes);
        dlogits_ = A_.reserve(B * classes);
        dnormed_ = A_.reserve(B * D);
        dpooled_ = A_.reserve(B * D);
        dtokens_ = A_.reserve(B * (1 + dims.tokens()) * D);
        images_ = A_.reserve(B * dims.channels * dims.image * dims.image);
        A_.allocate();
        (void)ctx;
    }
    FineTuneModel(const FineTuneModel&) = delete;
    FineTuneModel& operator=(const FineTuneModel&) = delete;

    /// SPEC 1's encoder initialisation, fc_norm (1, 0), head N(0, head_std) with bias 0; one upload.
    void init_random(const Backend& ctx, std::uint64_t seed, double head_std = 2e-5) {
        auto host = host_layout(P_);
        encoder_->init(host, seed);
        fc_norm_.init(host, seed);
        nn::init_normal(host.value(head_.w), long(classes_) * dims_.dim, head_std, nn::init_rng(seed, "head.weight"));
        nn::init_constant(host.value(head_.b), long(classes_), T(0));
        upload(ctx, static_cast<long>(P_.planned_size()), host.values().data(), P_.values().data());
    }
    /// The encoder's tensors from a checkpoint by timm names under `prefix` ("" online, "target."
    /// the EMA target); every encoder tensor must be there (fc_norm and head keep their values).
    io::LoadReport load_encoder(const Backend& ctx, const std::filesystem::path& path, std::string_view prefix = "") {
        LCMAE_CHECK(std::filesystem::exists(path), "checkpoint file '" << path.string() << "' does not exist");
        auto rep = io::load_params(ctx, path, P_, prefix, io::Strictness::Partial);
        std::string missing;
        for (const auto& m : rep.missing)
            if (!m.starts_with("fc_norm.") && !m.starts_with("head.")) missing += (missing.empty() ? "" : ", ") + std::string(prefix) + m;
        LCMAE_CHECK(missing.empty(), "checkpoint '" << path.string() << "' lacks encoder tensors: " << missing);
        return rep;
    }

    /// Upload B prepared images (host floats, B x channels x image^2).
    void put_images(const Backend& ctx, const float* host, long B) {
        const long n = B * dims_.channels * dims_.image * dims_.image;
        if constexpr (std::is_same_v<T, float>) {
            upload(ctx, n, host, A_.at(images_));
        } else {
            staging_.assign(host, host + n);
            upload(ctx, n, static_cast<const T*>(staging_.data()), A_.at(images_));
        }
    }
    /// Logits (B, classes) of the images last put.
    CPtr forward(const Backend& ctx, long B) { return forward(ctx, CPtr(A_.at(images_)), B); }
    CPtr forward(const Backend& ctx, CPtr images, long B) {
        LCMAE_CHECK(B >= 1 && B <= max_batch_, "FineTuneModel: batch " << B << " is outside [1, " << max_batch_ << "]");
        const long D = dims_.dim, N = 1 + dims_.tokens();
        CPtr x = encoder_->forward(ctx, P_, images, B, Ids(nullptr), 0);
        pool_tokens(ctx, B, N, D, x, CPtr(nullptr), false, A_.at(pooled_));
        fc_norm_.forward(ctx, P_, A_.at(pooled_), A_.at(normed_), A_.at(mean_), A_.at(rstd_), B);
        head_.forward(ctx, P_, A_.at(normed_), A_.at(logits_), B);
        B_ = B;
        return A_.at(logits_);
    }
    /// dlogits (B, classes) of the last forward; accumulates every parameter gradient.
    void backward(const Backend& ctx, CPtr dlogits) {
        LCMAE_CHECK(B_ > 0, "FineTuneModel: backward before forward");
        const long B = B_, D = dims_.dim, N = 1 + dims_.tokens();
        head_.backward(ctx, P_, A_.at(normed_), dlogits, A_.at(dnormed_), B);
        fill(ctx, B * D, T(0), A_.at(dpooled_));
        fc_norm_.backward(ctx, P_, A_.at(pooled_), A_.at(mean_), A_.at(rstd_), A_.at(dnormed_), A_.at(dpooled_), B);
        fill(ctx, B * N * D, T(0), A_.at(dtokens_));
        unpool_tokens_add(ctx, B, N, D, A_.at(dpooled_), CPtr(nullptr), false, A_.at(dtokens_));
        encoder_->backward(ctx, P_, A_.at(dtokens_));
    }
    /// Host dlogits (B, classes) uploaded, then backward.
    void backward_host(const Backend& ctx, const T* host_dlogits) {
        upload(ctx, B_ * classes_, host_dlogits, A_.at(dlogits_));
        backward(ctx, A_.at(dlogits_));
    }

    const vit::VitDims& dims() const noexcept { return dims_; }
    int classes() const noexcept { return classes_; }
    long max_batch() const noexcept { return max_batch_; }
    ParamArena<T, Backend>& params() noexcept { return P_; }
    models::VitEncoder<T, Backend>& encoder() noexcept { return *encoder_; }

private:
    vit::VitDims dims_;
    int classes_;
    long max_batch_;
    ParamArena<T, Backend> P_;
    ActivationArena<T, Backend> A_;
    std::unique_ptr<models::VitEncoder<T, Backend>> encoder_;
    nn::LayerNorm<T, Backend> fc_norm_;
    nn::Linear<T, Backend> head_;
    Slot pooled_, normed_, mean_, rstd_, logits_, dlogits_, dnormed_, dpooled_, dtokens_, images_;
    std::vector<T> staging_;
    long B_ = 0;
};

struct FineTuneResult {
    double top1 = 0, top5 = 0;  // percent, on the test split
    bool has_top5 = false;
    double train_loss = 0;      // mean loss of the last epoch
    double lr = 0;              // peak lr
    long steps = 0, batch = 0, epochs = 0;
    std::size_t n_train = 0, n_test = 0;
    double train_seconds = 0, images_per_second = 0;  // training steps only (no evaluation)
};

/// After every epoch: (epoch, mean loss, lr at its last step, training images/s of the epoch,
/// test top-1 or a negative value when the test split was not scored this epoch).
using FineTuneProgress = std::function<void(long epoch, double loss, double lr, double images_per_s, double top1)>;

namespace detail {
/// One training sample: crop + flip, RandAugment, normalise, erase; draws keyed by (seed, epoch, index).
inline void prepare_train_image(const data::Dataset& ds, std::size_t i, const FineTuneConfig& cfg, const ImagePrep& prep,
                                long epoch, float* out) {
    Rng rng(cfg.seed, stream_id(0xf17e7u, static_cast<std::uint64_t>(epoch), i));
    const data::RandomResizedCrop rrc{.size = prep.image, .scale_lo = cfg.crop_scale_lo};
    cv::Mat img = rrc(ds.image(i), rng);
    if (cfg.randaug_n > 0) img = data::RandAugment{cfg.randaug_n, cfg.randaug_m}(img, rng);
    data::to_chw(img, prep.channels, prep.norm, out);
    data::RandomErasing{.p = cfg.reprob}(out, prep.channels, prep.image, prep.image, rng);
}
}  // namespace detail

/// Top-1 / top-5 (percent) of the model on the first n images of ds, prepared without augmentation.
template <class T, class Backend>
std::pair<double, double> finetune_accuracy(const Backend& ctx, FineTuneModel<T, Backend>& model, const data::Dataset& ds,
                                            const ImagePrep& prep, std::size_t n, int threads) {
    model.encoder().set_drop_path(ctx, nullptr, 0);
    const long C = model.classes(), MB = model.max_batch();
    std::vector<float> host(static_cast<std::size_t>(MB) * prep.floats());
    std::vector<T> logits(static_cast<std::size_t>(MB * C));
    long c1 = 0, c5 = 0;
    for (std::size_t first = 0; first < n; first += static_cast<std::size_t>(MB)) {
        const long B = static_cast<long>(std::min<std::size_t>(static_cast<std::size_t>(MB), n - first));
        detail::prepare_images(ds, prep, first, static_cast<std::size_t>(B), host.data(), threads);
        model.put_images(ctx, host.data(), B);
        download(ctx, B * C, model.forward(ctx, B), logits.data());
        for (long r = 0; r < B; ++r) topk_hits(C, logits.data() + r * C, ds.label(first + static_cast<std::size_t>(r)), c1, c5);
    }
    return {100.0 * double(c1) / double(n), 100.0 * double(c5) / double(n)};
}

/// Fine-tunes `model` (initialised or loaded by the caller) on `train`, scores it on `test`.
template <class T = float, class Backend = backend::Cpu>
FineTuneResult fine_tune(const Backend& ctx, FineTuneModel<T, Backend>& model, const data::Dataset& train,
                         const data::Dataset& test, const ImagePrep& prep, const FineTuneConfig& cfg,
                         const FineTuneProgress& progress = {}) {
    cfg.validate();
    const vit::VitDims& dims = model.dims();
    LCMAE_CHECK(prep.image == dims.image && prep.channels == dims.channels,
                "fine-tune: images are prepared at " << prep.image << " px x " << prep.channels << " channels but the encoder takes "
                                                     << dims.image << " px x " << dims.channels);
    LCMAE_CHECK(train.num_classes() >= 2 && train.num_classes() <= model.classes() && test.num_classes() <= model.classes(),
                "fine-tune: the datasets have " << train.num_classes() << " / " << test.num_classes() << " classes, the head "
                                                << model.classes());
    const std::size_t ntr = detail::limited(train, cfg.limit_train), nte = detail::limited(test, cfg.limit_test);
    const long batch = std::min<long>({cfg.batch, long(ntr), model.max_batch()});
    const long ipe = long(ntr) / batch;  // drop the last partial batch
    const int threads = cfg.threads > 0 ? cfg.threads : omp_get_max_threads();
    const int C = model.classes();
    const long depth = dims.depth;

    auto& P = model.params();
    for (auto& e : P.entries())  // MAE's fine-tuning exempts cls_token (and pos_embed) from decay
        if (e.name == "cls_token") e.weight_decay = false;
    optim::assign_vit_layer_ids(P, int(depth));
    optim::AdamW<T, Backend> opt(P, optim::AdamWConfig{.beta1 = cfg.beta1, .beta2 = cfg.beta2, .weight_decay = cfg.weight_decay});
    opt.set_lr_scales(optim::layer_lr_scales(P, int(depth), cfg.layer_decay));
    const auto sched = optim::WarmupCosine::from_blr(cfg.blr, batch, cfg.min_lr, cfg.warmup_epochs, double(cfg.epochs));

    FineTuneResult res;
    res.lr = sched.lr_max;
    res.batch = batch;
    res.epochs = cfg.epochs;
    res.n_train = ntr;
    res.n_test = nte;
    std::vector<std::size_t> order(ntr);
    std::vector<float> images(static_cast<std::size_t>(batch) * prep.floats());
    std::vector<int> labels(static_cast<std::size_t>(batch));
    std::vector<double> targets(static_cast<std::size_t>(batch * C));
    std::vector<T> logits(static_cast<std::size_t>(batch * C)), dlogits(static_cast<std::size_t>(batch * C));
    using Clock = std::chrono::steady_clock;
    for (long epoch = 0; epoch < cfg.epochs; ++epoch) {
        const auto t0 = Clock::now();
        std::iota(order.begin(), order.end(), std::size_t{0});
        Rng shuffle(cfg.seed, stream_id(0x5f1ull, static_cast<std::uint64_t>(epoch)));
        for (std::size_t i = ntr; i-- > 1;) std::swap(order[i], order[static_cast<std::size_t>(shuffle.below(i + 1))]);
        double loss_sum = 0, lr = 0;
        for (long it = 0; it < ipe; ++it) {
            const std::uint64_t step = static_cast<std::uint64_t>(epoch * ipe + it);
#pragma omp parallel for schedule(dynamic, 8) num_threads(threads)
            for (long r = 0; r < batch; ++r)
                detail::prepare_train_image(train, order[static_cast<std::size_t>(it * batch + r)], cfg, prep, epoch,
                                            images.data() + static_cast<std::size_t>(r) * prep.floats());
            for (long r = 0; r < batch; ++r) labels[static_cast<std::size_t>(r)] = train.label(order[static_cast<std::size_t>(it * batch + r)]);
            Rng mrng(cfg.seed, stream_id(0x3170ull, step));
            mix_batch(cfg.mix, mrng, batch, prep.channels, prep.image, prep.image, images.data(), labels.data(), C, targets.data());
            if (cfg.drop_path > 0) {
                const auto s = models::drop_path_scales<T>(depth, cfg.drop_path, batch, cfg.seed, step);
                model.encoder().set_drop_path(ctx, s.data(), batch);
            }
            model.put_images(ctx, images.data(), batch);
            download(ctx, batch * C, model.forward(ctx, batch), logits.data());
            loss_sum += soft_cross_entropy(batch, C, logits.data(), targets.data(), dlogits.data());
            optim::zero_grad(ctx, P);
            model.backward_host(ctx, dlogits.data());
            lr = sched.at(epoch, it, ipe);
            opt.step(ctx, lr);
            ++res.steps;
        }
        ctx.synchronize();
        const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
        res.train_seconds += secs;
        res.train_loss = loss_sum / double(ipe);
        double top1 = -1;
        const bool last = epoch + 1 == cfg.epochs;
        if (last || (cfg.eval_every > 0 && (epoch + 1) % cfg.eval_every == 0)) {
            const auto [t1, t5] = finetune_accuracy(ctx, model, test, prep, nte, threads);
            top1 = t1;
            if (last) {
                res.top1 = t1;
                res.top5 = t5;
            }
        }
        if (progress) progress(epoch, res.train_loss, lr, secs > 0 ? double(ipe * batch) / secs : 0.0, top1);
    }
    res.has_top5 = C > 5;
    res.images_per_second = res.train_seconds > 0 ? double(res.steps * batch) / res.train_seconds : 0.0;
    return res;
}

}  // namespace lcmae::eval
