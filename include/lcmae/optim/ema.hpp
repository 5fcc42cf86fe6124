// lcmae/optim/ema.hpp - the target (EMA) model update: target = d * target + (1 - d) * online.
//
// Every target entry - Parameters AND Buffers (BatchNorm running statistics) - is matched by name
// to the online arena once, at construction; a target name without an online twin, or with a
// different shape, is an error naming it. Online entries without a target twin (decoder,
// predictor) are simply not followed. Matched slots that are adjacent in BOTH arenas are merged
// into runs, so an update is one ema_update op over the run table (backend/ops.hpp; one run when
// the layouts agree). d comes from ema_momentum() in schedule.hpp, counted in optimiser steps. The
// run table is host data; its backend copy is uploaded at the first update.
#pragma once

#include <concepts>
#include <cstddef>
#include <vector>

#include "lcmae/core/arena.hpp"
#include "lcmae/core/error.hpp"
#include "lcmae/optim/state.hpp"

namespace lcmae::optim {

template <class T, class Backend = backend::Cpu>
class EmaUpdater {
public:
    using Run = ops::EmaRun;  // {target_offset, online_offset, count}
    using Arena = ParamArena<T, Backend>;

    EmaUpdater(Arena& target, const Arena& online) : target_(&target), online_(&online) {
        LCMAE_CHECK(target.allocated() && online.allocated(), "EmaUpdater needs two allocated arenas");
        LCMAE_CHECK(&target != &online, "the EMA target and the online model must be different arenas");
        std::vector<Run> runs;
        for (const auto& te : target.entries()) {  // host: builds the run table
            LCMAE_CHECK(online.contains(te.name),
                        "EMA target entry '" << te.name << "' has no entry of the same name in the online model");
            const ParamEntry& oe = online.entry(te.name);
            LCMAE_CHECK(oe.shape == te.shape, "EMA target entry '" << te.name << "' has shape " << te.shape.str()
                                                                   << " but the online one has " << oe.shape.str());
            LCMAE_CHECK(oe.kind == te.kind, "EMA entry '" << te.name << "' is a "
                                                          << (te.kind == EntryKind::Buffer ? "buffer" : "parameter")
                                                          << " in the target but not in the online model");
            if (te.slot.count == 0) continue;
            if (!runs.empty()) {
                Run& r = runs.back();
                if (r.target_offset + r.count == te.slot.offset && r.online_offset + r.count == oe.slot.offset) {
                    r.count += te.slot.count;
                    continue;
                }
            }
            runs.push_back({te.slot.offset, oe.slot.offset, te.slot.count});
        }
        runs_.set(std::move(runs));
    }

    /// target = d * target + (1 - d) * online over every matched entry (one ema_update op).
    void update(const Backend& ctx, double d) {
        LCMAE_CHECK(d >= 0 && d <= 1, "EMA momentum must lie in [0, 1], got " << d);
        ema_update(ctx, runs_.size(), runs_.host().data(), runs_.device(ctx), d, target_->values().data(),
                   online_->values().data());
    }
    void update(double d)
        requires std::same_as<Backend, backend::Cpu>
    {
        update(backend::Cpu(), d);
    }

    /// Makes the target an exact copy of the online model (its initialisation): one copy per run.
    void copy_from_online(const Backend& ctx) {
        for (const Run& r : runs_.host())  // host: the run table (one copy op per run)
            copy(ctx, static_cast<long>(r.count), online_->values().data() + r.online_offset,
                 target_->values().data() + r.target_offset);
    }
    void copy_from_online()
        requires std::same_as<Backend, backend::Cpu>
    {
        copy_from_online(backend::Cpu());
    }

    const std::vector<Run>& runs() const noexcept { return runs_.host(); }

private:
    Arena* target_;
    const Arena* online_;
    detail::DeviceTable<Run, Backend> runs_;
};

}  // namespace lcmae::optim
