// lcmae/core/arena.hpp - one allocation for all parameters (and their gradients), one for all
// activations.
//
// The llm.c habit: a model first *plans* (every layer asks for its slots, by name and shape), then
// the arena makes one allocation each for values and gradients, and layers address their tensors by
// slot. Zero-grad, AdamW, EMA, gradient all-reduce, grad-norm and checkpointing are then one pass
// over one contiguous buffer, and the table of entries (timm names, shapes, weight-decay flags) is
// what checkpoints and optimisers read.
//
// Entries are of two kinds: trainable parameters (have gradients, seen by the optimiser) and
// buffers (BatchNorm running statistics: stored, checkpointed and EMA-averaged, never optimised).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

// The default backend (backend::Cpu) comes with its ops, so CPU users need no extra include.
#include "lcmae/backend/cpu/ops_cpu.hpp"
#include "lcmae/core/buffer.hpp"
#include "lcmae/core/error.hpp"
#include "lcmae/core/shape.hpp"

namespace lcmae {

/// A tensor's place in an arena: `offset` and `count` in elements. Cheap to copy; layers keep these.
struct Slot {
    std::size_t offset = 0;
    std::size_t count = 0;
};

enum class EntryKind { Parameter, Buffer };

/// One named tensor of a parameter arena.
struct ParamEntry {
    std::string name;      // timm / MAE name, e.g. "blocks.3.attn.qkv.weight"
    Shape shape;           // PyTorch shape, e.g. (576, 192) for a Linear 192 -> 576 (out, in)
    Slot slot;
    bool weight_decay;     // SPEC 4: false for 1-D tensors and *.bias
    EntryKind kind;
    int layer_id = -1;     // for layer-wise lr decay (SPEC 4); -1 = "the rest"
};

/// SPEC 4's rule: no decay for 1-D tensors and for names ending in ".bias".
inline bool default_weight_decay(std::string_view name, const Shape& shape) {
    if (shape.rank() <= 1) return false;
    return !(name.size() >= 5 && name.substr(name.size() - 5) == ".bias");
}

/// All parameters of one model: a table of entries, a value buffer and a gradient buffer, both in
/// the backend's memory (the table is host data). Slots are padded to 16 elements so every tensor
/// starts 64-byte aligned.
template <class T, class Backend = backend::Cpu>
class ParamArena {
public:
    using Ptr = dptr<Backend, T>;
    using CPtr = dptr<Backend, const T>;
    using Buffer = dbuffer<Backend, T>;

    static constexpr std::size_t kPad = 16;

    /// Plans a trainable parameter. Only valid before allocate().
    Slot add(std::string name, Shape shape) {
        const bool decay = default_weight_decay(name, shape);
        return add_entry(std::move(name), shape, decay, EntryKind::Parameter);
    }
    /// Plans a non-trainable buffer (BatchNorm running statistics).
    Slot add_buffer(std::string name, Shape shape) {
        return add_entry(std::move(name), shape, false, EntryKind::Buffer);
    }
    /// One allocation for values and one for gradients, both zeroed.
    void allocate() {
        LCMAE_CHECK(!allocated_, "ParamArena::allocate called twice");
        values_.resize(planned_);
        grads_.resize(planned_);
        allocated_ = true;
    }
    bool allocated() const noexcept { return allocated_; }

    Ptr value(Slot s) { check_ready(); return values_.data() + s.offset; }
    CPtr value(Slot s) const { check_ready(); return CPtr(values_.data() + s.offset); }
    Ptr grad(Slot s) { check_ready(); return grads_.data() + s.offset; }
    CPtr grad(Slot s) const { check_ready(); return CPtr(grads_.data() + s.offset); }

    Buffer& values() noexcept { return values_; }
    const Buffer& values() const noexcept { return values_; }
    Buffer& grads() noexcept { return grads_; }
    const Buffer& grads() const noexcept { return grads_; }

    const std::vector<ParamEntry>& entries() const noexcept { return entries_; }
    std::vector<ParamEntry>& entries() noexcept { return entries_; }
    /// The entry called `name`; throws naming the missing tensor otherwise.
    const ParamEntry& entry(std::string_view name) const {
        const auto it = index_.find(std::string(name));
        LCMAE_CHECK(it != index_.end(), "no parameter named '" << name << "' in this model");
        return entries_[it->second];
    }
    bool contains(std::string_view name) const { return index_.count(std::string(name)) != 0; }
    /// Sets the layer id (for layer-wise lr decay) of every entry whose name starts with `prefix`.
    void set_layer_id(std::string_view prefix, int id) {
        for (auto& e : entries_)
            if (std::string_view(e.name).substr(0, prefix.size()) == prefix) e.layer_id = id;
    }

    /// Number of values over trainable parameters (buffers excluded).
    std::size_t parameter_count() const noexcept {
        std::size_t n = 0;
        for (const auto& e : entries_)
            if (e.kind == EntryKind::Parameter) n += e.slot.count;
        return n;
    }
    /// Number of values over all entries, buffers included.
    std::size_t value_count() const noexcept {
        std::size_t n = 0;
        for (const auto& e : entries_) n += e.slot.count;
        return n;
    }
    /// Total padded size of the buffers in elements.
    std::size_t planned_size() const noexcept { return planned_; }

    /// Host-memory backends only; generic code zeroes through the backend (optim::zero_grad).
    void zero_grad() noexcept
        requires Backend::host_memory
    {
        grads_.fill(T(0));
    }

private:
    Slot add_entry(std::string name, Shape shape, bool decay, EntryKind kind) {
        LCMAE_CHECK(!allocated_, "cannot add '" << name << "' after the arena was allocated");
        LCMAE_CHECK(!name.empty(), "a parameter needs a name");
        LCMAE_CHECK(index_.count(name) == 0, "parameter name '" << name << "' is used twice");
        const std::size_t count = static_cast<std::size_t>(shape.numel());
        Slot slot{planned_, count};
        planned_ += (count + kPad - 1) / kPad * kPad;
        index_.emplace(name, entries_.size());
        entries_.push_back(ParamEntry{std::move(name), shape, slot, decay, kind, -1});
        return slot;
    }
    void check_ready() const {
        LCMAE_CHECK(allocated_, "the parameter arena is used before allocate()");
    }

    std::vector<ParamEntry> entries_;
    std::unordered_map<std::string, std::size_t> index_;
    Buffer values_, grads_;
    std::size_t planned_ = 0;
    bool allocated_ = false;
};

/// Scratch memory for activations: planned by size for the largest batch, allocated once in the
/// backend's memory. Layers keep Slots and address memory as base + offset; nothing allocates
/// inside a step.
template <class T, class Backend = backend::Cpu>
class ActivationArena {
public:
    using Ptr = dptr<Backend, T>;

    static constexpr std::size_t kPad = 16;
    Slot reserve(std::size_t count) {
        LCMAE_CHECK(!allocated_, "cannot reserve activations after the arena was allocated");
        Slot s{planned_, count};
        planned_ += (count + kPad - 1) / kPad * kPad;
        return s;
    }
    void allocate() {
        LCMAE_CHECK(!allocated_, "ActivationArena::allocate called twice");
        buffer_.resize(planned_);
        allocated_ = true;
    }
    bool allocated() const noexcept { return allocated_; }
    Ptr at(Slot s) {
        LCMAE_CHECK(allocated_, "the activation arena is used before allocate()");
        return buffer_.data() + s.offset;
    }
    std::size_t planned_size() const noexcept { return planned_; }
    std::size_t bytes() const noexcept { return planned_ * sizeof(T); }

private:
    dbuffer<Backend, T> buffer_;
    std::size_t planned_ = 0;
    bool allocated_ = false;
};

/// A host (CPU) arena with exactly `a`'s table and layout: layers initialise their parameters
/// into it on the host (they draw from the host RNG), and one upload moves them to the backend.
template <class T, class Backend>
ParamArena<T, backend::Cpu> host_layout(const ParamArena<T, Backend>& a) {
    ParamArena<T, backend::Cpu> h;
    for (const auto& e : a.entries()) {
        const Slot s = e.kind == EntryKind::Buffer ? h.add_buffer(e.name, e.shape) : h.add(e.name, e.shape);
        LCMAE_CHECK(s.offset == e.slot.offset, "host_layout: '" << e.name << "' landed at another offset");
    }
    h.entries() = a.entries();  // weight-decay flags and layer ids too
    h.allocate();
    return h;
}

}  // namespace lcmae
