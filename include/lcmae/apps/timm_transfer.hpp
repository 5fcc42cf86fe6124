// lcmae/apps/timm_transfer.hpp - moving a ViT encoder between lcmae checkpoints and timm / PyTorch
// safetensors files; the one implementation behind `lcmae export`, `lcmae import` and
// lcmae_pretrain --export-encoder.
//
//   apps::export_checkpoint_encoder("run/checkpoint.safetensors", "vit.safetensors", dims);           // online
//   apps::export_checkpoint_encoder("run/checkpoint.safetensors", "vit.safetensors", dims, "target."); // EMA target
//   io::TimmImport<float> r = apps::import_timm_checkpoint("mae.safetensors", "ckpt.safetensors", dims);
//
// Export reads the encoder tensors (prefix + timm names) of a checkpoint into a VitEncoder of
// `dims` and writes them under timm's VisionTransformer names with the position table
// (io::export_encoder): the checkpoint's own "pos_embed" when it has one (an imported checkpoint),
// else SPEC 1's fixed 2-D sin-cos table. The checkpoint's metadata is copied. Import: see
// io/timm_import.hpp.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "lcmae/io/checkpoint.hpp"
#include "lcmae/io/safetensors.hpp"
#include "lcmae/io/timm_import.hpp"
#include "lcmae/models/vit_encoder.hpp"

namespace lcmae::apps {

/// A forward-only VitEncoder of `dims` over its own (allocated) arena: the target of an import and
/// the staging of an export.
struct EncoderArena {
    ParamArena<float> params;
    models::VitEncoder<float> encoder;
    explicit EncoderArena(const vit::VitDims& dims) : encoder(params, dims, options()) { params.allocate(); }

private:
    static models::EncoderOptions options() {
        models::EncoderOptions o;
        o.max_batch = 1;
        o.forward_only = true;
        return o;
    }
};

/// Writes the encoder of checkpoint `ckpt` (names prefix + timm names: "" online, "target." the EMA
/// target) to `out` under timm's VisionTransformer names. Throws lcmae::Error naming the file and
/// every missing or mismatched tensor.
inline void export_checkpoint_encoder(const std::filesystem::path& ckpt, const std::filesystem::path& out,
                                      const vit::VitDims& dims, std::string_view prefix = "") {
    LCMAE_CHECK(std::filesystem::is_regular_file(ckpt), "checkpoint file '" << ckpt.string() << "' does not exist");
    const io::SafetensorsFile file(ckpt);
    EncoderArena m(dims);
    io::load_params(file, m.params, prefix, io::Strictness::IgnoreUnexpected);
    std::vector<float> pos = io::checkpoint_pos_embed<float>(file, prefix, dims);
    if (pos.empty()) pos = m.encoder.pos_embed();
    io::EncoderExport<float> ex;
    ex.pos_embed = pos.data();
    ex.pos_embed_shape = Shape{1, 1 + dims.tokens(), dims.dim};
    ex.metadata = file.metadata();
    io::export_encoder(out, m.params, ex);
}

/// Reads the timm / MAE encoder in `timm_file` into the geometry `dims` and writes it to `out` as
/// an lcmae checkpoint (online names and "pos_embed") that eval::FrozenEncoder::load and
/// `lcmae eval --ckpt` read. `metadata` is added to the file's (with the source file's name).
inline io::TimmImport<float> import_timm_checkpoint(const std::filesystem::path& timm_file,
                                                    const std::filesystem::path& out, const vit::VitDims& dims,
                                                    std::map<std::string, std::string> metadata = {}) {
    LCMAE_CHECK(std::filesystem::is_regular_file(timm_file), "timm file '" << timm_file.string() << "' does not exist");
    const io::SafetensorsFile file(timm_file);
    EncoderArena m(dims);
    io::TimmImport<float> r = io::import_timm_encoder(file, dims, m.params);
    metadata["imported_from"] = timm_file.filename().string();
    metadata["imported_grid"] = std::to_string(r.source_grid_h) + "x" + std::to_string(r.source_grid_w);
    metadata["imported_channels"] = std::to_string(r.source_channels);
    io::write_imported_checkpoint(out, m.params, r, dims, metadata);
    return r;
}

}  // namespace lcmae::apps
