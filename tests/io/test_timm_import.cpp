// `lcmae export` / `lcmae import` in the library (lcmae/apps/timm_transfer.hpp, lcmae/io/timm_import.hpp):
// the export -> import round trip is exact, pos_embed resampling equals timm's resample_abs_pos_embed
// (tests/reference/fixtures/pos_embed_resample.safetensors, made by make_pos_embed_fixture.py),
// MAE extras are ignored and listed, 3-channel weights are adapted as timm's adapt_input_conv, and
// every bad file is refused with a message naming the file, the tensor and the shapes.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "io/test_util.hpp"
#include "lcmae/apps/timm_transfer.hpp"
#include "lcmae/io/checkpoint.hpp"
#include "lcmae/io/safetensors.hpp"
#include "lcmae/io/timm_import.hpp"
#include "lcmae/nn/pos_embed.hpp"

using namespace lcmae;
using lcmae::test::TempDir;
using lcmae::test::throws_with;

namespace {

// A small encoder: D 16, 2 blocks, 2 heads, patch 4, 12 px (grid 3), 1 channel.
vit::VitDims small_dims(long image = 12, long channels = 1) { return vit::VitDims{16, 2, 2, 4, image, channels, 4}; }

/// A main-job-like checkpoint: the online encoder, an EMA target under "target." (other values) and
/// MAE-style extras (decoder, mask token), as Trainer::save writes them.
void make_checkpoint(const std::filesystem::path& path, const vit::VitDims& d) {
    apps::EncoderArena online(d), target(d);
    auto ho = host_layout(online.params);
    online.encoder.init(ho, 1);
    std::copy(ho.values().begin(), ho.values().end(), online.params.values().begin());
    auto ht = host_layout(target.params);
    target.encoder.init(ht, 2);
    std::copy(ht.values().begin(), ht.values().end(), target.params.values().begin());
    // make every value distinctive (init leaves biases at 0 and norms at 1)
    for (std::size_t i = 0; i < online.params.values().size(); ++i) {
        online.params.values()[i] += 1e-3f * static_cast<float>(i % 97);
        target.params.values()[i] -= 1e-3f * static_cast<float>(i % 89);
    }
    io::SafetensorsWriter w;
    w.set_metadata("dataset", "test");
    io::add_arena(w, online.params, "");
    io::add_arena(w, target.params, "target.");
    const std::vector<float> dec(8 * 16, 0.5f), mask(16, 0.25f);
    w.add("decoder_embed.weight", Shape{8, 16}, dec.data());
    w.add("mask_token", Shape{1, 1, 16}, mask.data());
    w.write(path);
}

/// The raw bytes of tensor `name`.
std::vector<unsigned char> raw(const io::SafetensorsFile& f, const std::string& name) {
    const auto s = f.raw(f.info(name));
    return {s.begin(), s.end()};
}

/// Copies the F32 tensors of `src` to `dst` through `edit` (which may change, drop or add entries).
struct Tensor {
    Shape shape;
    std::vector<float> v;
};
void rewrite(const std::filesystem::path& src, const std::filesystem::path& dst,
             const std::function<void(std::map<std::string, Tensor>&)>& edit) {
    const io::SafetensorsFile f(src);
    std::map<std::string, Tensor> t;
    for (const auto& i : f.tensors()) t[i.name] = Tensor{i.shape, f.read<float>(i.name)};
    edit(t);
    io::SafetensorsWriter w;
    for (const auto& [n, x] : t) w.add(n, x.shape, x.v.data());
    w.write(dst);
}

const std::string kFixture = std::string(LCMAE_TEST_DATA_DIR) + "/reference/fixtures/pos_embed_resample.safetensors";

}  // namespace

TEST_CASE("pos_embed resampling equals timm's resample_abs_pos_embed (bicubic, antialiased), up and down") {
    const io::SafetensorsFile f(kFixture);
    const long old = 7, width = 8;
    const std::vector<float> pos = f.read<float>("pos");
    REQUIRE(pos.size() == static_cast<std::size_t>((1 + old * old) * width));
    double worst = 0;
    for (const auto& [h, w] : std::vector<std::pair<long, long>>{{10, 10}, {14, 14}, {4, 4}, {3, 3}, {5, 9}}) {
        const std::string name = "out_" + std::to_string(h) + "x" + std::to_string(w);
        CAPTURE(name);
        const std::vector<float> want = f.read<float>(name);
        const std::vector<float> got = nn::resample_abs_pos_embed(pos, width, old, old, h, w, 1);
        REQUIRE(got.size() == want.size());
        double err = 0;
        for (std::size_t i = 0; i < got.size(); ++i) err = std::max(err, std::abs(double(got[i]) - double(want[i])));
        for (long i = 0; i < width; ++i) CHECK(got[static_cast<std::size_t>(i)] == pos[static_cast<std::size_t>(i)]);  // CLS row kept
        MESSAGE(name << ": max |C++ - timm| = " << err);
        worst = std::max(worst, err);
        // Measured against torch 2.15.0 / timm 1.0.31 (AVX512 kernels): upsampling 0 (bit for bit),
        // downsampling max 1.19e-7 (one float ulp at |x| ~ 1, on 40-80 of the values; the weights
        // are bit-identical, the taps' sum rounds differently). 1e-6 is ~8 ulps at the table's
        // largest values (~3): room for another libm, not for a different filter (antialias=False,
        // i.e. a = -0.75 and no widening, moves this fixture's values by 0.27 to 1.7; a = -0.75
        // alone by 0.05 to 0.36).
        CHECK(err <= 1e-6);
    }
    // double tables take the same float path
    std::vector<double> posd(pos.begin(), pos.end());
    const std::vector<double> gd = nn::resample_abs_pos_embed(posd, width, old, old, 4, 4, 1);
    const std::vector<float> gf = nn::resample_abs_pos_embed(pos, width, old, old, 4, 4, 1);
    for (std::size_t i = 0; i < gf.size(); ++i) CHECK(gd[i] == double(gf[i]));
}

TEST_CASE("pos_embed resampling: the same grid is returned as it is; bad sizes are refused") {
    const std::vector<float> pe = nn::sincos_pos_embed_2d<float>(8, 3);
    CHECK(nn::resample_abs_pos_embed(pe, 8, 3, 3, 3, 3, 1) == pe);
    CHECK(throws_with([&] { (void)nn::resample_abs_pos_embed(pe, 8, 4, 4, 3, 3, 1); }, "expected (1 + 4*4) * 8"));
    CHECK(throws_with([&] { (void)nn::resample_abs_pos_embed(pe, 8, 3, 3, 0, 3, 1); }, "bad sizes"));
}

TEST_CASE("export -> import -> export is exact, online and target; MAE extras are left out") {
    TempDir tmp;
    const vit::VitDims d = small_dims();
    const auto ck = tmp.path / "checkpoint.safetensors";
    make_checkpoint(ck, d);
    const io::SafetensorsFile orig(ck);
    for (const std::string prefix : {"", "target."}) {
        CAPTURE(prefix);
        const auto ex = tmp.path / ("vit" + prefix + "safetensors");
        apps::export_checkpoint_encoder(ck, ex, d, prefix);
        const io::SafetensorsFile e(ex);
        CHECK(e.metadata().at("dataset") == "test");
        CHECK_FALSE(e.contains("decoder_embed.weight"));
        CHECK_FALSE(e.contains("mask_token"));
        CHECK_FALSE(e.contains("target.cls_token"));
        CHECK(e.info("patch_embed.proj.weight").shape == Shape{16, 1, 4, 4});
        const std::vector<float> sincos = nn::sincos_pos_embed_2d<float>(16, 3);
        CHECK(e.read<float>("pos_embed") == sincos);

        const auto im = tmp.path / ("imported" + prefix + "safetensors");
        const io::TimmImport<float> r = apps::import_timm_checkpoint(ex, im, d);
        CHECK_FALSE(r.pos_resampled);
        CHECK_FALSE(r.channels_adapted);
        CHECK(r.ignored.empty());
        CHECK(r.pos_vs_sincos == 0.0);
        const io::SafetensorsFile i(im);
        std::size_t n = 0;
        for (const auto& t : orig.tensors()) {
            if (!t.name.starts_with(prefix) || !io::is_encoder_name(t.name.substr(prefix.size()))) continue;
            const std::string name = t.name.substr(prefix.size());
            CAPTURE(name);
            REQUIRE(i.contains(name));
            CHECK(i.info(name).shape == t.shape);
            CHECK(raw(i, name) == raw(orig, t.name));  // bit for bit
            ++n;
        }
        CHECK(n == 1 + 2 + 2 * 12 + 2);  // cls_token, patch_embed w/b, 12 per block, norm w/b
        CHECK(raw(i, "pos_embed") == raw(e, "pos_embed"));
        CHECK(i.metadata().at("imported_from") == ex.filename().string());

        // and back: the imported checkpoint exports to the same tensors
        const auto ex2 = tmp.path / ("again" + prefix + "safetensors");
        apps::export_checkpoint_encoder(im, ex2, d);
        const io::SafetensorsFile e2(ex2);
        REQUIRE(e2.tensors().size() == e.tensors().size());
        for (const auto& t : e.tensors()) CHECK(raw(e2, t.name) == raw(e, t.name));
    }
}

TEST_CASE("import resamples pos_embed to another grid, lists ignored MAE tensors, reads F16 / BF16") {
    TempDir tmp;
    const auto ck = tmp.path / "checkpoint.safetensors", ex = tmp.path / "vit.safetensors";
    make_checkpoint(ck, small_dims());
    apps::export_checkpoint_encoder(ck, ex, small_dims());
    // an MAE file: decoder, mask token and a head ride along
    const auto mae = tmp.path / "mae.safetensors";
    rewrite(ex, mae, [](auto& t) {
        t["decoder_pred.weight"] = Tensor{Shape{2, 16}, std::vector<float>(32, 1.0f)};
        t["mask_token"] = Tensor{Shape{1, 1, 16}, std::vector<float>(16, 1.0f)};
        t["head.weight"] = Tensor{Shape{10, 16}, std::vector<float>(160, 1.0f)};
    });
    const auto out = tmp.path / "ckpt5.safetensors";
    const io::TimmImport<float> r = apps::import_timm_checkpoint(mae, out, small_dims(20));  // grid 3 -> 5
    CHECK(r.pos_resampled);
    CHECK(r.source_grid_h == 3);
    CHECK(r.ignored == std::vector<std::string>{"decoder_pred.weight", "head.weight", "mask_token"});
    const io::SafetensorsFile o(out);
    const std::vector<float> want = nn::resample_abs_pos_embed(nn::sincos_pos_embed_2d<float>(16, 3), 16, 3, 3, 5, 5, 1);
    CHECK(o.read<float>("pos_embed") == want);
    CHECK(o.info("pos_embed").shape == Shape{1, 26, 16});
    CHECK(r.pos_vs_sincos > 1e-3);  // a resampled table is not the 5x5 sin-cos table
    CHECK(o.metadata().at("imported_grid") == "3x3");

    // BF16: values rounded to bfloat16 (the top 16 bits of a float) read back exactly
    const auto bf = tmp.path / "bf16.safetensors";
    {
        const io::SafetensorsFile f(ex);
        io::SafetensorsWriter w;
        std::vector<std::vector<std::uint16_t>> keep;
        for (const auto& t : f.tensors()) {
            const std::vector<float> v = f.read<float>(t.name);
            std::vector<std::uint16_t> b(v.size());
            for (std::size_t i = 0; i < v.size(); ++i) {
                std::uint32_t u;
                std::memcpy(&u, &v[i], 4);
                b[i] = static_cast<std::uint16_t>(u >> 16);
            }
            keep.push_back(std::move(b));
            w.add_raw(t.name, io::Dtype::BF16, t.shape, keep.back().data());
        }
        w.write(bf);
    }
    const auto bfo = tmp.path / "bf16-ckpt.safetensors";
    apps::import_timm_checkpoint(bf, bfo, small_dims());
    const io::SafetensorsFile b(bfo);
    const std::vector<float> src = io::SafetensorsFile(ex).read<float>("blocks.1.mlp.fc1.weight");
    const std::vector<float> got = b.read<float>("blocks.1.mlp.fc1.weight");
    for (std::size_t i = 0; i < src.size(); ++i) {
        std::uint32_t u;
        std::memcpy(&u, &src[i], 4);
        u &= 0xffff0000u;
        float t;
        std::memcpy(&t, &u, 4);
        CHECK(got[i] == t);
    }
}

TEST_CASE("import adapts 3-channel patch weights as timm's adapt_input_conv (sum for 1 channel)") {
    TempDir tmp;
    const auto ck = tmp.path / "checkpoint.safetensors", ex = tmp.path / "vit3.safetensors";
    make_checkpoint(ck, small_dims(12, 3));
    apps::export_checkpoint_encoder(ck, ex, small_dims(12, 3));
    const std::vector<float> w3 = io::SafetensorsFile(ex).read<float>("patch_embed.proj.weight");
    const auto o1 = tmp.path / "c1.safetensors", o2 = tmp.path / "c2.safetensors";
    const io::TimmImport<float> r = apps::import_timm_checkpoint(ex, o1, small_dims(12, 1));
    CHECK(r.channels_adapted);
    CHECK(r.source_channels == 3);
    const std::vector<float> w1 = io::SafetensorsFile(o1).read<float>("patch_embed.proj.weight");
    REQUIRE(w1.size() == 16 * 16);
    for (long o = 0; o < 16; ++o)
        for (long e = 0; e < 16; ++e) {
            const float* s = w3.data() + o * 48 + e;
            CHECK(w1[static_cast<std::size_t>(o * 16 + e)] == (s[0] + s[16]) + s[32]);
        }
    apps::import_timm_checkpoint(ex, o2, small_dims(12, 2));  // 3 -> 2: RGB repeated, scaled by 3/2
    const std::vector<float> w2 = io::SafetensorsFile(o2).read<float>("patch_embed.proj.weight");
    CHECK(w2[16] == w3[16] * 1.5f);
    CHECK(w2[32] == w3[48] * 1.5f);
    // 1 -> 3 is not what adapt_input_conv does
    const auto ex1 = tmp.path / "vit1.safetensors";
    make_checkpoint(ck, small_dims());
    apps::export_checkpoint_encoder(ck, ex1, small_dims());
    CHECK(throws_with([&] { apps::import_timm_checkpoint(ex1, o2, small_dims(12, 3)); }, "vit1.safetensors",
                      "has 1 input channels and the model 3", "only 3-channel weights can be adapted"));
}

TEST_CASE("import refuses bad files: wrong shapes, missing and unknown tensors, other patch or depth, bad files") {
    TempDir tmp;
    const auto ck = tmp.path / "checkpoint.safetensors", ex = tmp.path / "vit.safetensors";
    const vit::VitDims d = small_dims();
    make_checkpoint(ck, d);
    apps::export_checkpoint_encoder(ck, ex, d);
    const auto bad = tmp.path / "bad.safetensors", out = tmp.path / "out.safetensors";
    auto import_bad = [&](const std::function<void(std::map<std::string, Tensor>&)>& edit, auto... pieces) {
        rewrite(ex, bad, edit);
        return throws_with([&] { apps::import_timm_checkpoint(bad, out, d); }, "timm file '" + bad.string() + "'",
                           pieces...);
    };
    CHECK(import_bad([](auto& t) { t["blocks.1.attn.qkv.weight"].shape = Shape{48, 8, 2}; },
                     "tensor 'blocks.1.attn.qkv.weight' has shape (48, 8, 2), expected (48, 16)"));
    CHECK(import_bad([](auto& t) { t.erase("norm.weight"); t.erase("blocks.0.mlp.fc2.bias"); }, "2 problem(s)",
                     "missing tensor 'norm.weight' (expected (16,))", "missing tensor 'blocks.0.mlp.fc2.bias' (expected (16,))"));
    CHECK(import_bad([](auto& t) { t["blocks.0.ls1.gamma"] = Tensor{Shape{16}, std::vector<float>(16, 1.0f)}; },
                     "tensor 'blocks.0.ls1.gamma' (16,) has no counterpart in lcmae's ViT encoder"));
    CHECK(import_bad([](auto& t) { t.erase("pos_embed"); }, "missing tensor 'pos_embed'"));
    CHECK(import_bad([](auto& t) { t["pos_embed"] = Tensor{Shape{1, 9, 16}, std::vector<float>(9 * 16)}; },
                     "'pos_embed' has 9 rows, expected 1 (CLS) + a square grid"));
    CHECK(import_bad([](auto& t) { t["cls_token"].shape = Shape{1, 16}; },
                     "tensor 'cls_token' has shape (1, 16), expected (1, 1, 16)"));
    CHECK(import_bad(
        [](auto& t) {
            t["patch_embed.proj.weight"] = Tensor{Shape{16, 1, 2, 2}, std::vector<float>(64)};
        },
        "patch 2x2, expected 4x4 (resampling the patch embedding is not supported)"));
    CHECK(import_bad(
        [](auto& t) {
            for (auto it = t.begin(); it != t.end();) it = it->first.starts_with("blocks.1.") ? t.erase(it) : std::next(it);
        },
        "the file has 1 blocks (blocks.0 .. blocks.0), expected 2"));
    // other width: every tensor's expected shape is named
    CHECK(throws_with([&] { apps::import_timm_checkpoint(ex, out, vit::VitDims{32, 2, 2, 4, 12, 1, 4}); },
                      "tensor 'cls_token' has shape (1, 1, 16), expected (1, 1, 32)"));
    // not a file, not safetensors
    CHECK(throws_with([&] { apps::import_timm_checkpoint(tmp.path / "none.safetensors", out, d); }, "does not exist"));
    const auto junk = tmp.path / "junk.safetensors";
    std::ofstream(junk) << "this is not a safetensors file";
    CHECK(throws_with([&] { apps::import_timm_checkpoint(junk, out, d); }, "junk.safetensors"));
    CHECK_FALSE(std::filesystem::exists(out));
    // export: a checkpoint without the encoder
    CHECK(throws_with([&] { apps::export_checkpoint_encoder(ck, out, d, "ema."); }, "missing tensor 'ema.cls_token'"));
    CHECK(throws_with([&] { apps::export_checkpoint_encoder(tmp.path / "none", out, d); }, "checkpoint file", "does not exist"));
}
