// lcmae/apps/main_job_models.hpp - the main job's models as types, shared by the programs that
// make checkpoints (examples/lcmae_pretrain.cpp) and those that read them (tools/lcmae.cpp: eval).
//
// ViT-Ti width with a CPU-sized depth (6 blocks, so a few minutes on 2 cores see real progress),
// patch 4; a 128 x 2 x 4 decoder and heads of width 1024. A checkpoint written by the main job on
// Fashion-MNIST holds an encoder of FashionMnistBackbone's geometry under timm's names.
#pragma once

#include "lcmae/lcmae.hpp"

namespace lcmae::apps {

using FashionMnistBackbone = vit::Config<192, 6, 3, 4, 28, 1>;  // 28 px gray: 49 tokens
using FolderBackbone = vit::Config<192, 6, 3, 4, 32, 3>;        // image folders at 32 px RGB: 64 tokens
struct MainJobRecipe : recipe::Cpu {
    static constexpr long decoder_depth = 2;
    static constexpr long head_hidden = 1024;
};
template <class Backbone, class Loss, class Crop>
using MainJobModel = LCMAE<Backbone, Loss, Crop, backend::Cpu, MainJobRecipe>;

}  // namespace lcmae::apps
