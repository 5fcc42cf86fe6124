// An imported checkpoint (`lcmae import`, apps/timm_transfer.hpp) evaluates: FrozenEncoder::load
// reads it, export -> import gives bit-identical features, and a checkpoint's own pos_embed (a
// learned or resampled table) replaces the fixed sin-cos table.
#include <doctest/doctest.h>

#include <vector>

#include "data/temp_dir.hpp"
#include "eval/synthetic.hpp"
#include "lcmae/apps/main_job_models.hpp"
#include "lcmae/apps/timm_transfer.hpp"
#include "lcmae/eval/features.hpp"
#include "lcmae/io/checkpoint.hpp"

using namespace lcmae;

namespace {
const eval::ImagePrep kPrep{.image = 28, .channels = 1, .norm = data::Normalization::fashion_mnist()};

/// Copies checkpoint `src` to `dst` with `pos` (of `shape`) as its pos_embed.
void with_pos_embed(const std::string& src, const std::string& dst, const std::vector<float>& pos, const Shape& shape) {
    const io::SafetensorsFile f(src);
    io::SafetensorsWriter w;
    std::vector<std::vector<float>> keep;
    for (const auto& t : f.tensors()) {
        if (t.name == "pos_embed") continue;
        keep.push_back(f.read<float>(t.name));
        w.add(t.name, t.shape, keep.back().data());
    }
    w.add("pos_embed", shape, pos.data());
    w.write(dst);
}

eval::Features features(const std::string& ckpt, const data::Dataset& ds) {
    const backend::Cpu ctx(2);
    eval::FrozenEncoder<float> enc(ctx, apps::FashionMnistBackbone::dims(), 4);
    enc.load(ctx, ckpt);
    return enc.extract(ctx, ds, kPrep);
}
}  // namespace

TEST_CASE("imported checkpoint: export -> import evaluates bit-identically; its pos_embed is used") {
    test::TempDir dir;
    const vit::VitDims dims = apps::FashionMnistBackbone::dims();
    const std::string ckpt = dir / "checkpoint.safetensors", vit = dir / "vit.safetensors", imp = dir / "imported.safetensors";
    {
        apps::EncoderArena m(dims);
        auto host = host_layout(m.params);
        m.encoder.init(host, 5);
        io::save_params<float>(ckpt, {{"", host}});
    }
    apps::export_checkpoint_encoder(ckpt, vit, dims);
    apps::import_timm_checkpoint(vit, imp, dims);
    const auto ds = test::toy_images(5, 28, 3);
    const eval::Features a = features(ckpt, *ds), b = features(imp, *ds);
    CHECK(a.cls.values == b.cls.values);
    CHECK(a.mean.values == b.mean.values);

    // another table in the checkpoint: the features follow it, and equal a plain encoder's with it
    std::vector<float> pos = nn::sincos_pos_embed_2d<float>(dims.dim, dims.grid());
    for (std::size_t i = 0; i < pos.size(); ++i) pos[i] = 0.5f * pos[i] + 0.01f * float(i % 7);
    const std::string learned = dir / "learned.safetensors";
    with_pos_embed(imp, learned, pos, Shape{1, 50, 192});
    const eval::Features c = features(learned, *ds);
    CHECK(c.cls.values != a.cls.values);
    const backend::Cpu ctx(2);
    ParamArena<float> P;
    models::VitEncoder<float> ref(P, dims, models::EncoderOptions{.max_batch = 5});
    P.allocate();
    io::load_params(learned, P, "", io::Strictness::IgnoreUnexpected);
    ref.set_pos_embed(pos);
    std::vector<float> images(5 * 28 * 28);
    for (std::size_t i = 0; i < 5; ++i) data::to_chw(ds->image(i), 1, data::Normalization::fashion_mnist(), images.data() + i * 784);
    const float* x = ref.forward(ctx, P, images.data(), 5, nullptr, 0);
    double err = 0;
    for (long b2 = 0; b2 < 5; ++b2)
        for (long k = 0; k < dims.dim; ++k)
            err = std::max(err, std::abs(double(x[b2 * 50 * dims.dim + k]) - double(c.cls.row(b2)[k])));
    CHECK(err < 1e-5);

    // a pos_embed of another grid is refused with both shapes
    const std::string wrong = dir / "wrong.safetensors";
    with_pos_embed(imp, wrong, std::vector<float>(17 * 192, 0.0f), Shape{1, 17, 192});
    const backend::Cpu ctx2(2);
    eval::FrozenEncoder<float> enc(ctx2, dims, 4);
    try {
        enc.load(ctx2, wrong);
        FAIL("no error");
    } catch (const Error& e) {
        const std::string msg = e.what();
        CHECK(msg.find("tensor 'pos_embed' has shape (1, 17, 192), expected (1, 50, 192)") != std::string::npos);
    }
}
