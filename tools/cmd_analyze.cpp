// tools/cmd_analyze.cpp - `lcmae analyze`: the paper's analyses of pre-trained encoders (SPEC 5,
// include/lcmae/analysis/), on the test split of --data (Fashion-MNIST by default, CIFAR-10, or an
// image folder with a test/ split) at the checkpoint's geometry.
//
//   lcmae analyze distance --ckpt mae/checkpoint.safetensors --label MAE
//                          --ckpt2 lcmae/checkpoint.safetensors --label2 LC-MAE --images 500 --out dist
//       -> dist.csv (label,layer,head,distance_px) and dist.png (mean attention distance per layer)
//   lcmae analyze spectrum --ckpt A --ckpt2 B --images 1000 --out spec
//       -> spec.csv (label,layer,rank,sigma,log10_sigma) and spec.png (log sigma per rank of one layer,
//          and with two checkpoints the per-rank difference B - A)
//   lcmae analyze attention --ckpt A --image-index 3 --query 3,3 --query 1,5 --out att.png
//       -> one row per query: the image, each head's last-block attention, their mean
//   lcmae analyze attention --ckpt A --size 56 --query 7,7 --out att56.png
//       -> the same at 56 px: the position table resampled from the 7 x 7 grid to 14 x 14
//   lcmae analyze reconstruct --ckpt A --images 8 --out rec.png
//       -> one row per image: original / masked / reconstruction / visible patches pasted
//
// --ckpt random analyses SPEC 1's random initialisation (--seed), at the geometry of the other
// checkpoint file when one is given, else at the main job's geometry for the data (as `lcmae
// eval`). The encoder runs on host memory of the CPU backend (analysis::LayerProbe keeps every
// block's activations).
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "cli/options.hpp"
#include "commands.hpp"
#include "lcmae/analysis/attention_map.hpp"
#include "lcmae/analysis/reconstruct.hpp"
#include "lcmae/analysis/report.hpp"
#include "lcmae/apps/checkpoint_dims.hpp"
#include "lcmae/apps/main_job_models.hpp"
#include "lcmae/data/idx.hpp"
#include "lcmae/data/source.hpp"

namespace lcmae::tools {
namespace {

using cli::Kind;

const std::vector<cli::Option>& analyze_options() {
    static const std::vector<cli::Option> table{
        {"--ckpt", "FILE|random", "(required)", "checkpoint (main job or `lcmae import`), or random for SPEC 1's initialisation", Kind::Text, "all"},
        {"--encoder", "online|target", "online", "which encoder of a main-job checkpoint", Kind::Text, "all"},
        {"--label", "TEXT", "A", "name of --ckpt in the CSV and the legend", Kind::Text, "distance,spectrum"},
        {"--ckpt2", "FILE|random", "(none)", "a second checkpoint to compare (e.g. MAE vs LC-MAE)", Kind::Text, "distance,spectrum"},
        {"--label2", "TEXT", "B", "name of --ckpt2", Kind::Text, "distance,spectrum"},
        {"--images", "N", "500 (distance, spectrum), 8 (reconstruct)", "test images analysed (the first N)", Kind::Int,
         "distance,spectrum,reconstruct"},
        {"--layer", "L", "last", "the layer (1-based) whose spectrum is plotted (the CSV has all)", Kind::Int, "spectrum"},
        {"--image-index", "I", "0", "the test image whose attention is drawn", Kind::Int, "attention"},
        {"--query", "R,C", "the centre patch", "a query patch (grid row, column); repeat for several", Kind::Text, "attention"},
        {"--cell", "PX", "168", "size of one map in the grid", Kind::Int, "attention"},
        {"--size", "PX", "the checkpoint's (28 for the main job)",
         "input size: a multiple of the patch size (4 for the main job), at most 256; another size than the checkpoint's resamples "
         "its position table to the new grid (bicubic, as timm) and resizes the image (cubic)",
         Kind::Int, "attention"},
        {"--mask-ratio", "R", "0.75", "fraction of patches removed", Kind::Number, "reconstruct"},
        {"--decoder-heads", "H", "4", "the decoder's heads (the checkpoint's shapes give its width and depth)", Kind::Int, "reconstruct"},
        {"--no-norm-pix", "", "off", "the model predicts raw pixels (trained without norm_pix)", Kind::Flag, "reconstruct"},
        {"--scale", "K", "4", "upsampling of each image in the grid", Kind::Int, "reconstruct"},
        {"--out", "PREFIX|FILE.png", "(required)", "distance, spectrum: PREFIX.csv and PREFIX.png; attention, reconstruct: the PNG", Kind::Text, "all"},
        {"--data", "fashion-mnist|cifar10:DIR|DIR", "fashion-mnist",
         "the test split analysed: Fashion-MNIST, the CIFAR-10 binary batches, or a folder with a test/ split (as lcmae eval)", Kind::Text, "all"},
        {"--data-dir", "DIR", data::kFashionMnistDir, "where the Fashion-MNIST IDX files are", Kind::Text, "all"},
        {"--batch", "N", "64", "images per forward", Kind::Int, "all"},
        {"--seed", "S", "0", "seed of --ckpt random (--ckpt2 random: S + 1)", Kind::Int, "all"},
        {"--threads", "N", "0 (all cores)", "CPU threads", Kind::Int, "all"},
        {"--help", "", "", "this text", Kind::Flag, "all"},
    };
    return table;
}

const char* const kAnalyses = "distance, spectrum, attention or reconstruct";

void print_help(const std::string& scope) {
    if (scope == "all")
        std::cout << "usage: lcmae analyze distance|spectrum|attention|reconstruct --ckpt FILE|random --out PREFIX [options]\n\n"
                     "  distance    mean attention distance per layer and head (CSV + plot)\n"
                     "  spectrum    singular values of each layer's representations (CSV + plot)\n"
                     "  attention   last-block attention of query patches, per head and averaged (PNG)\n"
                     "  reconstruct original / masked / reconstruction / visible patches pasted (PNG)\n\n"
                     "options:\n";
    else
        std::cout << "usage: lcmae analyze " << scope << " --ckpt FILE|random --out " << (scope == "attention" || scope == "reconstruct" ? "FILE.png" : "PREFIX")
                  << " [options]\n\noptions:\n";
    cli::print_options(std::cout, analyze_options(), scope);
}

struct Args {
    std::string analysis, ckpt, ckpt2, label = "A", label2 = "B", encoder = "online", out, data = "fashion-mnist",
                data_dir = data::kFashionMnistDir;
    long images = 500, layer = 0, image_index = 0, cell = 168, batch = 64, decoder_heads = 4, scale = 4;
    long size = 0;  // attention: the input size (0 = the checkpoint's)
    std::string layer_text;                  // --layer, checked once the encoder's depth is known
    std::vector<std::string> query_text;     // --query, checked once the grid (of --size) is known
    double mask_ratio = 0.75;
    bool norm_pix = true;
    int threads = 0;
    std::uint64_t seed = 0;
    std::vector<analysis::Query> queries;
};

/// R,C on the grid of g x g patches (the grid of --size).
analysis::Query parse_query(const std::string& v, long g, const std::string& help) {
    const auto comma = v.find(',');
    if (comma == std::string::npos) cli::usage_error("--query expects R,C (grid row and column, e.g. 3,3), got '" + v + "'", help);
    return {static_cast<long>(cli::parse_int("--query R", v.substr(0, comma), 0, g - 1, help)),
            static_cast<long>(cli::parse_int("--query C", v.substr(comma + 1), 0, g - 1, help))};
}

Args parse(int argc, char** argv) {
    Args a;
    if (argc < 2) cli::usage_error(std::string("'lcmae analyze' needs an analysis: ") + kAnalyses, "lcmae analyze");
    a.analysis = argv[1];
    if (a.analysis == "--help" || a.analysis == "-h") {
        print_help("all");
        std::exit(0);
    }
    if (a.analysis != "distance" && a.analysis != "spectrum" && a.analysis != "attention" && a.analysis != "reconstruct")
        cli::usage_error("unknown analysis '" + a.analysis + "' (expected " + kAnalyses + ")", "lcmae analyze");
    const std::string help = "lcmae analyze " + a.analysis;
    if (a.analysis == "reconstruct") a.images = 8;
    const auto integer = [&](const std::string& n, const std::string& v, long lo, long hi = std::numeric_limits<long>::max()) {
        return static_cast<long>(cli::parse_int(n, v, lo, hi, help));
    };
    for (int i = 2; i < argc; ++i) {
        const auto [opt, v] = cli::next_option(analyze_options(), argc, argv, i, "lcmae analyze", a.analysis);
        const std::string n = opt->name;
        if (n == "--help") {
            print_help(a.analysis);
            std::exit(0);
        } else if (n == "--ckpt") a.ckpt = v;
        else if (n == "--ckpt2") a.ckpt2 = v;
        else if (n == "--label") a.label = v;
        else if (n == "--label2") a.label2 = v;
        else if (n == "--encoder") a.encoder = v;
        else if (n == "--out") a.out = v;
        else if (n == "--data") a.data = v;
        else if (n == "--data-dir") a.data_dir = v;
        else if (n == "--images") a.images = integer(n, v, 2);
        else if (n == "--layer") a.layer_text = v;
        else if (n == "--image-index") a.image_index = integer(n, v, 0);
        else if (n == "--query") a.query_text.push_back(v);
        else if (n == "--cell") a.cell = integer(n, v, 8, 2048);
        else if (n == "--size") a.size = integer(n, v, 1, 256);
        else if (n == "--mask-ratio") a.mask_ratio = cli::parse_number(n, v, help);
        else if (n == "--decoder-heads") a.decoder_heads = integer(n, v, 1, 1024);
        else if (n == "--no-norm-pix") a.norm_pix = false;
        else if (n == "--scale") a.scale = integer(n, v, 1, 64);
        else if (n == "--batch") a.batch = integer(n, v, 1, 4096);
        else if (n == "--seed") a.seed = cli::parse_u64(n, v, help);
        else if (n == "--threads") a.threads = static_cast<int>(integer(n, v, 0, 1024));
    }
    if (a.ckpt.empty()) cli::usage_error("--ckpt FILE|random is required", help);
    if (a.mask_ratio <= 0 || a.mask_ratio >= 1)
        cli::usage_error("--mask-ratio expects a number in (0, 1), got " + std::to_string(a.mask_ratio), help);
    if (a.out.empty()) cli::usage_error(a.analysis == "attention" || a.analysis == "reconstruct" ? "--out FILE.png is required" : "--out PREFIX is required", help);
    if (a.encoder != "online" && a.encoder != "target")
        cli::usage_error("--encoder expects online or target, got '" + a.encoder + "'", help);
    if (!a.ckpt2.empty() && a.label == a.label2)
        cli::usage_error("--label and --label2 must differ, both are '" + a.label + "'", help);
    if (a.data.empty() || a.data == "cifar10:" ||
        (a.data != "fashion-mnist" && a.data.rfind("cifar10:", 0) != 0 && !std::filesystem::is_directory(a.data)))
        cli::usage_error("--data expects fashion-mnist, cifar10:DIR or a folder with a test/ split, got '" + a.data + "'" +
                             (a.data.empty() || a.data == "cifar10:" ? "" : " (no such folder)"),
                         help);
    return a;
}

std::string geometry(const vit::VitDims& d) {
    return std::to_string(d.dim) + "x" + std::to_string(d.depth) + "x" + std::to_string(d.heads) + " patch " + std::to_string(d.patch) +
           " image " + std::to_string(d.image) + " channels " + std::to_string(d.channels);
}

/// The encoder geometry analysed: the checkpoint file's own (--ckpt, else --ckpt2; two files must
/// agree); with random weights only, the main job's preset at the data's geometry (as lcmae eval).
vit::VitDims analysis_dims(const Args& a, const data::DataSource& src) {
    vit::VitDims d{};
    std::string from;
    for (const std::string& c : {a.ckpt, a.ckpt2}) {
        if (c.empty() || c == "random") continue;
        const vit::VitDims cd = apps::checkpoint_encoder_dims(c, a.encoder == "target" ? "target." : "", src.image_size()).dims;
        if (from.empty()) {
            d = cd;
            from = c;
        } else {
            LCMAE_CHECK(cd == d, "--ckpt2 " << c << " holds an encoder of another geometry (" << geometry(cd)
                                                                << ") than --ckpt " << from << " (" << geometry(d)
                                                                << "); the comparison needs one geometry");
        }
    }
    return from.empty() ? apps::tiny_dims(src.image_size(), src.channels()) : d;
}

/// The options that depend on the encoder (its depth, patch and grid): --layer, --size, --query.
/// Usage errors (exit 2), checked before any data is read.
void check_against(Args& a, const vit::VitDims& dims) {
    const std::string help = "lcmae analyze " + a.analysis;
    if (!a.layer_text.empty()) a.layer = static_cast<long>(cli::parse_int("--layer", a.layer_text, 1, dims.depth, help));
    if (a.size == 0) a.size = dims.image;
    if (a.size % dims.patch != 0)
        cli::usage_error("option --size expects a multiple of the patch size " + std::to_string(dims.patch) + ", got " + std::to_string(a.size),
                         help);
    for (const std::string& q : a.query_text) a.queries.push_back(parse_query(q, a.size / dims.patch, help));
}

/// A probe holding --ckpt (or --ckpt2) or SPEC 1's random initialisation.
/// (--ckpt2 random draws with seed + 1, so that two random encoders differ.)
void load(const backend::Cpu& ctx, analysis::LayerProbe<>& probe, const std::string& ckpt, const Args& a, bool second = false) {
    if (ckpt == "random") probe.encoder().init_random(ctx, a.seed + (second ? 1 : 0));
    else probe.encoder().load(ctx, ckpt, a.encoder == "target" ? "target." : "");
}

/// "wrote F.png (W x H px)" / "wrote F.csv (R rows)", read back from the file written.
void written(const std::string& path) {
    if (path.size() > 4 && path.compare(path.size() - 4, 4, ".csv") == 0) {
        std::ifstream f(path);
        long rows = -1;  // the header is not a row
        for (std::string line; std::getline(f, line);) ++rows;
        std::cout << "wrote " << path << " (" << rows << " rows)\n";
        return;
    }
    const cv::Mat img = cv::imread(path);
    std::cout << "wrote " << path << " (" << img.cols << " x " << img.rows << " px)\n";
}

}  // namespace

int cmd_analyze(int argc, char** argv) {
    Args a = parse(argc, argv);
    const backend::Cpu ctx = a.threads > 0 ? backend::Cpu(a.threads) : backend::Cpu();
    // checkpoints (and the options that depend on their encoder) are checked before the dataset is read
    for (const std::string& c : {a.ckpt, a.ckpt2})
        LCMAE_CHECK(c.empty() || c == "random" || std::filesystem::exists(c), "checkpoint file '" << c << "' does not exist");
    const auto source = data::DataSource::parse(a.data, a.data_dir);
    const vit::VitDims dims = analysis_dims(a, source);
    check_against(a, dims);
    const eval::ImagePrep prep{.image = int(dims.image), .channels = int(dims.channels), .norm = source.normalization()};
    const auto ds = source.open(false);
    if (!ds)
        LCMAE_FAIL("--data " << a.data << " has no test split to analyse (a folder needs " << a.data << "/train and " << a.data
                             << "/test, each with the same class sub-folders)");
    if (dims.channels != source.channels())
        std::printf("note: the encoder takes %ld channel(s) and the data has %d; images are converted (gray replicated, or RGB to luma)\n",
                    dims.channels, source.channels());

    if (a.analysis == "reconstruct") {
        const long B = std::min<long>(a.images, long(ds->size()));
        const models::DecoderDims dd = a.ckpt == "random" ? models::DecoderDims{apps::MainJobRecipe::decoder_dim,
                                                                                apps::MainJobRecipe::decoder_depth, a.decoder_heads}
                                                          : analysis::decoder_dims_in(a.ckpt, a.decoder_heads);
        analysis::Reconstructor<> rec(ctx, dims, dd, B, a.mask_ratio, a.norm_pix);
        if (a.ckpt == "random") rec.init_random(ctx, a.seed);
        else rec.load(ctx, a.ckpt);
        std::vector<float> imgs(static_cast<std::size_t>(B) * prep.floats());
        eval::detail::prepare_images(*ds, prep, 0, static_cast<std::size_t>(B), imgs.data(), ctx.threads());
        Rng rng(a.seed, 0x5ec0);
        const analysis::Reconstruction r = rec.run(ctx, imgs.data(), B, rng);
        viz::write_png(a.out, analysis::reconstruction_grid(r, dims.channels, dims.image, prep.norm, int(a.scale)));
        written(a.out);
        return 0;
    }
    if (a.analysis == "attention") {
        LCMAE_CHECK(a.image_index < long(ds->size()), "--image-index " << a.image_index << " is outside the " << ds->size() << " test images");
        analysis::LayerProbe<> trained(ctx, dims, 1);
        load(ctx, trained, a.ckpt, a);
        // another input size: the same weights, the position table resampled to the new grid, the
        // image resized (cubic) to --size
        vit::VitDims run_dims = dims;
        run_dims.image = a.size;
        std::unique_ptr<analysis::LayerProbe<>> resized;
        if (run_dims.image != dims.image) {
            resized = std::make_unique<analysis::LayerProbe<>>(ctx, run_dims, 1);
            resized->resample_from(trained);
            std::cout << "position table resampled from " << dims.grid() << "x" << dims.grid() << " to " << run_dims.grid() << "x"
                      << run_dims.grid() << " (bicubic, antialiased) for " << run_dims.image << " px inputs (trained at " << dims.image
                      << " px)\n";
        }
        analysis::LayerProbe<>& probe = resized ? *resized : trained;
        eval::ImagePrep run_prep = prep;
        run_prep.image = int(run_dims.image);
        run_prep.resize = int(run_dims.image);  // the whole image resized, no centre crop
        std::vector<float> img(run_prep.floats());
        const cv::Mat raw = ds->image(static_cast<std::size_t>(a.image_index));
        run_prep(raw, img.data());
        probe.forward(ctx, img.data(), 1);
        const auto probs = probe.block_probs(ctx, run_dims.depth - 1);
        const long G = run_dims.grid();
        std::vector<analysis::Query> q = a.queries;
        if (q.empty()) q.push_back({G / 2, G / 2});
        viz::write_png(a.out, analysis::attention_grid(raw, probs.data(), run_dims.heads, G, q, int(a.cell)));
        written(a.out);
        return 0;
    }

    std::vector<analysis::Run> runs;
    for (const auto& [ckpt, label] : {std::pair{a.ckpt, a.label}, std::pair{a.ckpt2, a.label2}}) {
        if (ckpt.empty()) continue;
        analysis::LayerProbe<> probe(ctx, dims, a.batch);
        load(ctx, probe, ckpt, a, !runs.empty());
        runs.push_back(analysis::Run{label, probe.run(ctx, *ds, prep, static_cast<std::size_t>(a.images), ctx.threads())});
        std::cout << label << ": " << runs.back().stats.n << " images analysed\n";
    }
    const std::string csv = a.out + ".csv", png = a.out + ".png";
    if (a.analysis == "distance") {
        analysis::write_distance_csv(csv, runs);
        viz::write_png(png, analysis::draw_distance_plot(runs));
        for (const auto& r : runs) {
            std::cout << r.label << " mean attention distance (px) per layer:";
            for (long l = 0; l < r.stats.distance.layers; ++l) std::printf(" %.2f", r.stats.distance.layer_mean(l));
            std::cout << "\n";
        }
    } else {
        std::vector<std::string> labels;
        std::vector<std::vector<std::vector<double>>> spectra;
        std::vector<std::vector<double>> shown;
        const long layer = a.layer > 0 ? a.layer - 1 : dims.depth - 1;
        for (const auto& r : runs) {
            labels.push_back(r.label);
            spectra.push_back(analysis::layer_spectra(r.stats));
            shown.push_back(spectra.back()[static_cast<std::size_t>(layer)]);
        }
        analysis::write_spectrum_csv(csv, labels, spectra);
        viz::write_png(png, analysis::draw_spectrum_plot(labels, shown, layer));
    }
    written(csv);
    written(png);
    return 0;
}

}  // namespace lcmae::tools
