// lcmae/apps/main_job_models.hpp - the main job's models as types, shared by the programs that
// make checkpoints (tools/cmd_pretrain.cpp: `lcmae pretrain`) and those that read them
// (tools/cmd_eval.cpp: `lcmae eval`).
//
// ViT-Ti width with a CPU-sized depth (6 blocks, so a few minutes on 2 cores see real progress),
// patch 4; a 128 x 2 x 4 decoder and heads of width 1024. A checkpoint written by the main job on
// Fashion-MNIST holds an encoder of FashionMnistBackbone's geometry under timm's names.
// `lcmae pretrain --model` picks a preset (tiny: the main job's; small: wider and deeper) at the
// data's geometry (28 px gray for Fashion-MNIST, 32 px RGB for CIFAR-10 and image folders).
#pragma once

#include "lcmae/lcmae.hpp"

namespace lcmae::apps {

template <int Image, int Channels>
using TinyBackbone = vit::Config<192, 6, 3, 4, Image, Channels>;   // the main job's: ViT-Ti width, 6 blocks
template <int Image, int Channels>
using SmallBackbone = vit::Config<384, 8, 6, 4, Image, Channels>;  // ViT-S width, 8 blocks (~5x the compute)

/// The presets at a geometry known only at run time (`lcmae eval --ckpt random --data ...`).
inline vit::VitDims tiny_dims(long image, long channels) {
    vit::VitDims d = TinyBackbone<32, 3>::dims();
    d.image = image;
    d.channels = channels;
    return d;
}
inline vit::VitDims small_dims(long image, long channels) {
    vit::VitDims d = SmallBackbone<32, 3>::dims();
    d.image = image;
    d.channels = channels;
    return d;
}

using FashionMnistBackbone = TinyBackbone<28, 1>;  // 28 px gray: 49 tokens
using FolderBackbone = TinyBackbone<32, 3>;        // image folders at 32 px RGB: 64 tokens
struct MainJobRecipe : recipe::Cpu {
    static constexpr long decoder_depth = 2;
    static constexpr long head_hidden = 1024;
};
/// LC-SimMIM (appendix B.1) at the main job's sizes: the SimMIM baseline and the Paper view schedule.
struct MainJobSimMimRecipe : MainJobRecipe {
    using Baseline = baseline::SimMim;
    using Views = views::Paper;
};
template <class Backbone, class Loss, class Crop, class Recipe = MainJobRecipe>
using MainJobModel = LCMAE<Backbone, Loss, Crop, backend::Cpu, Recipe>;

}  // namespace lcmae::apps
