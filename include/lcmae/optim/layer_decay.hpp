// lcmae/optim/layer_decay.hpp - layer-wise learning-rate decay for fine-tuning (SPEC 4).
//
// With n = depth + 1: layer id 0 for cls_token, pos_embed and patch_embed.*; k + 1 for blocks.k.*;
// n for every other name (norm, fc_norm, head, ...). The lr of a parameter is scaled by
// decay^(n - id), so the head trains at the full lr and the patch embedding at decay^n.
// Host data only (the arena's entry table and the scales AdamW::set_lr_scales takes), any backend.
#pragma once

#include <cmath>
#include <string_view>
#include <vector>

#include "lcmae/core/arena.hpp"
#include "lcmae/core/error.hpp"

namespace lcmae::optim {

/// The layer id of a timm VisionTransformer parameter name for an encoder of `depth` blocks.
inline int vit_layer_id(std::string_view name, int depth) {
    LCMAE_CHECK(depth > 0, "vit_layer_id needs a positive depth, got " << depth);
    if (name == "cls_token" || name == "pos_embed" || name.starts_with("patch_embed.")) return 0;
    if (name.starts_with("blocks.")) {
        std::string_view rest = name.substr(7);
        int k = 0;
        std::size_t i = 0;
        while (i < rest.size() && rest[i] >= '0' && rest[i] <= '9') k = k * 10 + (rest[i++] - '0');
        LCMAE_CHECK(i > 0 && i < rest.size() && rest[i] == '.', "cannot read a block index from '" << name << "'");
        LCMAE_CHECK(k < depth, "'" << name << "' names block " << k << " but the encoder has " << depth << " blocks");
        return k + 1;
    }
    return depth + 1;
}

/// decay^(n - id) with n = depth + 1; id -1 means "the rest" (= n).
inline double layer_lr_scale(int id, int depth, double decay) {
    const int n = depth + 1;
    if (id < 0) id = n;
    LCMAE_CHECK(id <= n, "layer id " << id << " exceeds depth + 1 = " << n);
    return std::pow(decay, n - id);
}

/// Sets every entry's layer_id from its name (vit_layer_id).
template <class T, class Backend>
void assign_vit_layer_ids(ParamArena<T, Backend>& arena, int depth) {
    for (auto& e : arena.entries()) e.layer_id = vit_layer_id(e.name, depth);  // host: the entry table
}

/// Per-entry lr scales (same order as arena.entries()) from the entries' layer ids, for
/// AdamW::set_lr_scales.
template <class T, class Backend>
std::vector<double> layer_lr_scales(const ParamArena<T, Backend>& arena, int depth, double decay) {
    std::vector<double> s;
    s.reserve(arena.entries().size());
    for (const auto& e : arena.entries()) s.push_back(layer_lr_scale(e.layer_id, depth, decay));  // host: the entry table
    return s;
}

}  // namespace lcmae::optim
