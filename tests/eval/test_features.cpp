// Frozen-encoder features (eval/features.hpp): a main-job checkpoint loads by timm name (online and
// EMA target), features equal the mean / CLS of a plain VitEncoder forward on all tokens, batching
// does not matter, preprocessing is the loader's normalisation (no augmentation), and the whole
// pipeline (features, k-NN, probe) is bit-identical on backend::Strict (no host access to tensors).
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <vector>

#include "data/temp_dir.hpp"
#include "eval/synthetic.hpp"
#include "lcmae/apps/main_job_models.hpp"
#include "lcmae/eval/features.hpp"
#include "lcmae/eval/knn.hpp"
#include "lcmae/eval/linear_probe.hpp"
#include "lcmae/io/checkpoint.hpp"
// Declared after the eval code on purpose (ADL at the point of instantiation, backend/tag.hpp).
#include "support/strict_backend.hpp"

using namespace lcmae;

namespace {
using test::toy_images;
const eval::ImagePrep kFmnistPrep{.image = 28, .channels = 1, .norm = data::Normalization::fashion_mnist()};
}  // namespace

TEST_CASE("features: a main-job checkpoint loads by name; mean / CLS equal a plain encoder's tokens") {
    test::TempDir dir;
    const std::string ckpt = dir / "checkpoint.safetensors";
    using Model = apps::MainJobModel<apps::FashionMnistBackbone, loss::Cosine, crop::SimpleResized>;
    {
        Model m(RunConfig{.max_batch = 2, .seed = 9});
        io::save_params<float>(ckpt, {{"", m.engine().params()}, {"target.", m.engine().target_params()}});
    }
    const backend::Cpu ctx(2);
    const vit::VitDims dims = apps::FashionMnistBackbone::dims();
    eval::FrozenEncoder<float> enc(ctx, dims, 4);
    const auto report = enc.load(ctx, ckpt);
    CHECK(report.loaded.size() == enc.params().entries().size());
    CHECK(report.missing.empty());

    const auto ds = toy_images(7, 28);
    std::vector<std::size_t> seen;
    const eval::Features f = enc.extract(ctx, *ds, kFmnistPrep, 0, [&](std::size_t done, std::size_t total) {
        CHECK(total == 7);
        seen.push_back(done);
    });
    CHECK(seen == std::vector<std::size_t>{4, 7});
    REQUIRE(f.mean.n == 7);
    CHECK(f.mean.dim == 192);
    CHECK(f.cls.labels == std::vector<int>{0, 1, 2, 0, 1, 2, 0});

    // reference: a plain (not forward_only) encoder, all 7 images in one batch
    ParamArena<float> P;
    models::VitEncoder<float> ref(P, dims, models::EncoderOptions{.max_batch = 7});
    P.allocate();
    io::load_params(ckpt, P, "", io::Strictness::IgnoreUnexpected);
    std::vector<float> images(7 * 28 * 28);
    for (std::size_t i = 0; i < 7; ++i) data::to_chw(ds->image(i), 1, data::Normalization::fashion_mnist(), images.data() + i * 784);
    const float* x = ref.forward(ctx, P, images.data(), 7, nullptr, 0);
    double err_mean = 0, err_cls = 0, scale = 0;
    for (long b = 0; b < 7; ++b)
        for (long c = 0; c < 192; ++c) {
            double m = 0;
            for (long n = 1; n <= 49; ++n) m += x[(b * 50 + n) * 192 + c];
            m /= 49;
            err_mean = std::max(err_mean, std::abs(m - f.mean.row(b)[c]));
            err_cls = std::max(err_cls, std::abs(double(x[b * 50 * 192 + c]) - f.cls.row(b)[c]));
            scale = std::max(scale, std::abs(double(x[b * 50 * 192 + c])));
        }
    CHECK(scale > 0.1);
    CHECK(err_mean < 1e-5);
    CHECK(err_cls < 1e-5);

    // the EMA target loads under "target." (equal to the online encoder at initialisation)
    eval::FrozenEncoder<float> tgt(ctx, dims, 7);
    tgt.load(ctx, ckpt, "target.");
    const auto ft = tgt.extract(ctx, *ds, kFmnistPrep, 3);
    CHECK(ft.cls.n == 3);
    for (long i = 0; i < 3 * 192; ++i) CHECK(ft.cls.values[std::size_t(i)] == doctest::Approx(f.cls.values[std::size_t(i)]).epsilon(1e-5));
}

TEST_CASE("features: copy_from a trained model's arena equals loading its checkpoint (the ablation driver's path)") {
    test::TempDir dir;
    const std::string ckpt = dir / "checkpoint.safetensors";
    using Model = apps::MainJobModel<apps::FashionMnistBackbone, loss::None, crop::SimpleResized>;
    Model m(RunConfig{.max_batch = 2, .seed = 3});
    // move every value away from the initialisation, as training would
    auto& values = m.engine().params().values();
    for (std::size_t i = 0; i < values.size(); ++i) values.data()[i] = values.data()[i] * 1.5f + 1e-3f * float(i % 7);
    io::save_params<float>(ckpt, {{"", m.engine().params()}});
    const backend::Cpu ctx(2);
    const vit::VitDims dims = apps::FashionMnistBackbone::dims();
    eval::FrozenEncoder<float> copied(ctx, dims, 4), loaded(ctx, dims, 4), fresh(ctx, dims, 4);
    copied.copy_from(m.engine().params());
    loaded.load(ctx, ckpt);
    fresh.init_random(ctx, 3);
    const auto ds = toy_images(5, 28);
    const auto fc = copied.extract(ctx, *ds, kFmnistPrep), fl = loaded.extract(ctx, *ds, kFmnistPrep), ff = fresh.extract(ctx, *ds, kFmnistPrep);
    CHECK(fc.mean.values == fl.mean.values);
    CHECK(fc.cls.values == fl.cls.values);
    CHECK(fc.mean.values != ff.mean.values);  // the copied (changed) weights are what is evaluated
    // another geometry: an error that names the tensor
    eval::FrozenEncoder<float> other(ctx, apps::FolderBackbone::dims(), 2);
    CHECK_THROWS_WITH_AS(other.copy_from(m.engine().params()), doctest::Contains("patch_embed.proj.weight"), Error);
}

TEST_CASE("features: a wrong checkpoint or geometry is an error that names the problem") {
    test::TempDir dir;
    const backend::Cpu ctx(1);
    const vit::VitDims small{16, 1, 2, 4, 28, 1, 4};
    eval::FrozenEncoder<float> enc(ctx, small, 2);
    CHECK_THROWS_WITH_AS(enc.load(ctx, dir / "nope.safetensors"), doctest::Contains("does not exist"), Error);
    // a checkpoint of another geometry (2 blocks, width 32)
    {
        ParamArena<float> P;
        models::VitEncoder<float> other(P, vit::VitDims{32, 2, 2, 4, 28, 1, 4}, {});
        P.allocate();
        io::save_params<float>(dir / "other.safetensors", {{"", P}});
    }
    CHECK_THROWS_WITH_AS(enc.load(ctx, dir / "other.safetensors"), doctest::Contains("shape mismatch for 'cls_token'"), Error);
    const auto ds = toy_images(2, 32);
    eval::ImagePrep prep{.image = 32, .channels = 1, .norm = data::Normalization::identity()};
    CHECK_THROWS_WITH_AS(enc.extract(ctx, *ds, prep), doctest::Contains("encoder takes 28 px"), Error);
    auto unlabelled = std::make_shared<data::InMemoryDataset>("u", std::vector<std::uint8_t>(784), 1, 28, 28, 1);
    CHECK_THROWS_WITH_AS(enc.extract(ctx, *unlabelled, kFmnistPrep), doctest::Contains("has no labels"), Error);
}

TEST_CASE("features: pixels are the loader's normalisation, no augmentation; other sizes are resized and centre-cropped") {
    const auto ds = toy_images(5, 28);
    const auto px = eval::pixel_features(*ds, kFmnistPrep, 4, 2);
    REQUIRE(px.n == 4);
    CHECK(px.dim == 784);
    std::vector<float> ref(784);
    data::to_chw(ds->image(2), 1, data::Normalization::fashion_mnist(), ref.data());
    for (long j = 0; j < 784; ++j) CHECK(px.row(2)[j] == ref[std::size_t(j)]);
    // 40 px images for a 28 px model: shorter side to 32 (28 / 0.875), centred 28 crop
    const auto big = toy_images(2, 40);
    const auto pb = eval::pixel_features(*big, kFmnistPrep);
    data::to_chw(data::ResizeCenterCrop{32, 28}(big->image(1)), 1, data::Normalization::fashion_mnist(), ref.data());
    for (long j = 0; j < 784; ++j) CHECK(pb.row(1)[j] == ref[std::size_t(j)]);
}

TEST_CASE("features + probe: backend::Strict gives bit-identical results (generic code never touches tensor memory)") {
    const vit::VitDims tiny{16, 2, 2, 4, 28, 1, 4};
    const auto ds = toy_images(6, 28);
    const backend::Cpu cpu(2);
    const backend::Strict strict(2);
    eval::FrozenEncoder<float> ec(cpu, tiny, 4);
    eval::FrozenEncoder<float, backend::Strict> es(strict, tiny, 4);
    ec.init_random(cpu, 3);
    es.init_random(strict, 3);
    const auto fc = ec.extract(cpu, *ds, kFmnistPrep), fs = es.extract(strict, *ds, kFmnistPrep);
    CHECK(fc.mean.values == fs.mean.values);
    CHECK(fc.cls.values == fs.cls.values);

    const auto train = test::clusters(300, 16, 4, 2, 0, 3.0, 1.0), test = test::clusters(100, 16, 4, 2, 1, 3.0, 1.0);
    eval::LinearProbeConfig c;
    c.epochs = 3;
    c.warmup_epochs = 1;
    c.batch = 32;
    c.blr = 20;
    const auto rc = eval::linear_probe(cpu, train, test, c);
    const auto rs = eval::linear_probe<float, backend::Strict>(strict, train, test, c);
    CHECK(rc.top1 == rs.top1);
    CHECK(rc.train_loss == rs.train_loss);
}
