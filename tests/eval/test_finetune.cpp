// Fine-tuning (eval/finetune.hpp, eval/mixup.hpp, data/randaugment.hpp): gradient checks in double
// of the soft-target cross-entropy (label smoothing, mixup / CutMix targets) and of the whole
// classifier (encoder without final norm, drop path with fixed scales, mean pool, fc_norm, head);
// mixup / CutMix bookkeeping; drop-path scale statistics; and fine-tuning a tiny ViT on a generated,
// easily separable image set (>= 90% top-1) versus shuffled labels (near chance).
#include <doctest/doctest.h>

#include <cmath>
#include <numeric>
#include <vector>

#include "lcmae/eval/finetune.hpp"
#include "support/gradcheck.hpp"

using namespace lcmae;

namespace {

/// n gray S x S images in `classes` classes: class c is a bright horizontal band (rows
/// [c S / classes, (c + 1) S / classes)) over noise; flip-invariant, so the crop + flip keeps it.
std::shared_ptr<data::InMemoryDataset> bands(std::size_t n, int S, int classes, std::uint64_t seed, bool shuffle_labels = false) {
    Rng r(seed, 5);
    std::vector<std::uint8_t> px(n * std::size_t(S * S));
    std::vector<int> labels(n);
    for (std::size_t i = 0; i < n; ++i) {
        const int c = static_cast<int>(r.below(std::uint64_t(classes)));
        labels[i] = c;
        for (int y = 0; y < S; ++y)
            for (int x = 0; x < S; ++x) {
                const bool on = y * classes / S == c;
                px[i * std::size_t(S * S) + std::size_t(y * S + x)] = static_cast<std::uint8_t>((on ? 170 : 0) + r.below(60));
            }
    }
    if (shuffle_labels)
        for (std::size_t i = n - 1; i > 0; --i) std::swap(labels[i], labels[r.below(i + 1)]);
    return std::make_shared<data::InMemoryDataset>("bands", std::move(px), n, S, S, 1, std::move(labels), classes);
}

}  // namespace

TEST_CASE("soft_cross_entropy: gradient check in double (smoothed one-hot and arbitrary soft targets)") {
    const long B = 4, C = 6;
    auto z = test::random_vector(B * C, 31, 3.0);
    std::vector<double> t(static_cast<std::size_t>(B * C));
    Rng r(3, 3);
    for (long b = 0; b < B; ++b) {  // random rows summing to 1
        double s = 0;
        for (long c = 0; c < C; ++c) s += (t[static_cast<std::size_t>(b * C + c)] = r.uniform_double());
        for (long c = 0; c < C; ++c) t[static_cast<std::size_t>(b * C + c)] /= s;
    }
    std::vector<double> dz(static_cast<std::size_t>(B * C), test::kSentinel);
    eval::soft_cross_entropy(B, C, z.data(), t.data(), dz.data());
    test::check_input_grad("soft_cross_entropy logits", z.data(), B * C, dz,
                           [&] { return eval::soft_cross_entropy(B, C, z.data(), t.data()); });
    // smoothed one-hot targets give exactly cross_entropy with label smoothing
    const std::vector<int> labels{1, 5, 0, 3};
    for (long b = 0; b < B; ++b) eval::smoothed_one_hot(C, labels[static_cast<std::size_t>(b)], 0.1, t.data() + b * C);
    CHECK(eval::soft_cross_entropy(B, C, z.data(), t.data()) ==
          doctest::Approx(eval::cross_entropy(B, C, z.data(), labels.data(), 0.1)).epsilon(1e-13));
}

TEST_CASE("mixup / CutMix: soft targets, pixels, corrected lam; the mixed loss and its gradient") {
    const long B = 5, H = 6, W = 6, C = 4;
    const std::vector<int> labels{0, 1, 2, 3, 1};
    std::vector<float> base(static_cast<std::size_t>(B * H * W));
    for (std::size_t i = 0; i < base.size(); ++i) base[i] = float(i % 97) * 0.01f;
    std::vector<double> t(static_cast<std::size_t>(B * C));
    int seen_mixup = 0, seen_cutmix = 0;
    for (std::uint64_t step = 0; step < 40; ++step) {
        auto img = base;
        Rng rng(9, step);
        const eval::MixupConfig cfg{};  // 0.8 / 1.0 / prob 1 / switch 0.5 / smoothing 0.1
        const auto info = eval::mix_batch(cfg, rng, B, 1, H, W, img.data(), labels.data(), int(C), t.data());
        REQUIRE(info.kind != eval::MixInfo::None);
        REQUIRE(info.lam >= 0);
        REQUIRE(info.lam <= 1);
        for (long b = 0; b < B; ++b) {  // target = lam s(y_b) + (1 - lam) s(y_{B-1-b}), rows sum to 1
            double s = 0;
            for (long c = 0; c < C; ++c) {
                const double own = (c == labels[b] ? 0.9 : 0.0) + 0.025, other = (c == labels[B - 1 - b] ? 0.9 : 0.0) + 0.025;
                CHECK(t[static_cast<std::size_t>(b * C + c)] == doctest::Approx(info.lam * own + (1 - info.lam) * other).epsilon(1e-12));
                s += t[static_cast<std::size_t>(b * C + c)];
            }
            CHECK(s == doctest::Approx(1.0).epsilon(1e-12));
        }
        if (info.kind == eval::MixInfo::Mixup) {
            ++seen_mixup;
            for (long b = 0; b < B; ++b)
                for (long i = 0; i < H * W; ++i)
                    CHECK(img[static_cast<std::size_t>(b * H * W + i)] ==
                          doctest::Approx(info.lam * base[static_cast<std::size_t>(b * H * W + i)] +
                                          (1 - info.lam) * base[static_cast<std::size_t>((B - 1 - b) * H * W + i)]).epsilon(1e-5));
        } else {
            ++seen_cutmix;
            const double area = double((info.y1 - info.y0) * (info.x1 - info.x0));
            CHECK(info.lam == doctest::Approx(1 - area / double(H * W)).epsilon(1e-12));
            for (long b = 0; b < B; ++b)
                for (long y = 0; y < H; ++y)
                    for (long x = 0; x < W; ++x) {
                        const bool in = y >= info.y0 && y < info.y1 && x >= info.x0 && x < info.x1;
                        const long src = in ? B - 1 - b : b;
                        CHECK(img[static_cast<std::size_t>(b * H * W + y * W + x)] == base[static_cast<std::size_t>(src * H * W + y * W + x)]);
                    }
        }
        // the mixed loss is lam CE(own, smoothed) + (1 - lam) CE(partner, smoothed), and its gradient checks
        auto z = test::random_vector(B * C, 40 + step, 2.0);
        std::vector<int> partner(static_cast<std::size_t>(B));
        for (long b = 0; b < B; ++b) partner[static_cast<std::size_t>(b)] = labels[static_cast<std::size_t>(B - 1 - b)];
        const double mixed = eval::soft_cross_entropy(B, C, z.data(), t.data());
        CHECK(mixed == doctest::Approx(info.lam * eval::cross_entropy(B, C, z.data(), labels.data(), 0.1) +
                                       (1 - info.lam) * eval::cross_entropy(B, C, z.data(), partner.data(), 0.1)).epsilon(1e-12));
        if (step < 2) {
            std::vector<double> dz(static_cast<std::size_t>(B * C), test::kSentinel);
            eval::soft_cross_entropy(B, C, z.data(), t.data(), dz.data());
            test::check_input_grad("mixed-target loss logits", z.data(), B * C, dz,
                                   [&] { return eval::soft_cross_entropy(B, C, z.data(), t.data()); });
        }
    }
    CHECK(seen_mixup > 5);  // switch prob 0.5
    CHECK(seen_cutmix > 5);
    // off: lam 1, images untouched, targets the smoothed one-hots
    auto img = base;
    Rng rng(1, 1);
    const auto info = eval::mix_batch(eval::MixupConfig{.mixup_alpha = 0, .cutmix_alpha = 0}, rng, B, 1, H, W, img.data(),
                                      labels.data(), int(C), t.data());
    CHECK(info.kind == eval::MixInfo::None);
    CHECK(img == base);
    CHECK(t[1] == doctest::Approx(0.025));
    CHECK(t[0] == doctest::Approx(0.925));
}

TEST_CASE("drop path scales: linspace rates per block, 0 or 1 / keep, deterministic") {
    const long depth = 4, B = 4000;
    const auto s = models::drop_path_scales<double>(depth, 0.3, B, 7, 11);
    CHECK(s == models::drop_path_scales<double>(depth, 0.3, B, 7, 11));
    CHECK(s != models::drop_path_scales<double>(depth, 0.3, B, 7, 12));
    for (long i = 0; i < depth; ++i) {
        const double rate = 0.3 * double(i) / double(depth - 1);
        for (long br = 0; br < 2; ++br) {
            long dropped = 0;
            for (long b = 0; b < B; ++b) {
                const double v = s[static_cast<std::size_t>((i * 2 + br) * B + b)];
                CHECK((v == 0.0 || v == doctest::Approx(1.0 / (1.0 - rate)).epsilon(1e-15)));
                dropped += v == 0.0;
            }
            CHECK(double(dropped) / double(B) == doctest::Approx(rate).epsilon(0.2).scale(0.02));
        }
    }
    CHECK_THROWS_AS(models::drop_path_scales<double>(depth, 1.0, B, 7, 11), lcmae::Error);
}

TEST_CASE("gradcheck: fine-tune classifier (encoder without final norm, drop path, mean pool, fc_norm, head)") {
    const backend::Cpu ctx(1);
    const vit::VitDims dims{8, 2, 2, 2, 4, 1, 2};  // 4 tokens of 4 values, 2 blocks
    const long B = 3, C = 5;
    eval::FineTuneModel<double> model(ctx, dims, int(C), B, /*drop_path=*/true);
    auto& P = model.params();
    for (const auto& e : P.entries()) CHECK(!e.name.starts_with("norm."));  // MAE drops the final norm
    test::randomize(P, 41);
    auto images = test::random_vector(B * 16, 42);
    std::vector<float> fimg(images.begin(), images.end());
    model.put_images(ctx, fimg.data(), B);
    // block 0 keeps everything (rate 0); block 1: sample 0's attention and sample 2's MLP dropped
    const std::vector<double> drop{1, 1, 1, 1, 1, 1, 0, 1.25, 1.25, 1.25, 1.25, 0};
    model.encoder().set_drop_path(ctx, drop.data(), B);
    std::vector<double> t(static_cast<std::size_t>(B * C));
    const std::vector<int> labels{4, 0, 2};
    for (long b = 0; b < B; ++b) eval::smoothed_one_hot(C, labels[static_cast<std::size_t>(b)], 0.1, t.data() + b * C);
    std::vector<double> dlogits(static_cast<std::size_t>(B * C));
    auto loss = [&] { return eval::soft_cross_entropy(B, C, model.forward(ctx, B), t.data()); };
    test::check_param_grads(P, loss, [&] {
        eval::soft_cross_entropy(B, C, model.forward(ctx, B), t.data(), dlogits.data());
        model.backward_host(ctx, dlogits.data());
    });
    CHECK_THROWS_AS(model.forward(ctx, 2), lcmae::Error);  // drop path was set for batch 3
    model.encoder().set_drop_path(ctx, nullptr, 0);
    CHECK_NOTHROW(model.forward(ctx, 2));
}

TEST_CASE("RandAugment ops and RandomErasing keep the image's shape and type") {
    cv::Mat img(8, 8, CV_8UC1);
    for (int i = 0; i < 64; ++i) img.data[i] = static_cast<uchar>(i * 4);
    const data::RandAugment ra{2, 9};
    for (int op = 0; op < data::RandAugment::kOps; ++op)
        for (double sign : {-1.0, 1.0}) {
            const cv::Mat out = ra.apply(img, op, sign);
            INFO(data::RandAugment::op_name(op));
            CHECK(out.rows == 8);
            CHECK(out.cols == 8);
            CHECK(out.type() == CV_8UC1);
        }
    std::vector<float> x(64, 5.0f);
    Rng rng(1, 2);
    CHECK(data::RandomErasing{.p = 1.0}(x.data(), 1, 8, 8, rng));
    CHECK(std::count(x.begin(), x.end(), 5.0f) < 64);
    CHECK(!data::RandomErasing{.p = 0.0}(x.data(), 1, 8, 8, rng));
}

TEST_CASE("fine-tuning a tiny ViT learns separable bands (>= 90% top-1) but not shuffled labels") {
    const backend::Cpu ctx(1);
    const vit::VitDims dims{16, 2, 2, 2, 8, 1, 2};  // 16 tokens, width 16, 2 blocks
    const int classes = 4;
    const eval::ImagePrep prep{.image = 8, .channels = 1, .norm = data::Normalization::fashion_mnist()};
    auto test_ds = bands(200, 8, classes, 2);
    eval::FineTuneConfig cfg;
    cfg.epochs = 12;
    cfg.warmup_epochs = 1;
    cfg.batch = 32;
    cfg.blr = 2e-2;  // lr 2.5e-3
    cfg.crop_scale_lo = 0.6;
    cfg.mix = eval::MixupConfig{.mixup_alpha = 0, .cutmix_alpha = 0};
    cfg.randaug_n = 0;
    cfg.reprob = 0;
    cfg.seed = 3;
    {
        auto train_ds = bands(384, 8, classes, 1);
        eval::FineTuneModel<float> model(ctx, dims, classes, 64, true);
        model.init_random(ctx, 5);
        long epochs_seen = 0;
        const auto r = eval::fine_tune(ctx, model, *train_ds, *test_ds, prep, cfg,
                                       [&](long, double loss, double, double ips, double) {
                                           ++epochs_seen;
                                           CHECK(std::isfinite(loss));
                                           CHECK(ips > 0);
                                       });
        MESSAGE("separable bands: top-1 " << r.top1 << "% after " << r.steps << " steps, loss " << r.train_loss);
        CHECK(epochs_seen == cfg.epochs);
        CHECK(r.steps == cfg.epochs * (384 / 32));
        CHECK(r.top1 >= 90.0);
        CHECK(!r.has_top5);
    }
    {  // shuffled training labels, every augmentation on: near chance (25%) on the true test labels
        auto train_ds = bands(384, 8, classes, 1, /*shuffle_labels=*/true);
        eval::FineTuneConfig c2 = cfg;
        c2.mix = eval::MixupConfig{};
        c2.randaug_n = 2;
        c2.reprob = 0.25;
        eval::FineTuneModel<float> model(ctx, dims, classes, 64, true);
        model.init_random(ctx, 5);
        const auto r = eval::fine_tune(ctx, model, *train_ds, *test_ds, prep, c2);
        MESSAGE("shuffled labels: top-1 " << r.top1 << "%");
        CHECK(std::isfinite(r.train_loss));
        CHECK(r.top1 <= 45.0);
    }
}
