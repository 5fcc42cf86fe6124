// lcmae/optim/state.hpp - what an optimiser exposes so a training-state file can save and restore
// it: its moment buffers (each laid out exactly like the arena's value buffer) and its step count.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "lcmae/core/arena.hpp"
#include "lcmae/core/buffer.hpp"

namespace lcmae::optim {

/// A non-owning handle on one optimiser's state. `name` prefixes its tensors in the state file
/// ("<name>.<buffer>.<entry name>"), so two optimisers in one file need different names.
template <class T>
struct OptimizerStateRef {
    std::string name;
    const ParamArena<T>* arena = nullptr;
    std::vector<std::pair<std::string, AlignedBuffer<T>*>> buffers;  // e.g. {"exp_avg", &m}
    std::uint64_t* step = nullptr;
    /// Entries whose moments are stored (the optimiser's trainable entries).
    std::vector<std::size_t> entry_indices;
};

/// Slots of one arena that touch (no padding between them), merged into one long run.
struct Segment {
    std::size_t offset = 0;
    std::size_t count = 0;
    double lr_scale = 1.0;
    bool decay = false;
};

}  // namespace lcmae::optim
