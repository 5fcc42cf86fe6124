// lcmae/optim/ema.hpp - the target (EMA) model update: target = d * target + (1 - d) * online.
//
// Every target entry - Parameters AND Buffers (BatchNorm running statistics) - is matched by name
// to the online arena once, at construction; a target name without an online twin, or with a
// different shape, is an error naming it. Online entries without a target twin (decoder,
// predictor) are simply not followed. Matched slots that are adjacent in BOTH arenas are merged
// into runs, so an update is a few long loops (one when the layouts agree). d comes from
// ema_momentum() in schedule.hpp, counted in optimiser steps.
#pragma once

#include <cstddef>
#include <vector>

#include "lcmae/core/arena.hpp"
#include "lcmae/core/error.hpp"
#include "lcmae/optim/state.hpp"

namespace lcmae::optim {

template <class T>
class EmaUpdater {
public:
    struct Run {
        std::size_t target_offset = 0;
        std::size_t online_offset = 0;
        std::size_t count = 0;
    };

    EmaUpdater(ParamArena<T>& target, const ParamArena<T>& online) : target_(&target), online_(&online) {
        LCMAE_CHECK(target.allocated() && online.allocated(), "EmaUpdater needs two allocated arenas");
        LCMAE_CHECK(&target != &online, "the EMA target and the online model must be different arenas");
        for (const auto& te : target.entries()) {
            LCMAE_CHECK(online.contains(te.name),
                        "EMA target entry '" << te.name << "' has no entry of the same name in the online model");
            const ParamEntry& oe = online.entry(te.name);
            LCMAE_CHECK(oe.shape == te.shape, "EMA target entry '" << te.name << "' has shape " << te.shape.str()
                                                                   << " but the online one has " << oe.shape.str());
            LCMAE_CHECK(oe.kind == te.kind, "EMA entry '" << te.name << "' is a "
                                                          << (te.kind == EntryKind::Buffer ? "buffer" : "parameter")
                                                          << " in the target but not in the online model");
            if (te.slot.count == 0) continue;
            if (!runs_.empty()) {
                Run& r = runs_.back();
                if (r.target_offset + r.count == te.slot.offset && r.online_offset + r.count == oe.slot.offset) {
                    r.count += te.slot.count;
                    continue;
                }
            }
            runs_.push_back({te.slot.offset, oe.slot.offset, te.slot.count});
        }
    }

    /// target = d * target + (1 - d) * online over every matched entry.
    void update(double d) {
        LCMAE_CHECK(d >= 0 && d <= 1, "EMA momentum must lie in [0, 1], got " << d);
        const T a = T(d), b = T(1.0 - d);
        T* t = target_->values().data();
        const T* o = online_->values().data();
        for (const Run& r : runs_) {
            T* tr = t + r.target_offset;
            const T* orun = o + r.online_offset;
            const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(r.count);
#pragma omp parallel for simd schedule(static) if (n > 65536)
            for (std::ptrdiff_t i = 0; i < n; ++i) tr[i] = a * tr[i] + b * orun[i];
        }
    }

    /// Makes the target an exact copy of the online model (its initialisation).
    void copy_from_online() {
        T* t = target_->values().data();
        const T* o = online_->values().data();
        for (const Run& r : runs_)
            for (std::size_t i = 0; i < r.count; ++i) t[r.target_offset + i] = o[r.online_offset + i];
    }

    const std::vector<Run>& runs() const noexcept { return runs_; }

private:
    ParamArena<T>* target_;
    const ParamArena<T>* online_;
    std::vector<Run> runs_;
};

}  // namespace lcmae::optim
