// Tests of apps::checkpoint_encoder_dims: the encoder geometry `lcmae eval` and `lcmae analyze`
// build for a checkpoint, from its lcmae_config metadata or, without it, from its tensor shapes.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "lcmae/apps/checkpoint_dims.hpp"
#include "lcmae/io/safetensors.hpp"

#include "io/test_util.hpp"

using namespace lcmae;
using lcmae::test::TempDir;
using lcmae::test::throws_with;

namespace {
/// A file holding the encoder tensors that carry the geometry (values are irrelevant here).
struct EncoderFile {
    std::vector<float> zeros = std::vector<float>(1 << 16, 0.f);
    io::SafetensorsWriter w;
    EncoderFile(const std::string& prefix, long D, long C, long P, long depth, long tokens) {
        w.add(prefix + "cls_token", Shape{1, 1, D}, zeros.data());
        w.add(prefix + "patch_embed.proj.weight", Shape{D, C, P, P}, zeros.data());
        for (long b = 0; b < depth; ++b) w.add(prefix + "blocks." + std::to_string(b) + ".norm1.weight", Shape{D}, zeros.data());
        if (tokens > 0) w.add(prefix + "pos_embed", Shape{1, 1 + tokens, D}, zeros.data());
    }
};
}  // namespace

TEST_CASE("checkpoint_encoder_dims reads the trainer's lcmae_config first") {
    TempDir dir;
    const auto path = dir.path / "ckpt.safetensors";
    EncoderFile f("", 64, 3, 4, 2, 64);  // shapes say heads 1 (64 / 64) and 32 px ...
    f.w.set_metadata("lcmae_config", "seed=0;encoder=64x2x4 patch 4 image 32 channels 3;decoder=32x1x2;");
    f.w.write(path);
    const auto cd = apps::checkpoint_encoder_dims(path.string());
    CHECK(cd.from_metadata);
    CHECK(cd.dims.dim == 64);
    CHECK(cd.dims.depth == 2);
    CHECK(cd.dims.heads == 4);  // ... the metadata says 4: it wins
    CHECK(cd.dims.patch == 4);
    CHECK(cd.dims.image == 32);
    CHECK(cd.dims.channels == 3);
}

TEST_CASE("checkpoint_encoder_dims measures a file without lcmae_config from its tensors") {
    TempDir dir;
    const auto path = dir.path / "imported.safetensors";
    EncoderFile f("", 128, 1, 4, 3, 49);  // 7 x 7 grid of 4 px patches: 28 px
    f.w.write(path);
    const auto cd = apps::checkpoint_encoder_dims(path.string(), "", 32);
    CHECK_FALSE(cd.from_metadata);
    CHECK(cd.dims.dim == 128);
    CHECK(cd.dims.depth == 3);
    CHECK(cd.dims.heads == 2);  // width / 64
    CHECK(cd.dims.patch == 4);
    CHECK(cd.dims.image == 28);  // from pos_embed, not the fallback
    CHECK(cd.dims.channels == 1);

    SUBCASE("the target's copy under 'target.'") {
        const auto path2 = dir.path / "target.safetensors";
        EncoderFile t("target.", 64, 3, 8, 1, 0);  // no position table: the fallback image size
        t.w.write(path2);
        const auto td = apps::checkpoint_encoder_dims(path2.string(), "target.", 32);
        CHECK(td.dims.depth == 1);
        CHECK(td.dims.patch == 8);
        CHECK(td.dims.image == 32);
        CHECK(throws_with([&] { apps::checkpoint_encoder_dims(path2.string(), ""); }, "holds no ViT encoder under ''"));
    }
}

TEST_CASE("checkpoint_encoder_dims rejects what it cannot read, naming the file") {
    TempDir dir;
    SUBCASE("malformed encoder text in lcmae_config") {
        const auto path = dir.path / "bad.safetensors";
        EncoderFile f("", 64, 3, 4, 2, 64);
        f.w.set_metadata("lcmae_config", "encoder=64x2 patch 4;");
        f.w.write(path);
        CHECK(throws_with([&] { apps::checkpoint_encoder_dims(path.string()); }, "bad.safetensors", "encoder='64x2 patch 4'",
                          "expected 'DxDEPTHxHEADS patch P image I channels C'"));
    }
    SUBCASE("heads that do not divide the width") {
        const auto path = dir.path / "heads.safetensors";
        EncoderFile f("", 64, 3, 4, 2, 64);
        f.w.set_metadata("lcmae_config", "encoder=64x2x5 patch 4 image 32 channels 3;");
        f.w.write(path);
        CHECK(throws_with([&] { apps::checkpoint_encoder_dims(path.string()); }, "encoder='64x2x5 patch 4 image 32 channels 3'"));
    }
    SUBCASE("a width that is no multiple of 64 and no metadata") {
        const auto path = dir.path / "w96.safetensors";
        EncoderFile f("", 96, 3, 4, 2, 64);
        f.w.write(path);
        CHECK(throws_with([&] { apps::checkpoint_encoder_dims(path.string()); }, "w96.safetensors", "width 96", "head count"));
    }
    SUBCASE("a non-square position table") {
        const auto path = dir.path / "grid.safetensors";
        EncoderFile f("", 64, 3, 4, 2, 50);
        f.w.write(path);
        CHECK(throws_with([&] { apps::checkpoint_encoder_dims(path.string()); }, "pos_embed has 50 patch positions, not a square grid"));
    }
    SUBCASE("no encoder at all") {
        const auto path = dir.path / "none.safetensors";
        std::vector<float> x(4, 0.f);
        io::SafetensorsWriter w;
        w.add("decoder_embed.weight", Shape{2, 2}, x.data());
        w.write(path);
        CHECK(throws_with([&] { apps::checkpoint_encoder_dims(path.string()); }, "none.safetensors", "holds no ViT encoder"));
    }
}
