// lcmae/apps/run_spec.hpp - the engine's spec of a model type for a run: LCMAE<...>::spec(rc) plus
// the one adjustment that depends on the data's geometry rather than on the type. Shared by
// `lcmae pretrain` (tools/cmd_pretrain.cpp) and the ablation executables (examples/ablations/).
//
// SimMIM masks blocks of 2 x 2 patches (32 px at patch 16, appendix B.1); Fashion-MNIST's 7 x 7
// grid (28 px, patch 4) is odd, so there the block is 1 x 1 patch (the engine refuses a block that
// does not tile the grid).
#pragma once

#include "lcmae/lcmae.hpp"

namespace lcmae::apps {

/// The spec that `Model` (an LCMAE<...> type) runs with under `rc`; build the engine from it with
/// models::LcmaeModel<float>(spec, rc.seed).
template <class Model>
constexpr models::ModelSpec run_spec(const RunConfig& rc) {
    models::ModelSpec spec = Model::spec(rc);
    if constexpr (Model::simmim) spec.simmim_block = spec.encoder.grid() % 2 == 0 ? 2 : 1;
    return spec;
}

}  // namespace lcmae::apps
