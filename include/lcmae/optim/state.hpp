// lcmae/optim/state.hpp - what an optimiser exposes so a training-state file can save and restore
// it: its moment buffers (each laid out exactly like the arena's value buffer, in the backend's
// memory) and its step count; and the segment table type the optimiser ops take.
#pragma once

#include <concepts>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "lcmae/backend/cpu/optim.hpp"
#include "lcmae/backend/optim_types.hpp"
#include "lcmae/core/arena.hpp"

namespace lcmae::optim {

/// A non-owning handle on one optimiser's state. `name` prefixes its tensors in the state file
/// ("<name>.<buffer>.<entry name>"), so two optimisers in one file need different names.
template <class T, class Backend = backend::Cpu>
struct OptimizerStateRef {
    std::string name;
    const ParamArena<T, Backend>* arena = nullptr;
    std::vector<std::pair<std::string, dbuffer<Backend, T>*>> buffers;  // e.g. {"exp_avg", &m}
    std::uint64_t* step = nullptr;
    /// Entries whose moments are stored (the optimiser's trainable entries).
    std::vector<std::size_t> entry_indices;
};

/// Slots of one arena that touch (no padding between them), merged into one long run, with the
/// run's lr scale and decay flag: one row of the table the optimiser ops take (backend/ops.hpp).
using Segment = ops::OptimSegment;

namespace detail {
/// A host table and its copy in backend memory, uploaded lazily (at the next op that needs it) so
/// constructors and setters need no backend context.
template <class Row, class Backend>
class DeviceTable {
public:
    void set(std::vector<Row> rows) {
        host_ = std::move(rows);
        dev_.resize(host_.size());
        dirty_ = true;
    }
    const std::vector<Row>& host() const noexcept { return host_; }
    long size() const noexcept { return static_cast<long>(host_.size()); }
    /// The backend copy, uploaded first if the rows changed since the last call.
    dptr<Backend, const Row> device(const Backend& ctx) const {
        if (dirty_ && !host_.empty()) upload(ctx, size(), host_.data(), dev_.data());
        dirty_ = false;
        return dev_.data();
    }

private:
    std::vector<Row> host_;
    mutable dbuffer<Backend, Row> dev_;
    mutable bool dirty_ = false;
};
}  // namespace detail

}  // namespace lcmae::optim
