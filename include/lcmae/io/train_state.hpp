// lcmae/io/train_state.hpp - the training-state file for exact resume.
//
// One safetensors file (so PyTorch can read it), written atomically, holding:
//   "<opt>.<buffer>.<entry>"   optimiser moments per trainable entry, e.g. "adamw.exp_avg.blocks.0.attn.qkv.weight"
//   "<opt>.step"               I64 ()  the optimiser's own step count (bias correction)
//   "state.step"               I64 ()  optimiser steps done by the trainer
//   "state.epoch", "state.iteration"  I64 ()  schedule position (epoch, iteration inside it)
//   "rng.<name>"               I64 (3) seed, stream, position (uint64 bit patterns stored as int64)
//   "int.<name>"               I64 ()  arbitrary named integers
//   "real.<name>"              F64 ()  arbitrary named doubles (exact)
// and metadata {"lcmae_format": "train_state", "lcmae_version": "1", "dtype": "F32"|"F64"} plus the
// caller's (the trainer adds lcmae_step / lcmae_micro / lcmae_run_id to pair it with its checkpoint).
// Moments are written in the optimiser's scalar type; loading converts F32 <-> F64. Loading checks
// the file's names and shapes against the optimiser's arena and fails naming what is wrong.
//
// Backends: the functions take the backend context first (the CPU also has the overloads without
// one). Moments in host memory are written in place; any other backend's moments are downloaded
// into host staging (one download per buffer) and uploaded on load, so the files are
// byte-identical whichever backend wrote them.
#pragma once

#include <bit>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "lcmae/backend/ops.hpp"
#include "lcmae/core/error.hpp"
#include "lcmae/core/rng.hpp"
#include "lcmae/io/safetensors.hpp"
#include "lcmae/optim/state.hpp"

namespace lcmae::io {

/// Scalars of a training state. Add what the trainer needs under `integers` / `reals`.
struct TrainState {
    std::int64_t step = 0;       // optimiser steps done
    std::int64_t epoch = 0;      // schedule position: epoch ...
    std::int64_t iteration = 0;  // ... and micro-batch iteration inside it
    std::map<std::string, Rng> rngs;
    std::map<std::string, std::int64_t> integers;
    std::map<std::string, double> reals;
};

namespace detail {
inline void check_key(const std::string& key, const char* what) {
    LCMAE_CHECK(!key.empty() && key.find('.') == std::string::npos,
                "training-state " << what << " name '" << key << "' must be non-empty and contain no '.'");
}
}  // namespace detail

/// Writes `state` and the given optimisers' state to `path`, atomically. `metadata` is added to the
/// file's metadata (the lcmae_format / lcmae_version / dtype keys cannot be overridden).
template <class T = float, class Backend = backend::Cpu>
    requires std::derived_from<Backend, ops::BackendTag>
void save_train_state(const Backend& ctx, const std::filesystem::path& path, const TrainState& state,
                      const std::vector<optim::OptimizerStateRef<T, Backend>>& optimizers = {},
                      const std::map<std::string, std::string>& metadata = {}) {
    SafetensorsWriter w;
    w.set_metadata(metadata);
    w.set_metadata("lcmae_format", "train_state");
    w.set_metadata("lcmae_version", "1");
    w.set_metadata("dtype", dtype_name(dtype_of<T>()));
    // scalars are copied into storage that outlives the writer calls
    std::vector<std::int64_t> ints;
    std::vector<double> reals;
    ints.reserve(4 + optimizers.size() + 3 * state.rngs.size() + state.integers.size());
    reals.reserve(state.reals.size());
    const auto add_int = [&](std::string name, std::int64_t v) {
        ints.push_back(v);
        w.add(std::move(name), Shape{}, &ints.back());
    };
    add_int("state.step", state.step);
    add_int("state.epoch", state.epoch);
    add_int("state.iteration", state.iteration);
    for (const auto& [k, r] : state.rngs) {
        detail::check_key(k, "RNG");
        const std::size_t at = ints.size();
        ints.push_back(std::bit_cast<std::int64_t>(r.seed()));
        ints.push_back(std::bit_cast<std::int64_t>(r.stream()));
        ints.push_back(std::bit_cast<std::int64_t>(r.position()));
        w.add("rng." + k, Shape{3}, &ints[at]);
    }
    for (const auto& [k, v] : state.integers) {
        detail::check_key(k, "integer");
        add_int("int." + k, v);
    }
    for (const auto& [k, v] : state.reals) {
        detail::check_key(k, "real");
        reals.push_back(v);
        w.add("real." + k, Shape{}, &reals.back());
    }
    std::size_t nbuf = 0;
    for (const auto& o : optimizers) nbuf += o.buffers.size();
    std::vector<std::vector<T>> staging;  // host copies of device moments; live until w.write()
    staging.reserve(nbuf);
    for (const auto& o : optimizers) {
        detail::check_key(o.name, "optimizer");
        LCMAE_CHECK(o.arena != nullptr && o.step != nullptr, "optimizer state '" << o.name << "' is incomplete");
        add_int(o.name + ".step", static_cast<std::int64_t>(*o.step));
        for (const auto& [bname, buf] : o.buffers) {
            LCMAE_CHECK(buf->size() == o.arena->planned_size(),
                        "optimizer buffer '" << o.name << "." << bname << "' does not match its arena's size");
            const T* host = nullptr;
            if constexpr (Backend::host_memory) {
                host = buf->data();
            } else {
                staging.emplace_back(buf->size());
                download(ctx, static_cast<long>(buf->size()), dptr<Backend, const T>(buf->data()), staging.back().data());
                host = staging.back().data();
            }
            for (std::size_t idx : o.entry_indices) {
                const ParamEntry& e = o.arena->entries()[idx];
                w.add(o.name + "." + bname + "." + e.name, e.shape, host + e.slot.offset);
            }
        }
    }
    (void)ctx;
    w.write(path);
}
template <class T = float>
void save_train_state(const std::filesystem::path& path, const TrainState& state,
                      const std::vector<optim::OptimizerStateRef<T>>& optimizers = {},
                      const std::map<std::string, std::string>& metadata = {}) {
    save_train_state<T, backend::Cpu>(backend::Cpu(), path, state, optimizers, metadata);
}

/// Reads `path` into `state` and the optimisers (moments and step counts). Everything is checked
/// before anything is modified; errors name the file and the tensor.
template <class T = float, class Backend = backend::Cpu>
    requires std::derived_from<Backend, ops::BackendTag>
void load_train_state(const Backend& ctx, const std::filesystem::path& path, TrainState& state,
                      const std::vector<optim::OptimizerStateRef<T, Backend>>& optimizers = {}) {
    const SafetensorsFile f(path);
    const auto fmt = f.metadata().find("lcmae_format");
    LCMAE_CHECK(fmt != f.metadata().end() && fmt->second == "train_state",
                "'" << f.path() << "' is not an lcmae training-state file (metadata lcmae_format missing)");
    const auto scalar_int = [&](const std::string& name) {
        const TensorInfo& t = f.info(name);
        LCMAE_CHECK(t.dtype == Dtype::I64 && t.numel() == 1,
                    "'" << name << "' in '" << f.path() << "' must be one I64, got " << t.dtype << " " << t.shape.str());
        std::int64_t v;
        f.read_into(t, &v, 1);
        return v;
    };
    // validate optimiser tensors first
    for (const auto& o : optimizers) {
        LCMAE_CHECK(o.arena != nullptr && o.step != nullptr, "optimizer state '" << o.name << "' is incomplete");
        (void)scalar_int(o.name + ".step");
        for (const auto& [bname, buf] : o.buffers)
            for (std::size_t idx : o.entry_indices) {
                const ParamEntry& e = o.arena->entries()[idx];
                const std::string name = o.name + "." + bname + "." + e.name;
                const TensorInfo* t = f.find(name);
                LCMAE_CHECK(t != nullptr, "training state '" << f.path() << "' lacks optimizer tensor '" << name << "'");
                LCMAE_CHECK(t->shape == e.shape, "optimizer tensor '" << name << "' in '" << f.path() << "' has shape "
                                                                      << t->shape.str() << ", the model has "
                                                                      << e.shape.str());
                LCMAE_CHECK(is_floating(t->dtype), "optimizer tensor '" << name << "' in '" << f.path() << "' has dtype "
                                                                        << t->dtype << ", expected a floating dtype");
            }
    }
    TrainState s;
    s.step = scalar_int("state.step");
    s.epoch = scalar_int("state.epoch");
    s.iteration = scalar_int("state.iteration");
    for (const auto& t : f.tensors()) {
        const std::string_view n = t.name;
        if (n.starts_with("rng.")) {
            LCMAE_CHECK(t.dtype == Dtype::I64 && t.shape == Shape{3},
                        "RNG '" << t.name << "' in '" << f.path() << "' must be I64 (3,), got " << t.dtype << " "
                                << t.shape.str());
            std::int64_t v[3];
            f.read_into(t, v, 3);
            s.rngs[std::string(n.substr(4))] = Rng(std::bit_cast<std::uint64_t>(v[0]), std::bit_cast<std::uint64_t>(v[1]),
                                                   std::bit_cast<std::uint64_t>(v[2]));
        } else if (n.starts_with("int.")) {
            s.integers[std::string(n.substr(4))] = scalar_int(t.name);
        } else if (n.starts_with("real.")) {
            LCMAE_CHECK(t.dtype == Dtype::F64 && t.numel() == 1,
                        "'" << t.name << "' in '" << f.path() << "' must be one F64, got " << t.dtype << " " << t.shape.str());
            double v;
            f.read_into(t, &v, 1);
            s.reals[std::string(n.substr(5))] = v;
        }
    }
    std::vector<T> staging;  // host staging of one tensor for device moments (reused: upload copies)
    for (const auto& o : optimizers) {
        *o.step = static_cast<std::uint64_t>(scalar_int(o.name + ".step"));
        for (const auto& [bname, buf] : o.buffers)
            for (std::size_t idx : o.entry_indices) {
                const ParamEntry& e = o.arena->entries()[idx];
                const std::string name = o.name + "." + bname + "." + e.name;
                if constexpr (Backend::host_memory) {
                    f.read_into(name, buf->data() + e.slot.offset, e.slot.count);
                } else {
                    staging.resize(e.slot.count);
                    f.read_into(name, staging.data(), e.slot.count);
                    upload(ctx, static_cast<long>(e.slot.count), static_cast<const T*>(staging.data()),
                           buf->data() + e.slot.offset);
                }
            }
    }
    (void)ctx;
    state = std::move(s);
}
template <class T = float>
void load_train_state(const std::filesystem::path& path, TrainState& state,
                      const std::vector<optim::OptimizerStateRef<T>>& optimizers = {}) {
    load_train_state<T, backend::Cpu>(backend::Cpu(), path, state, optimizers);
}

}  // namespace lcmae::io
