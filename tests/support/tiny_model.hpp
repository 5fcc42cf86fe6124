// tests/support/tiny_model.hpp - the tiny model every whole-model test uses: ViT width 8, 1 block,
// 2 heads, patch 2 on 8 x 8 gray images (16 tokens of 4 values), a decoder of width 8 with 1 block,
// heads of width 12. Small enough for full gradient checks in double, large enough for every
// policy (Symmetric views keep 4 of 16 tokens per view at mask ratio 0.75).
#pragma once

#include "lcmae/models/model_spec.hpp"

namespace lcmae::test {

inline models::ModelSpec tiny_spec(models::GuidanceLoss loss, long max_batch = 4) {
    models::ModelSpec s;
    s.encoder = vit::VitDims{8, 1, 2, 2, 8, 1, 4};
    s.decoder = models::DecoderDims{8, 1, 2};
    s.head_hidden = 12;
    s.loss = loss;
    s.max_batch = max_batch;
    return s;
}

}  // namespace lcmae::test
