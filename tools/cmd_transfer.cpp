// tools/cmd_transfer.cpp - `lcmae export` and `lcmae import`: a ViT encoder to and from timm /
// PyTorch safetensors files (lcmae/apps/timm_transfer.hpp does the work).
//
//   lcmae export --ckpt FILE [--encoder online|target] --timm OUT.safetensors [--image N] [--channels C]
//   lcmae import --timm FILE --out CKPT [--image N] [--channels C]
//   lcmae export --help | lcmae import --help      (every option with its default)
//
// The geometry is the main job's encoder (lcmae/apps/main_job_models.hpp: D 192, 6 blocks, 3 heads,
// patch 4, 28 px, 1 channel); --image and --channels change the image side and input channels.
// Exit codes: 0 done; 1 a run-time failure (missing or mismatched file, unwritable output); 2 a
// usage error (unknown option, bad or missing value).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "lcmae/apps/main_job_models.hpp"
#include "lcmae/apps/timm_transfer.hpp"
#include "cli/options.hpp"
#include "commands.hpp"

using namespace lcmae;

namespace {

using cli::Kind;
using cli::Option;

const std::vector<Option>& options() {
    static const std::vector<Option> table{
        {"--ckpt", "FILE", "(required)", "the checkpoint whose encoder is written (the main job's checkpoint.safetensors, or an imported one)", Kind::Text, "export"},
        {"--encoder", "online|target", "online", "which encoder of the checkpoint: the online one or the EMA target ('target.' names)", Kind::Text, "export"},
        {"--timm", "FILE", "(required)", "export: the safetensors file to write; import: the timm / MAE safetensors file to read", Kind::Text, "all"},
        {"--out", "CKPT", "(required)", "the lcmae checkpoint to write (readable by 'lcmae eval --ckpt')", Kind::Text, "import"},
        {"--image", "N", "28", "image side of the encoder (the main job's: Fashion-MNIST); a multiple of the patch, 4", Kind::Int, "all"},
        {"--channels", "C", "1", "input channels of the encoder; import adapts 3-channel weights (timm's adapt_input_conv)", Kind::Int, "all"},
        {"--help", "", "", "this text", Kind::Flag, "all"},
    };
    return table;
}

struct Args {
    std::string ckpt, encoder = "online", timm, out;
    long image = apps::FashionMnistBackbone::image, channels = apps::FashionMnistBackbone::channels;
};

Args parse(const std::string& cmd, int argc, char** argv) {
    const std::string help_cmd = "lcmae " + cmd;
    Args a;
    for (int i = 1; i < argc; ++i) {
        const auto [opt, v] = cli::next_option(options(), argc, argv, i, "lcmae", cmd);
        const std::string n = opt->name;
        if (n == "--help") {
            std::cout << "usage: " << help_cmd
                      << (cmd == "export" ? " --ckpt FILE --timm OUT.safetensors [options]\n\n"
                                            "writes the checkpoint's encoder under timm's VisionTransformer names (pos_embed included)\n\n"
                                          : " --timm FILE --out CKPT [options]\n\n"
                                            "reads a timm / MAE ViT encoder (safetensors) into an lcmae checkpoint; pos_embed is\n"
                                            "resampled (bicubic, antialiased, as timm) when the grid differs\n\n")
                      << "options:\n";
            cli::print_options(std::cout, options(), cmd);
            std::exit(0);
        } else if (n == "--ckpt") a.ckpt = v;
        else if (n == "--encoder") a.encoder = v;
        else if (n == "--timm") a.timm = v;
        else if (n == "--out") a.out = v;
        else if (n == "--image") a.image = static_cast<long>(cli::parse_int(n, v, 1, 1 << 16, help_cmd));
        else if (n == "--channels") a.channels = static_cast<long>(cli::parse_int(n, v, 1, 64, help_cmd));
    }
    if (a.encoder != "online" && a.encoder != "target")
        cli::usage_error("option --encoder expects online or target, got '" + a.encoder + "'", help_cmd);
    if (a.image % apps::FashionMnistBackbone::patch != 0)
        cli::usage_error("option --image expects a multiple of the patch size " + std::to_string(apps::FashionMnistBackbone::patch) +
                             ", got " + std::to_string(a.image), help_cmd);
    if (cmd == "export" && a.ckpt.empty()) cli::usage_error("--ckpt FILE is required", help_cmd);
    if (a.timm.empty()) cli::usage_error("--timm FILE is required", help_cmd);
    if (cmd == "import" && a.out.empty()) cli::usage_error("--out CKPT is required", help_cmd);
    return a;
}

vit::VitDims dims_of(const Args& a) {
    vit::VitDims d = apps::FashionMnistBackbone::dims();
    d.image = a.image;
    d.channels = a.channels;
    return d;
}

}  // namespace

namespace lcmae::tools {

int cmd_export(int argc, char** argv) {
    const Args a = parse("export", argc, argv);
    apps::export_checkpoint_encoder(a.ckpt, a.timm, dims_of(a), a.encoder == "target" ? "target." : "");
    std::printf("exported the %s encoder of %s (timm VisionTransformer names) to %s\n", a.encoder.c_str(), a.ckpt.c_str(),
                a.timm.c_str());
    return 0;
}

int cmd_import(int argc, char** argv) {
    const Args a = parse("import", argc, argv);
    const vit::VitDims d = dims_of(a);
    const io::TimmImport<float> r = apps::import_timm_checkpoint(a.timm, a.out, d);
    std::printf("imported %zu tensors of %s (D %ld, %ld blocks, patch %ld)\n", r.loaded.size(), a.timm.c_str(), d.dim, d.depth,
                d.patch);
    if (!r.ignored.empty()) {
        std::printf("ignored %zu tensors (decoder, mask token, heads):", r.ignored.size());
        for (const auto& n : r.ignored) std::printf(" %s", n.c_str());
        std::printf("\n");
    }
    if (r.pos_resampled)
        std::printf("pos_embed resampled from a %ldx%ld to a %ldx%ld grid (bicubic, antialiased, as timm)\n", r.source_grid_h,
                    r.source_grid_w, d.grid(), d.grid());
    if (r.channels_adapted)
        std::printf("patch_embed.proj.weight adapted from %ld to %ld input channels (timm's adapt_input_conv)\n",
                    r.source_channels, d.channels);
    std::printf("pos_embed differs from the fixed 2-D sin-cos table by at most %.3g%s\n", r.pos_vs_sincos,
                r.pos_vs_sincos > 1e-6 ? " (a learned table: the checkpoint carries it and 'lcmae eval' uses it)" : "");
    std::printf("wrote %s\n", a.out.c_str());
    return 0;
}

}  // namespace lcmae::tools
