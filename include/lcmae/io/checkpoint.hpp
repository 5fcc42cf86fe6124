// lcmae/io/checkpoint.hpp - parameter arenas to and from safetensors files under timm/MAE names.
//
//   save_params("ckpt.safetensors", {{"", online}, {"target.", target}}, {{"epoch", "10"}});
//   load_params("ckpt.safetensors", online, "");                      // strict
//   load_params(file, target, "target.", Strictness::IgnoreUnexpected);
//
// A file name is prefix + entry name. Every entry (Parameters and Buffers such as BatchNorm running
// statistics) is saved. Loading checks every name, shape and dtype and reports ALL mismatches in one
// error that names the file: missing tensors, unexpected tensors (file names under the prefix that
// the arena lacks), shape (file) vs (model), and non-floating dtypes. Floating dtypes convert
// (F64 files load into float arenas and F32 files into double arenas; BF16/F16 widen). PyTorch's
// BatchNorm counter "*.num_batches_tracked" has no arena twin and is ignored on load.
//
// Backends: every function takes the backend context first (the CPU also has the overloads without
// one). Host-memory backends are read and written in place; any other backend's arena is
// downloaded into a host staging vector (save) or read into one and uploaded (load), so the files
// are byte-identical whichever backend wrote them.
#pragma once

#include <concepts>
#include <cstdint>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "lcmae/backend/ops.hpp"
#include "lcmae/core/arena.hpp"
#include "lcmae/core/error.hpp"
#include "lcmae/io/safetensors.hpp"

namespace lcmae::io {

/// One arena and the prefix its names get in a file ("" for the online model, "target." ...).
template <class T, class Backend = backend::Cpu>
struct NamedArena {
    std::string prefix;
    const ParamArena<T, Backend>& arena;
};

namespace detail {
template <class B>
concept BackendContext = std::derived_from<B, ops::BackendTag>;

/// The arena's values as a host pointer: in place on a host-memory backend, else downloaded into
/// `staging` (which must outlive every use of the pointer, e.g. a SafetensorsWriter's write()).
template <class T, class Backend>
const T* host_values(const Backend& ctx, const ParamArena<T, Backend>& arena, std::vector<T>& staging) {
    if constexpr (Backend::host_memory) {
        (void)ctx;
        (void)staging;
        return arena.values().data();
    } else {
        staging.resize(arena.values().size());  // host staging of the whole arena, for the writer
        download(ctx, static_cast<long>(staging.size()), arena.values().data(), staging.data());
        return staging.data();
    }
}
}  // namespace detail

/// Adds every entry of `arena` to `w` as prefix + name, stored as `dtype` (borrowed when it is T's
/// own dtype, converted otherwise). `staging` holds a download of a device arena and must outlive
/// w.write() (unused on host-memory backends).
template <class T, class Backend>
    requires detail::BackendContext<Backend>
void add_arena(const Backend& ctx, SafetensorsWriter& w, const ParamArena<T, Backend>& arena, std::string_view prefix,
               std::vector<T>& staging, Dtype dtype = dtype_of<T>()) {
    LCMAE_CHECK(arena.allocated(), "cannot save an arena that was not allocated");
    LCMAE_CHECK(is_floating(dtype) && dtype != Dtype::F16 && dtype != Dtype::BF16,
                "parameters are written as F32 or F64, not " << dtype);
    const T* values = detail::host_values(ctx, arena, staging);
    for (const auto& e : arena.entries()) w.add_as(std::string(prefix) + e.name, dtype, e.shape, values + e.slot.offset);
}
/// The CPU form: the arena's memory is borrowed in place.
template <class T>
void add_arena(SafetensorsWriter& w, const ParamArena<T>& arena, std::string_view prefix, Dtype dtype = dtype_of<T>()) {
    std::vector<T> unused;
    add_arena(backend::Cpu(), w, arena, prefix, unused, dtype);
}

/// Writes all arenas (each under its prefix) and the metadata to `path`, atomically.
template <class T, class Backend>
    requires detail::BackendContext<Backend>
void save_params(const Backend& ctx, const std::filesystem::path& path, const std::vector<NamedArena<T, Backend>>& arenas,
                 const std::map<std::string, std::string>& metadata = {}, Dtype dtype = dtype_of<T>()) {
    SafetensorsWriter w;
    w.set_metadata("format", "pt");  // what safetensors.torch writes; helps other readers
    w.set_metadata(metadata);
    std::vector<std::vector<T>> staging(arenas.size());
    for (std::size_t i = 0; i < arenas.size(); ++i) add_arena(ctx, w, arenas[i].arena, arenas[i].prefix, staging[i], dtype);
    w.write(path);
}
template <class T>
void save_params(const std::filesystem::path& path, const std::vector<NamedArena<T>>& arenas,
                 const std::map<std::string, std::string>& metadata = {}, Dtype dtype = dtype_of<T>()) {
    save_params(backend::Cpu(), path, arenas, metadata, dtype);
}

enum class Strictness {
    Strict,            // every arena entry present, nothing unexpected under the prefix
    IgnoreUnexpected,  // every arena entry present; extra file tensors are ignored
    Partial,           // load what matches; missing and unexpected are only reported
};

/// What a load did; with Strict the lists of problems are always empty (it throws instead).
struct LoadReport {
    std::vector<std::string> loaded, missing, unexpected;
};

/// Loads the entries of `arena` from an open file; names in the file are prefix + entry name.
/// Shape and dtype mismatches always throw; missing/unexpected names throw according to `mode`.
template <class T, class Backend>
    requires detail::BackendContext<Backend>
LoadReport load_params(const Backend& ctx, const SafetensorsFile& file, ParamArena<T, Backend>& arena,
                       std::string_view prefix = "", Strictness mode = Strictness::Strict) {
    LCMAE_CHECK(arena.allocated(), "cannot load into an arena that was not allocated");
    LoadReport report;
    std::vector<std::string> problems;
    std::vector<std::pair<const TensorInfo*, const ParamEntry*>> todo;
    for (const auto& e : arena.entries()) {
        const std::string fname = std::string(prefix) + e.name;
        const TensorInfo* t = file.find(fname);
        if (t == nullptr) {
            report.missing.push_back(fname);
            if (mode != Strictness::Partial) problems.push_back("missing tensor '" + fname + "' " + e.shape.str());
            continue;
        }
        if (!(t->shape == e.shape)) {
            problems.push_back("shape mismatch for '" + fname + "': file " + t->shape.str() + " vs model " + e.shape.str());
            continue;
        }
        if (!is_floating(t->dtype)) {
            problems.push_back("dtype of '" + fname + "' is " + dtype_name(t->dtype) +
                               ", expected a floating dtype (F32, F64, BF16, F16)");
            continue;
        }
        todo.emplace_back(t, &e);
    }
    for (const auto& t : file.tensors()) {
        if (!std::string_view(t.name).starts_with(prefix)) continue;
        const std::string_view rest = std::string_view(t.name).substr(prefix.size());
        if (arena.contains(rest) || rest.ends_with("num_batches_tracked")) continue;
        report.unexpected.push_back(t.name);
        if (mode == Strictness::Strict) problems.push_back("unexpected tensor '" + t.name + "' " + t.shape.str());
    }
    if (!problems.empty()) {
        std::ostringstream os;
        os << "checkpoint '" << file.path() << "' does not match the model"
           << (prefix.empty() ? "" : " (prefix '" + std::string(prefix) + "')") << ": " << problems.size()
           << " problem(s):";
        for (const auto& p : problems) os << "\n  " << p;
        LCMAE_FAIL(os.str());
    }
    std::vector<T> staging;  // host staging of one tensor for a device arena (reused: upload copies)
    for (const auto& [t, e] : todo) {
        if constexpr (Backend::host_memory) {
            file.read_into(*t, arena.value(e->slot), e->slot.count);
        } else {
            staging.resize(e->slot.count);
            file.read_into(*t, staging.data(), e->slot.count);
            upload(ctx, static_cast<long>(e->slot.count), static_cast<const T*>(staging.data()), arena.value(e->slot));
        }
        report.loaded.push_back(t->name);
    }
    return report;
}
template <class T>
LoadReport load_params(const SafetensorsFile& file, ParamArena<T>& arena, std::string_view prefix = "",
                       Strictness mode = Strictness::Strict) {
    return load_params(backend::Cpu(), file, arena, prefix, mode);
}

/// Opens `path` and loads `arena` from it (see the overload above).
template <class T, class Backend>
    requires detail::BackendContext<Backend>
LoadReport load_params(const Backend& ctx, const std::filesystem::path& path, ParamArena<T, Backend>& arena,
                       std::string_view prefix = "", Strictness mode = Strictness::Strict) {
    const SafetensorsFile file(path);
    return load_params(ctx, file, arena, prefix, mode);
}
template <class T>
LoadReport load_params(const std::filesystem::path& path, ParamArena<T>& arena, std::string_view prefix = "",
                       Strictness mode = Strictness::Strict) {
    return load_params(backend::Cpu(), path, arena, prefix, mode);
}

/// Options of export_encoder().
template <class T>
struct EncoderExport {
    std::string source_prefix;          // prefix of the encoder names inside the arena ("" usually)
    const T* pos_embed = nullptr;       // optional fixed pos-embed (1, 1 + L, D) to add as "pos_embed"
    Shape pos_embed_shape;
    /// When > 0 and the arena stores "patch_embed.proj.weight" as a 2-D (D, C*p*p) matrix, it is
    /// written as the conv weight (D, C, p, p). The stored order must already be (c, ky, kx).
    int channels = 0;
    int patch = 0;
    std::map<std::string, std::string> metadata;
    Dtype dtype = dtype_of<T>();
};

/// True for names that timm's VisionTransformer encoder has: cls_token, pos_embed,
/// patch_embed.*, blocks.*, norm.*.
inline bool is_encoder_name(std::string_view n) {
    return n == "cls_token" || n == "pos_embed" || n.starts_with("patch_embed.") || n.starts_with("blocks.") ||
           n.starts_with("norm.");
}

/// Writes just the encoder of `arena` under timm VisionTransformer names (decoder, mask_token,
/// heads and predictor are left out); adds the caller's fixed pos_embed (host memory) when given.
template <class T, class Backend>
    requires detail::BackendContext<Backend>
void export_encoder(const Backend& ctx, const std::filesystem::path& path, const ParamArena<T, Backend>& arena,
                    const EncoderExport<T>& opt = {}) {
    LCMAE_CHECK(arena.allocated(), "cannot export an arena that was not allocated");
    std::vector<T> staging;
    const T* values = detail::host_values(ctx, arena, staging);
    SafetensorsWriter w;
    w.set_metadata("format", "pt");
    w.set_metadata(opt.metadata);
    bool have_pos = false;
    std::size_t count = 0;
    for (const auto& e : arena.entries()) {
        if (!std::string_view(e.name).starts_with(opt.source_prefix)) continue;
        const std::string name = e.name.substr(opt.source_prefix.size());
        if (!is_encoder_name(name)) continue;
        Shape shape = e.shape;
        if (name == "patch_embed.proj.weight" && opt.patch > 0 && shape.rank() == 2) {
            const std::int64_t c = opt.channels, p = opt.patch;
            LCMAE_CHECK(c > 0 && shape[1] == c * p * p, "patch_embed.proj.weight " << shape.str() << " is not (D, " << c
                                                                                  << "*" << p << "*" << p << ")");
            shape = Shape{shape[0], c, p, p};
        }
        if (name == "pos_embed") have_pos = true;
        w.add_as(name, opt.dtype, shape, values + e.slot.offset);
        ++count;
    }
    LCMAE_CHECK(count > 0, "export_encoder found no encoder entries under prefix '" << opt.source_prefix << "'");
    if (opt.pos_embed != nullptr) {
        LCMAE_CHECK(!have_pos, "export_encoder: the arena already holds pos_embed; do not pass another one");
        LCMAE_CHECK(opt.pos_embed_shape.rank() == 3 && opt.pos_embed_shape[0] == 1,
                    "pos_embed must have shape (1, 1 + L, D), got " << opt.pos_embed_shape.str());
        w.add_as("pos_embed", opt.dtype, opt.pos_embed_shape, opt.pos_embed);
    }
    w.write(path);
}
template <class T>
void export_encoder(const std::filesystem::path& path, const ParamArena<T>& arena, const EncoderExport<T>& opt = {}) {
    export_encoder(backend::Cpu(), path, arena, opt);
}

}  // namespace lcmae::io
