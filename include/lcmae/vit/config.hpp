// lcmae/vit/config.hpp - compile-time backbone configurations and their presets (SPEC 1).
//
// Structure is a type: vit::Config<Dim, Depth, Heads, Patch, Image, Channels>. Dims that cannot
// work fail to compile with a sentence that says why. Models read the values through VitDims, a
// plain runtime struct, so the code that runs is shared by every preset.
#pragma once

#include <concepts>

namespace lcmae::vit {

/// The runtime form of a backbone configuration.
struct VitDims {
    long dim = 0, depth = 0, heads = 0, patch = 0, image = 0, channels = 0, mlp_ratio = 4;
    constexpr long grid() const { return image / patch; }
    constexpr long tokens() const { return grid() * grid(); }
    constexpr long patch_dim() const { return channels * patch * patch; }
    constexpr long head_dim() const { return dim / heads; }
    constexpr long mlp_hidden() const { return dim * mlp_ratio; }
    constexpr bool operator==(const VitDims&) const = default;
};

template <int Dim, int Depth, int Heads, int Patch, int Image, int Channels>
struct Config {
    static_assert(Dim > 0 && Depth > 0 && Heads > 0 && Patch > 0 && Image > 0 && Channels > 0,
                  "vit::Config: every dimension must be positive");
    static_assert(Dim % Heads == 0,
                  "vit::Config: Dim must be divisible by Heads, so that every head gets Dim/Heads channels");
    static_assert(Dim % 4 == 0,
                  "vit::Config: Dim must be a multiple of 4, because the 2-D sin-cos position embedding "
                  "splits the width into four equal parts");
    static_assert(Image % Patch == 0,
                  "vit::Config: Image must be divisible by Patch, so that the patches tile the image exactly");

    static constexpr int dim = Dim, depth = Depth, heads = Heads, patch = Patch, image = Image, channels = Channels;
    static constexpr int grid = Image / Patch;
    static constexpr int tokens = grid * grid;
    static constexpr VitDims dims() { return VitDims{Dim, Depth, Heads, Patch, Image, Channels, 4}; }
};

/// What a backbone configuration type provides.
template <class C>
concept Backbone = requires {
    { C::dims() } -> std::same_as<VitDims>;
    { C::tokens } -> std::convertible_to<int>;
};

// The paper's backbones (224 px, patch 16; ViT-H/14 optional).
using Tiny16 = Config<192, 12, 3, 16, 224, 3>;
using Small16 = Config<384, 12, 6, 16, 224, 3>;  // 6 heads, not MoCo v3's 12 (SPEC 1)
using Base16 = Config<768, 12, 12, 16, 224, 3>;
using Large16 = Config<1024, 24, 16, 16, 224, 3>;
using Huge14 = Config<1280, 32, 16, 14, 224, 3>;

// CPU presets. Tiny32: ViT-Ti width at 32 px / patch 4 / RGB (64 tokens).
using Tiny32 = Config<192, 12, 3, 4, 32, 3>;
// Fashion-MNIST: ViT-Ti width at 28 px / patch 4 / gray (49 tokens).
using FashionMnist28 = Config<192, 12, 3, 4, 28, 1>;

}  // namespace lcmae::vit
