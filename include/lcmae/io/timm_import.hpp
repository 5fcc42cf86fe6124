// lcmae/io/timm_import.hpp - a timm / MAE ViT encoder (safetensors) into lcmae's parameters.
//
//   const io::SafetensorsFile file("vit.safetensors");
//   io::TimmImport<float> imp = io::import_timm_encoder(file, dims, arena);   // arena: a VitEncoder's
//   io::write_imported_checkpoint("ckpt.safetensors", arena, imp, {{"note", "..."}});
//
// Names are timm's VisionTransformer names: cls_token, pos_embed, patch_embed.proj.{weight,bias},
// blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.{weight,bias}, norm.{weight,bias}.
// MAE's decoder (decoder_*), mask_token and classifier heads (head.*, head_dist.*) are ignored and
// listed in the result; any other tensor (layer scale, q/k norms, register tokens, fc_norm ...) has
// no counterpart in lcmae's encoder and is an error, as is every missing tensor or wrong shape
// (ALL problems in one message that names the file, the tensor, the shape found and the one
// expected). Floating dtypes F32, F64, F16 and BF16 are accepted (converted on read).
//
// The file's geometry is inferred (width from cls_token, depth from the blocks, patch size and input
// channels from the patch-embedding conv weight (D, C, p, p), grid from pos_embed) and checked
// against the target's. Heads are not stored in the weights: the target's count is used.
//  - grid differs: pos_embed is resampled as timm's checkpoint_filter_fn does
//    (nn::resample_abs_pos_embed: bicubic, antialiased, CLS row kept);
//  - channels differ: the patch-embedding weight is adapted as timm's adapt_input_conv does
//    (3 -> 1: summed over RGB; 3 -> C: RGB repeated and scaled by 3 / C); other pairs are refused;
//  - patch size, width, depth or MLP width differ: refused (no patch-embedding resampling).
// lcmae's models use the fixed 2-D sin-cos table of SPEC 1; an imported pos_embed is kept as the
// tensor "pos_embed" of the written checkpoint (eval::FrozenEncoder::load uses it when present) and
// the result says how far it is from the fixed table (0 for MAE weights at the same grid).
#pragma once

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "lcmae/core/arena.hpp"
#include "lcmae/core/error.hpp"
#include "lcmae/io/checkpoint.hpp"
#include "lcmae/io/safetensors.hpp"
#include "lcmae/nn/pos_embed.hpp"
#include "lcmae/vit/config.hpp"

namespace lcmae::io {

/// What an import read and did.
template <class T>
struct TimmImport {
    std::vector<T> pos_embed;                 // (1 + L, D) at the target grid
    long source_grid_h = 0, source_grid_w = 0, source_channels = 0;
    bool pos_resampled = false, channels_adapted = false;
    double pos_vs_sincos = 0;                 // max |pos_embed - fixed 2-D sin-cos table|
    std::vector<std::string> loaded, ignored; // file tensor names
};

/// True for the tensors of a timm / MAE file that an encoder import leaves out on purpose.
inline bool is_ignored_timm_name(std::string_view n) {
    return n.starts_with("decoder_") || n == "mask_token" || n.starts_with("head.") || n.starts_with("head_dist.");
}

namespace detail {
inline long perfect_square_root(long n) {
    if (n <= 0) return -1;
    long r = static_cast<long>(std::llround(std::sqrt(static_cast<double>(n))));
    while (r * r > n) --r;
    while ((r + 1) * (r + 1) <= n) ++r;
    return r * r == n ? r : -1;
}

/// timm's adapt_input_conv on a (D, 3, p, p) weight for `to` input channels, in float as timm
/// does: 1 channel sums R + G + B; C channels repeat RGB and scale by 3 / C.
template <class T>
std::vector<T> adapt_input_conv(const std::vector<T>& w, long D, long from, long to, long p) {
    std::vector<T> out(static_cast<std::size_t>(D * to * p * p));
    const long k = p * p;
    for (long o = 0; o < D; ++o)
        for (long c = 0; c < to; ++c)
            for (long e = 0; e < k; ++e) {
                float v = 0;
                if (to == 1) {
                    v = static_cast<float>(w[static_cast<std::size_t>((o * from + 0) * k + e)]);
                    for (long s = 1; s < from; ++s) v += static_cast<float>(w[static_cast<std::size_t>((o * from + s) * k + e)]);
                } else {
                    v = static_cast<float>(w[static_cast<std::size_t>((o * from + c % from) * k + e)]) *
                        (3.0f / static_cast<float>(to));
                }
                out[static_cast<std::size_t>((o * to + c) * k + e)] = static_cast<T>(v);
            }
    return out;
}
}  // namespace detail

/// Reads the encoder of a timm / MAE file into `arena` (allocated, holding a VitEncoder of `dims`
/// under timm's names with prefix `arena_prefix`) and returns its position table at the target grid.
template <class T>
TimmImport<T> import_timm_encoder(const SafetensorsFile& file, const vit::VitDims& dims, ParamArena<T>& arena,
                                  std::string_view arena_prefix = "") {
    LCMAE_CHECK(arena.allocated(), "import_timm_encoder: the arena is not allocated");
    const std::string where = "timm file '" + file.path() + "'";
    TimmImport<T> r;
    std::vector<std::string> problems;
    auto shape_of = [&](std::string_view name) -> const TensorInfo* {
        const TensorInfo* t = file.find(name);
        if (t != nullptr && !is_floating(t->dtype))
            problems.push_back("tensor '" + std::string(name) + "' has dtype " + dtype_name(t->dtype) +
                               ", expected a floating dtype (F32, F64, F16, BF16)");
        return t;
    };
    // ---- the file's geometry against the target's -------------------------------------------
    const long G = dims.grid(), D = dims.dim;
    const TensorInfo* pe = shape_of("pos_embed");
    const TensorInfo* pw = shape_of("patch_embed.proj.weight");
    long src_c = dims.channels;
    if (pe == nullptr) {
        problems.push_back("missing tensor 'pos_embed' (expected (1, 1 + H*W, " + std::to_string(D) + "))");
    } else if (pe->shape.rank() != 3 || pe->shape[0] != 1 || pe->shape[2] != D) {
        problems.push_back("tensor 'pos_embed' has shape " + pe->shape.str() + ", expected (1, 1 + H*W, " +
                           std::to_string(D) + ")");
    } else {
        const long rows = static_cast<long>(pe->shape[1]);
        const long g = detail::perfect_square_root(rows - 1);
        if (g < 0)
            problems.push_back("tensor 'pos_embed' has " + std::to_string(rows) +
                               " rows, expected 1 (CLS) + a square grid (no_embed_class or extra prefix tokens are not supported)");
        r.source_grid_h = r.source_grid_w = g;
    }
    if (pw != nullptr && pw->shape.rank() == 4 && pw->shape[0] == D && pw->shape[2] == dims.patch &&
        pw->shape[3] == dims.patch) {
        src_c = static_cast<long>(pw->shape[1]);
        if (src_c != dims.channels && src_c != 3)
            problems.push_back("tensor 'patch_embed.proj.weight' has " + std::to_string(src_c) + " input channels and the model " +
                               std::to_string(dims.channels) + ": only 3-channel weights can be adapted (timm's adapt_input_conv)");
    } else if (pw != nullptr && pw->shape.rank() == 4 && pw->shape[0] == D) {
        problems.push_back("tensor 'patch_embed.proj.weight' has shape " + pw->shape.str() + ": patch " +
                           std::to_string(pw->shape[2]) + "x" + std::to_string(pw->shape[3]) + ", expected " +
                           std::to_string(dims.patch) + "x" + std::to_string(dims.patch) +
                           " (resampling the patch embedding is not supported)");
        pw = nullptr;
    }
    r.source_channels = src_c;
    long depth = 0;
    while (file.contains("blocks." + std::to_string(depth) + ".norm1.weight")) ++depth;
    if (depth != dims.depth)
        problems.push_back("the file has " + std::to_string(depth) + " blocks (blocks.0 .. blocks." + std::to_string(depth - 1) +
                           "), expected " + std::to_string(dims.depth));
    // ---- every encoder tensor, by name ---------------------------------------------------------
    for (const auto& e : arena.entries()) {
        if (!std::string_view(e.name).starts_with(arena_prefix)) continue;
        const std::string name = e.name.substr(arena_prefix.size());
        const TensorInfo* t = shape_of(name);
        if (t == nullptr) {
            problems.push_back("missing tensor '" + name + "' (expected " + e.shape.str() + ")");
            continue;
        }
        Shape expect = e.shape;
        if (name == "patch_embed.proj.weight") {
            if (pw == nullptr && t->shape.rank() == 4 && t->shape[0] == D) continue;  // already reported (patch)
            expect = Shape{D, src_c, dims.patch, dims.patch};
        }
        if (!(t->shape == expect))
            problems.push_back("tensor '" + name + "' has shape " + t->shape.str() + ", expected " + expect.str());
    }
    for (const auto& t : file.tensors()) {
        if (t.name == "pos_embed" || arena.contains(std::string(arena_prefix) + t.name)) continue;
        if (is_ignored_timm_name(t.name)) {
            r.ignored.push_back(t.name);
            continue;
        }
        problems.push_back("tensor '" + t.name + "' " + t.shape.str() + " has no counterpart in lcmae's ViT encoder");
    }
    if (!problems.empty()) {
        std::ostringstream os;
        os << where << " does not fit the encoder (D " << D << ", depth " << dims.depth << ", heads " << dims.heads
           << ", patch " << dims.patch << ", image " << dims.image << ", channels " << dims.channels << "): "
           << problems.size() << " problem(s):";
        for (const auto& p : problems) os << "\n  " << p;
        LCMAE_FAIL(os.str());
    }
    // ---- read ------------------------------------------------------------------------------------
    for (const auto& e : arena.entries()) {
        if (!std::string_view(e.name).starts_with(arena_prefix)) continue;
        const std::string name = e.name.substr(arena_prefix.size());
        const TensorInfo& t = *file.find(name);
        T* dst = arena.value(e.slot);
        if (name == "patch_embed.proj.weight" && src_c != dims.channels) {
            std::vector<T> w(t.numel());
            file.read_into(t, w.data(), w.size());
            const std::vector<T> a = detail::adapt_input_conv(w, D, src_c, dims.channels, dims.patch);
            std::copy(a.begin(), a.end(), dst);
            r.channels_adapted = true;
        } else {
            file.read_into(t, dst, e.slot.count);
        }
        r.loaded.push_back(name);
    }
    std::vector<T> pos(pe->numel());
    file.read_into(*pe, pos.data(), pos.size());
    r.loaded.push_back("pos_embed");
    r.pos_embed = nn::resample_abs_pos_embed(pos, D, r.source_grid_h, r.source_grid_w, G, G, 1);
    r.pos_resampled = r.source_grid_h != G || r.source_grid_w != G;
    const std::vector<T> fixed = nn::sincos_pos_embed_2d<T>(D, G);
    for (std::size_t i = 0; i < fixed.size(); ++i)
        r.pos_vs_sincos = std::max(r.pos_vs_sincos, std::abs(static_cast<double>(r.pos_embed[i]) - static_cast<double>(fixed[i])));
    return r;
}

/// The position table a checkpoint carries as prefix + "pos_embed" (an imported checkpoint), checked
/// to be (1, 1 + L, D) for `dims`; empty when there is none (the model's fixed table then applies).
template <class T>
std::vector<T> checkpoint_pos_embed(const SafetensorsFile& file, std::string_view prefix, const vit::VitDims& dims) {
    const std::string name = std::string(prefix) + "pos_embed";
    const TensorInfo* t = file.find(name);
    if (t == nullptr) return {};
    const Shape want{1, 1 + dims.tokens(), dims.dim};
    LCMAE_CHECK(t->shape == want, "checkpoint '" << file.path() << "': tensor '" << name << "' has shape " << t->shape.str()
                                                 << ", expected " << want.str());
    std::vector<T> pos(t->numel());
    file.read_into(*t, pos.data(), pos.size());
    return pos;
}

/// Writes an imported encoder as an lcmae checkpoint: the arena's tensors (timm names, F32 or F64
/// as T) and "pos_embed" (1, 1 + L, D), with `metadata`.
template <class T>
void write_imported_checkpoint(const std::filesystem::path& path, const ParamArena<T>& arena, const TimmImport<T>& imp,
                               const vit::VitDims& dims, const std::map<std::string, std::string>& metadata = {}) {
    SafetensorsWriter w;
    w.set_metadata("format", "pt");
    w.set_metadata(metadata);
    add_arena(w, arena, "");
    LCMAE_CHECK(static_cast<long>(imp.pos_embed.size()) == (1 + dims.tokens()) * dims.dim,
                "write_imported_checkpoint: pos_embed has " << imp.pos_embed.size() << " values, expected (1 + "
                                                            << dims.tokens() << ") * " << dims.dim);
    w.add("pos_embed", Shape{1, 1 + dims.tokens(), dims.dim}, imp.pos_embed.data());
    w.write(path);
}

}  // namespace lcmae::io
