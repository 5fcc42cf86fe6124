// lcmae/apps/checkpoint_dims.hpp - the encoder geometry a checkpoint holds, so that the programs
// that read checkpoints (`lcmae eval`, `lcmae analyze`) build the encoder the file was trained
// with instead of assuming the main job's Fashion-MNIST preset.
//
// A checkpoint written by the trainer records its model in the "lcmae_config" metadata
// ("encoder=192x6x3 patch 4 image 28 channels 1;..."): that is read first. A file without it (an
// import from timm, a hand-made file) is measured from its tensors under timm's names: width from
// cls_token, depth from the blocks, patch and channels from patch_embed.proj.weight, the image
// from pos_embed's token count (or `fallback_image` when the file has no position table); the head
// count is not visible in any shape, so it is width / 64 as in every timm ViT preset.
#pragma once

#include <cmath>
#include <cstdio>
#include <string>

#include "lcmae/core/error.hpp"
#include "lcmae/io/safetensors.hpp"
#include "lcmae/vit/config.hpp"

namespace lcmae::apps {

struct CheckpointDims {
    vit::VitDims dims;
    bool from_metadata = false;  ///< false: measured from the tensors (heads = width / 64)
};

namespace detail {
/// "192x6x3 patch 4 image 28 channels 1" -> dims; false when the text has another form.
inline bool parse_encoder_text(const std::string& text, vit::VitDims& d) {
    long dim = 0, depth = 0, heads = 0, patch = 0, image = 0, channels = 0;
    int used = 0;
    if (std::sscanf(text.c_str(), "%ldx%ldx%ld patch %ld image %ld channels %ld%n", &dim, &depth, &heads, &patch, &image, &channels, &used) != 6 ||
        used != static_cast<int>(text.size()))
        return false;
    if (dim <= 0 || depth <= 0 || heads <= 0 || patch <= 0 || image <= 0 || channels <= 0 || dim % heads != 0 || image % patch != 0)
        return false;
    d = vit::VitDims{.dim = dim, .depth = depth, .heads = heads, .patch = patch, .image = image, .channels = channels};
    return true;
}
}  // namespace detail

/// The encoder geometry of `file` (prefix "" for the online encoder, "target." for the EMA one,
/// which has the same geometry). Throws lcmae::Error naming the file when it holds no encoder.
inline CheckpointDims checkpoint_encoder_dims(const io::SafetensorsFile& file, const std::string& prefix = "", long fallback_image = 0) {
    CheckpointDims out;
    if (const auto it = file.metadata().find("lcmae_config"); it != file.metadata().end()) {
        const std::string& cfg = it->second;
        const std::size_t at = cfg.find("encoder=");
        if (at != std::string::npos && (at == 0 || cfg[at - 1] == ';')) {
            const std::size_t end = cfg.find(';', at);
            const std::string text = cfg.substr(at + 8, end == std::string::npos ? std::string::npos : end - at - 8);
            LCMAE_CHECK(detail::parse_encoder_text(text, out.dims),
                        "checkpoint " << file.path() << ": its lcmae_config metadata has encoder='" << text
                                      << "', expected 'DxDEPTHxHEADS patch P image I channels C'");
            out.from_metadata = true;
            return out;
        }
    }
    const auto* cls = file.find(prefix + "cls_token");
    const auto* pw = file.find(prefix + "patch_embed.proj.weight");
    LCMAE_CHECK(cls != nullptr && pw != nullptr && cls->shape.rank() == 3 && pw->shape.rank() == 4 && pw->shape[2] == pw->shape[3],
                "checkpoint " << file.path() << " holds no ViT encoder under '" << prefix
                              << "' (expected " << prefix << "cls_token (1, 1, D) and " << prefix
                              << "patch_embed.proj.weight (D, C, P, P), timm's names)");
    vit::VitDims& d = out.dims;
    d.dim = cls->shape[2];
    d.channels = pw->shape[1];
    d.patch = pw->shape[2];
    while (file.contains(prefix + "blocks." + std::to_string(d.depth) + ".norm1.weight")) ++d.depth;
    LCMAE_CHECK(d.depth > 0, "checkpoint " << file.path() << " has no transformer blocks under '" << prefix << "blocks.'");
    LCMAE_CHECK(d.dim % 64 == 0, "checkpoint " << file.path() << ": width " << d.dim
                                               << " is not a multiple of 64, so its head count cannot be assumed (it records no lcmae_config)");
    d.heads = d.dim / 64;
    d.image = fallback_image;
    if (const auto* pe = file.find(prefix + "pos_embed"); pe != nullptr && pe->shape.rank() == 3) {
        const long tokens = pe->shape[1] - 1;  // without the CLS slot
        const long grid = std::lround(std::sqrt(double(tokens)));
        LCMAE_CHECK(grid * grid == tokens, "checkpoint " << file.path() << ": " << prefix << "pos_embed has " << tokens
                                                         << " patch positions, not a square grid");
        d.image = grid * d.patch;
    }
    LCMAE_CHECK(d.image > 0, "checkpoint " << file.path() << " records neither its image size nor a position table");
    return out;
}

inline CheckpointDims checkpoint_encoder_dims(const std::string& path, const std::string& prefix = "", long fallback_image = 0) {
    return checkpoint_encoder_dims(io::SafetensorsFile(path), prefix, fallback_image);
}

}  // namespace lcmae::apps
