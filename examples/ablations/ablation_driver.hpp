// examples/ablations/ablation_driver.hpp - the one driver behind the ablation executables (one per
// table of the paper: ablation_5a_loss.cpp ... ablation_A_simmim.cpp; docs/ablations.md).
//
// A table is a type: its title, the paper's column names, and a type list of Lines; a Line is a
// row of lcmae/apps/ablation_rows.hpp (the model as a type + alpha + target mask ratio) with the
// label the paper prints and the paper's ViT-B/16 numbers. For each line the driver
//   1. pre-trains the row's model with one shared budget (--epochs over the first --limit images,
//      optionally capped by --steps-per-row / --minutes-per-row) on Fashion-MNIST or --data,
//   2. evaluates the online encoder (frozen): weighted k-NN (k 20, T 0.07; mean and CLS features)
//      and MAE's linear probe (BN + Linear, LARS; CLS feature),
//   3. writes OUT/<row id>.json (atomically; --resume skips rows whose JSON exists with the same
//      budget, so a killed grid continues where it stopped; tables that share --out share rows),
// then prints the table in Markdown from those files (and writes OUT/table-<table>.md), with the
// paper's numbers beside ours for reference.
//
// The model type gives only the structure: run_spec<Model>() turns it into the engine's spec, and
// the engine, trainer and evaluation are the library's shared (untemplated) code, so a table's
// translation unit stays cheap to compile (DESIGN.md: heavy instantiations in their own units).
#pragma once

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

#include "cli/options.hpp"
#include "lcmae/apps/ablation_rows.hpp"
#include "lcmae/apps/data_source.hpp"
#include "lcmae/apps/main_job_models.hpp"
#include "lcmae/apps/run_spec.hpp"
#include "lcmae/backend/cpu/omp_wait.hpp"
#include "lcmae/data/loader.hpp"
#include "lcmae/eval/features.hpp"
#include "lcmae/eval/knn.hpp"
#include "lcmae/eval/linear_probe.hpp"
#include "lcmae/io/atomic_file.hpp"
#include "lcmae/io/json.hpp"
#include "lcmae/lcmae.hpp"

namespace lcmae::ablations {

// ---- how a table is written ----------------------------------------------------------------

/// A string literal as a template argument (labels of a table's lines).
template <std::size_t N>
struct Text {
    char s[N]{};
    constexpr Text(const char (&str)[N]) { std::copy_n(str, N, s); }
    constexpr std::string_view view() const { return {s, N - 1}; }
};

/// The paper's numbers for a line: top-1 % of ViT-B/16 on ImageNet-1K; NaN where the paper gives none.
struct Paper {
    double ft = std::numeric_limits<double>::quiet_NaN();   // fine-tuning
    double lin = std::numeric_limits<double>::quiet_NaN();  // linear probe
};

/// One line of a table: a row type, the label the paper prints (cells separated by " | " when the
/// paper has several case columns, e.g. "MAE | RRC"), and the paper's numbers.
template <class R, Text Label, Paper P>
struct Line {
    using Row = R;
    static constexpr std::string_view label = Label.view();
    static constexpr Paper paper = P;
};

// A table (see ablation_5a_loss.cpp):
//   template <class Backbone> struct Table {
//       static constexpr std::string_view id, title, case_columns;  // "5a", "(a) Loss function", "Case"
//       static constexpr bool paper_lin;                             // the paper reports lin (not Table A)
//       using Rows = apps::AblationRows<Backbone, apps::MainJobRecipe>;
//       using Lines = std::tuple<Line<typename Rows::MaeRrc, "None", Paper{82.8, 61.5}>, ...>;
//   };

/// Cells of a " | "-separated label (or header).
constexpr int cell_count(std::string_view s) {
    int n = 1;
    for (std::size_t p = s.find(" | "); p != std::string_view::npos; p = s.find(" | ", p + 3)) ++n;
    return n;
}

// ---- flags ----------------------------------------------------------------------------------

struct Flags {
    std::string prog, data = "fashion-mnist", out = "runs/ablations", rows;
    long epochs = 1, limit = 10000, steps_per_row = 0, batch = 64, eval_train = 10000, eval_test = 10000;
    long probe_epochs = 90;
    double minutes_per_row = 0, blr = 1.5e-3, warmup = 0.05, probe_blr = 0.1;
    int threads = 0;
    std::uint64_t seed = 0;
    bool resume = false, list = false;
};

inline const std::vector<cli::Option>& options() {
    using cli::Kind;
    static const std::vector<cli::Option> table{
        {"--data", "fashion-mnist|cifar10:DIR", "fashion-mnist", "labelled images: pre-training uses the train split without labels, k-NN and the probe fit on it and score the test split", Kind::Text, "all"},
        {"--epochs", "E", "1", "pre-training schedule of every row (warm-up + cosine lr, EMA momentum)", Kind::Int, "all"},
        {"--limit", "N", "10000", "pre-train on the first N training images (0 = all)", Kind::Int, "all"},
        {"--steps-per-row", "N", "0 (the whole schedule)", "stop each row after N optimiser steps (the schedule still spans --epochs)", Kind::Int, "all"},
        {"--minutes-per-row", "M", "0 (no limit)", "stop each row's pre-training after M minutes (the schedule still spans --epochs)", Kind::Number, "all"},
        {"--batch", "B", "64", "images per step", Kind::Int, "all"},
        {"--blr", "LR", "1.5e-3", "base lr of AdamW (lr = blr * B / 256)", Kind::Number, "all"},
        {"--warmup", "E", "0.05", "warm-up epochs (at most --epochs)", Kind::Number, "all"},
        {"--eval-train", "N", "10000", "k-NN memory bank and probe training set: the first N training images (0 = all)", Kind::Int, "all"},
        {"--eval-test", "N", "10000", "k-NN queries and probe test set: the first N test images (0 = all)", Kind::Int, "all"},
        {"--probe-epochs", "E", "90", "linear probe epochs (MAE: 90; batch 256, LARS)", Kind::Int, "all"},
        {"--probe-blr", "LR", "0.1", "linear probe base lr (MAE: 0.1)", Kind::Number, "all"},
        {"--seed", "S", "0", "initialisation, masks, data order and probe of every row", Kind::Int, "all"},
        {"--threads", "T", "0 (all cores)", "CPU threads", Kind::Int, "all"},
        {"--rows", "ID,ID|N,N", "all rows", "run only these rows (ids from --list, or 1-based line numbers)", Kind::Text, "all"},
        {"--out", "DIR", "runs/ablations", "one JSON per row (OUT/<row id>.json) and the table (OUT/table-<table>.md)", Kind::Text, "all"},
        {"--resume", "", "off", "keep the rows of OUT that were made with the same budget; run the others", Kind::Flag, "all"},
        {"--list", "", "", "print the table's rows (id, model) and exit", Kind::Flag, "all"},
        {"--help", "", "", "this text", Kind::Flag, "all"},
    };
    return table;
}

inline Flags parse_flags(int argc, char** argv, std::string_view what) {
    Flags f;
    f.prog = std::filesystem::path(argv[0]).filename().string();
    const std::string here = f.prog;
    const auto int_in = [&](const std::string& n, const std::string& v, long lo) {
        return static_cast<long>(cli::parse_int(n, v, lo, std::numeric_limits<long>::max(), here));
    };
    const auto num = [&](const std::string& n, const std::string& v, double lo, bool open) {
        const double x = cli::parse_number(n, v, here);
        if (open ? !(x > lo) : !(x >= lo))
            cli::usage_error("option " + n + " expects a number " + (open ? "> " : ">= ") + std::to_string(lo) + ", got " + v, here);
        return x;
    };
    for (int i = 1; i < argc; ++i) {
        const std::string k = argv[i];
        const cli::Option* o = cli::find_option(options(), k);
        if (o == nullptr) cli::usage_error("unknown option '" + k + "' for '" + here + "'", here);
        std::string v;
        if (o->kind != cli::Kind::Flag) {
            if (i + 1 >= argc) cli::usage_error("option " + k + " needs a value (" + o->value + ")", here);
            v = argv[++i];
        }
        const std::string n = o->name;
        if (n == "--help") {
            std::printf("%s: %.*s\n\nusage: %s [options]\n\noptions:\n", here.c_str(), int(what.size()), what.data(), here.c_str());
            std::ostringstream os;
            cli::print_options(os, options(), "all");
            std::printf("%s\nexit status: 0 done, 1 run-time error (data, output, a row whose JSON has another budget), 2 bad command line\n",
                        os.str().c_str());
            std::exit(0);
        }
        if (n == "--data") f.data = v;
        else if (n == "--out") f.out = v;
        else if (n == "--rows") f.rows = v;
        else if (n == "--resume") f.resume = true;
        else if (n == "--list") f.list = true;
        else if (n == "--epochs") f.epochs = int_in(n, v, 1);
        else if (n == "--limit") f.limit = int_in(n, v, 0);
        else if (n == "--steps-per-row") f.steps_per_row = int_in(n, v, 0);
        else if (n == "--batch") f.batch = int_in(n, v, 2);
        else if (n == "--eval-train") f.eval_train = int_in(n, v, 0);
        else if (n == "--eval-test") f.eval_test = int_in(n, v, 0);
        else if (n == "--probe-epochs") f.probe_epochs = int_in(n, v, 1);
        else if (n == "--threads") f.threads = static_cast<int>(cli::parse_int(n, v, 0, 1024, here));
        else if (n == "--seed") f.seed = cli::parse_u64(n, v, here);
        else if (n == "--minutes-per-row") f.minutes_per_row = num(n, v, 0, false);
        else if (n == "--blr") f.blr = num(n, v, 0, true);
        else if (n == "--warmup") f.warmup = num(n, v, 0, false);
        else if (n == "--probe-blr") f.probe_blr = num(n, v, 0, true);
    }
    if (f.warmup > double(f.epochs))
        cli::usage_error("option --warmup expects a number in [0, --epochs = " + std::to_string(f.epochs) + "], got " + std::to_string(f.warmup), here);
    if (f.out.empty()) cli::usage_error("option --out must not be empty", here);
    if (!apps::is_fashion_mnist(f.data) && f.data.rfind("cifar10:", 0) != 0 &&
        !(std::filesystem::is_directory(f.data) && data::DataSource::parse(f.data).folder_has_splits()))
        cli::usage_error("option --data expects fashion-mnist, cifar10:DIR or a folder with train/ and test/ class sub-folders "
                         "(k-NN and the probe need a labelled test split), got '" + f.data + "'", here);
    return f;
}

// ---- JSON helpers -------------------------------------------------------------------------------

inline std::string json_text(std::string_view s) {
    std::string out;
    json::detail::write_string(out, s);
    return out;
}
inline std::string json_real(double x) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, x);  // the shortest text that reads back as x
    std::string t(buf, r.ptr);
    if (t.find_first_of(".eE") == std::string::npos) t += ".0";
    return t;
}

/// Everything that makes two rows comparable: the same budget, data, evaluation and seed. A row's
/// JSON holds it; --resume keeps a row only when it equals the current one (compared as JSON).
inline std::string budget_json(const Flags& f) {
    std::ostringstream js;
    js << "{\"data\": " << json_text(f.data) << ", \"epochs\": " << f.epochs << ", \"limit\": " << f.limit
       << ", \"steps_per_row\": " << f.steps_per_row << ", \"minutes_per_row\": " << json_real(f.minutes_per_row)
       << ", \"batch\": " << f.batch << ", \"blr\": " << json_real(f.blr) << ", \"warmup\": " << json_real(f.warmup)
       << ", \"eval_train\": " << f.eval_train << ", \"eval_test\": " << f.eval_test << ", \"probe_epochs\": " << f.probe_epochs
       << ", \"probe_blr\": " << json_real(f.probe_blr) << ", \"seed\": " << f.seed << "}";
    return js.str();
}

/// The numbers a table shows for one row (from its JSON file).
struct RowResult {
    double knn_mean = 0, knn_cls = 0, lin_cls = 0;
    long steps = 0;
    double train_seconds = 0, eval_seconds = 0;
};

enum class Stored { Missing, Same, OtherBudget };

/// Reads OUT/<id>.json: Missing (no file), OtherBudget (made with another budget) or Same (r filled).
inline Stored read_row(const std::filesystem::path& file, const std::string& budget, RowResult& r) {
    if (!std::filesystem::exists(file)) return Stored::Missing;
    std::ifstream in(file, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const json::Value v = json::parse(ss.str(), file.string(), json::Dialect::Config);
    const json::Value* b = v.find("budget");
    if (b == nullptr || json::dump(*b) != json::dump(json::parse(budget, "budget", json::Dialect::Config))) return Stored::OtherBudget;
    const auto num = [&](std::initializer_list<std::string_view> path) {
        const json::Value* x = &v;
        for (auto k : path) {
            x = x->find(k);
            LCMAE_CHECK(x != nullptr, file.string() << ": no '" << k << "'");
        }
        return x->as_number();
    };
    r.knn_mean = num({"knn", "mean"});
    r.knn_cls = num({"knn", "cls"});
    r.lin_cls = num({"linear", "cls"});
    r.steps = static_cast<long>(num({"train", "steps"}));
    r.train_seconds = num({"train", "seconds"});
    r.eval_seconds = num({"eval", "seconds"});
    return Stored::Same;
}

// ---- one row: pre-train, evaluate, write its JSON ----------------------------------------------

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// The data a table runs on (loaded once per executable).
struct DataSplits {
    std::shared_ptr<const data::Dataset> pretrain, eval_train, eval_test;
    data::Normalization norm;
};

inline DataSplits load_data(const Flags& f) {
    DataSplits d;
    const auto train = apps::load_split(f.data, true, d.norm);
    const auto test = apps::load_split(f.data, false, d.norm);
    LCMAE_CHECK(test != nullptr, "--data " << f.data << " has no labelled test split");
    d.pretrain = apps::first_n(train, std::size_t(f.limit));
    d.eval_train = apps::first_n(train, std::size_t(f.eval_train));
    d.eval_test = apps::first_n(test, std::size_t(f.eval_test));
    return d;
}

/// Pre-trains Row's model for the budget of `f`, evaluates it and writes `file`.
template <class Row>
void run_row(const Flags& f, const backend::Cpu& ctx, const DataSplits& d, const std::filesystem::path& file) {
    using Model = typename Row::Model;
    using Crop = typename Model::crop;
    const RunConfig rc{.target_mask_ratio = Row::target_mask_ratio, .alpha = Row::alpha, .max_batch = f.batch, .seed = f.seed};
    const models::ModelSpec spec = apps::run_spec<Model>(rc);
    models::LcmaeModel<float> model(spec, f.seed);  // what LCMAE<...>(rc) builds, with the data's SimMIM block

    data::LoaderConfig lc;
    lc.batch = int(f.batch);
    lc.image_size = int(spec.encoder.image);
    lc.channels = int(spec.encoder.channels);
    lc.seed = f.seed;
    lc.threads = std::max(1, ctx.threads() / 2);
    lc.norm = d.norm;
    lc.views = Model::guided_enabled ? data::Views::Pair : data::Views::Single;
    data::Loader<Crop> loader(d.pretrain, lc);
    const std::int64_t ipe = loader.batches_per_epoch();

    train::TrainConfig tc;
    tc.batch = f.batch;
    tc.epochs = f.epochs;
    tc.warmup_epochs = f.warmup;
    tc.blr = f.blr;
    tc.seed = f.seed;
    train::Trainer<float> trainer(model, tc, ipe);
    const std::int64_t total = f.steps_per_row > 0 ? std::min<std::int64_t>(f.steps_per_row, trainer.total_steps()) : trainer.total_steps();

    // ---- pre-training
    const auto t0 = Clock::now();
    double last_print = 0;
    models::StepLosses window{};
    long in_window = 0;
    models::StepLosses last{};
    std::string stopped_by = "schedule";
    bool stop = false;
    while (!stop && trainer.epoch() < f.epochs) {
        loader.start_epoch(std::uint64_t(trainer.epoch()));
        while (const data::Batch* b = loader.next()) {
            const auto r = trainer.micro_batch(ctx, b->view1, b->view2 ? b->view2 : b->view1, b->size);
            window.total += r.losses.total, window.mim += r.losses.mim, window.gg += r.losses.gg, ++in_window;
            const double el = seconds_since(t0);
            if (el - last_print >= 30 || trainer.step() >= total) {
                last = {window.mim / in_window, window.gg / in_window, window.total / in_window};
                std::printf("  [%s] step %lld/%lld  loss %.4f (mim %.4f, gg %.4f)  %.1f images/s\n", std::string(Row::id).c_str(),
                            (long long)trainer.step(), (long long)total, last.total, last.mim, last.gg,
                            double(trainer.step() * f.batch) / std::max(1e-9, el));
                std::fflush(stdout);
                window = {};
                in_window = 0;
                last_print = el;
            }
            if (trainer.step() >= total) {
                stop = true;
                if (f.steps_per_row > 0 && total < trainer.total_steps()) stopped_by = "--steps-per-row";
                break;
            }
            if (f.minutes_per_row > 0 && el >= f.minutes_per_row * 60) {
                stop = true, stopped_by = "--minutes-per-row";
                break;
            }
        }
        if (!stop) trainer.end_epoch();
    }
    if (in_window > 0) last = {window.mim / in_window, window.gg / in_window, window.total / in_window};
    const double train_seconds = seconds_since(t0);

    // ---- evaluation of the online encoder, frozen (no checkpoint round trip)
    const auto t1 = Clock::now();
    const eval::ImagePrep prep{.image = int(spec.encoder.image), .channels = int(spec.encoder.channels), .norm = d.norm};
    eval::FrozenEncoder<float> enc(ctx, spec.encoder, 256);
    enc.copy_from(model.params());
    const auto ftr = enc.extract(ctx, *d.eval_train, prep, 0, {}, ctx.threads());
    const auto fte = enc.extract(ctx, *d.eval_test, prep, 0, {}, ctx.threads());
    eval::KnnConfig kc;  // k 20, T 0.07
    kc.threads = ctx.threads();
    kc.k = int(std::min<std::size_t>(std::size_t(kc.k), d.eval_train->size()));
    const auto knn_mean = eval::knn_classify(ftr.mean, fte.mean, kc);
    const auto knn_cls = eval::knn_classify(ftr.cls, fte.cls, kc);
    eval::LinearProbeConfig pc;  // MAE's protocol: CLS feature, BN + Linear, LARS
    pc.epochs = f.probe_epochs;
    pc.warmup_epochs = std::min(10.0, double(f.probe_epochs) / 9.0);
    pc.batch = std::min<long>(256, static_cast<long>(d.eval_train->size()));
    pc.blr = f.probe_blr;
    pc.seed = f.seed;
    // the probe's ops are tiny: one thread (docs/evaluation.md: 9x faster than two on busy cores)
    const auto lin = eval::linear_probe(backend::Cpu(1), ftr.cls, fte.cls, pc);
    const double eval_seconds = seconds_since(t1);

    // ---- the row's JSON
    std::ostringstream js;
    js << "{\n  \"row\": " << json_text(Row::id) << ",\n  \"name\": " << json_text(Row::name)
       << ",\n  \"model\": {\"loss\": " << json_text(Model::loss::name) << ", \"crop\": " << json_text(Crop::name)
       << ", \"guidance\": " << json_text(Model::guidance::name) << ", \"pool\": " << json_text(Model::pool::name)
       << ", \"guided\": " << json_text(Model::guided::name) << ", \"baseline\": " << json_text(Model::simmim ? "simmim" : "mae")
       << ", \"alpha\": " << json_real(spec.alpha) << ", \"target_mask_ratio\": " << json_real(spec.target_mask_ratio)
       << ", \"dim\": " << spec.encoder.dim << ", \"depth\": " << spec.encoder.depth << ", \"image\": " << spec.encoder.image
       << ", \"patch\": " << spec.encoder.patch << "}"
       << ",\n  \"budget\": " << budget_json(f) << ",\n  \"train\": {\"steps\": " << trainer.step()
       << ", \"schedule_steps\": " << trainer.total_steps() << ", \"images\": " << trainer.step() * f.batch
       << ", \"stopped_by\": " << json_text(stopped_by) << ", \"seconds\": " << json_real(train_seconds)
       << ", \"threads\": " << ctx.threads() << ", \"last_loss\": {\"total\": " << json_real(last.total)
       << ", \"mim\": " << json_real(last.mim) << ", \"gg\": " << json_real(last.gg) << "}}"
       << ",\n  \"knn\": {\"k\": " << kc.k << ", \"temperature\": " << json_real(kc.temperature) << ", \"mean\": " << json_real(knn_mean.top1)
       << ", \"cls\": " << json_real(knn_cls.top1) << "}"
       << ",\n  \"linear\": {\"feature\": \"cls\", \"epochs\": " << pc.epochs << ", \"batch\": " << pc.batch << ", \"lr\": " << json_real(lin.lr)
       << ", \"cls\": " << json_real(lin.top1) << "}"
       << ",\n  \"eval\": {\"n_train\": " << d.eval_train->size() << ", \"n_test\": " << d.eval_test->size()
       << ", \"seconds\": " << json_real(eval_seconds) << "}\n}\n";
    io::AtomicFileWriter w(file);
    w.write(js.str());
    w.commit();
    std::printf("  [%s] %lld steps in %.1f s; k-NN mean %.2f%% cls %.2f%%, linear probe (cls) %.2f%% (eval %.1f s) -> %s\n",
                std::string(Row::id).c_str(), (long long)trainer.step(), train_seconds, knn_mean.top1, knn_cls.top1, lin.top1,
                eval_seconds, file.string().c_str());
    std::fflush(stdout);
}

// ---- the table ----------------------------------------------------------------------------------

inline std::string cell(double x, int decimals = 2) {
    if (std::isnan(x)) return "-";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, x);
    return buf;
}

/// Which lines --rows selects: ids or 1-based line numbers, comma-separated ("" = all).
template <class Lines>
std::vector<bool> selected_lines(const Flags& f) {
    constexpr std::size_t n = std::tuple_size_v<Lines>;
    std::vector<std::string_view> ids;
    std::apply([&](auto... l) { (ids.push_back(decltype(l)::Row::id), ...); }, Lines{});
    std::vector<bool> sel(n, f.rows.empty());
    std::stringstream ss(f.rows);
    for (std::string tok; std::getline(ss, tok, ',');) {
        if (tok.empty()) continue;
        bool found = false;
        for (std::size_t i = 0; i < n; ++i)
            if (ids[i] == tok || std::to_string(i + 1) == tok) sel[i] = true, found = true;
        if (!found) cli::usage_error("option --rows: '" + tok + "' is neither a row id of this table nor a line number 1.." + std::to_string(n) + " (see --list)", f.prog);
    }
    return sel;
}

template <class Table>
std::string markdown_table(const Flags& f, const std::filesystem::path& out, const std::string& budget) {
    using Lines = typename Table::Lines;
    using Rows = typename Table::Rows;
    using B = typename Rows::LcmaeDefault::Model::backbone;
    std::ostringstream md;
    md << "Table " << Table::id << ": " << Table::title << "\n\n"
       << "ours: " << (apps::is_fashion_mnist(f.data) ? "Fashion-MNIST" : f.data) << ", ViT D " << B::dims().dim << " x " << B::dims().depth
       << " blocks, " << B::dims().image << " px / patch " << B::dims().patch << "; pre-training " << f.epochs << " epoch(s) of the first "
       << (f.limit > 0 ? std::to_string(f.limit) : std::string("all")) << " training images, batch " << f.batch
       << (f.steps_per_row > 0 ? ", at most " + std::to_string(f.steps_per_row) + " steps per row" : std::string())
       << (f.minutes_per_row > 0 ? ", at most " + cell(f.minutes_per_row, 1) + " min per row" : std::string()) << ", seed " << f.seed
       << "; top-1 % on " << (f.eval_test > 0 ? std::to_string(f.eval_test) : std::string("all")) << " test images: weighted k-NN (k 20, mean feature, "
       << (f.eval_train > 0 ? std::to_string(f.eval_train) : std::string("all")) << " train images) and linear probe (CLS, " << f.probe_epochs
       << " epoch(s)).\n"
       << "paper: ViT-B/16 pre-trained on ImageNet-1K (" << Table::paper_epochs << " epochs), top-1 %: ft = fine-tuning"
       << (Table::paper_lin ? ", lin = linear probing" : " (the paper gives no linear probing here)")
       << " (reference only: another model, data set and budget).\n\n";
    md << "| " << Table::case_columns << " | ours k-NN | ours lin | paper ft |" << (Table::paper_lin ? " paper lin |" : "") << "\n|";
    const int cols = cell_count(Table::case_columns) + 3 + (Table::paper_lin ? 1 : 0);
    for (int i = 0; i < cols; ++i) md << "---|";
    md << "\n";
    std::apply(
        [&](auto... l) {
            const auto line = [&](auto li) {
                using L = decltype(li);
                using Row = typename L::Row;
                static_assert(cell_count(L::label) == cell_count(Table::case_columns), "a line's label must have one cell per case column");
                RowResult r;
                const Stored s = read_row(out / (std::string(Row::id) + ".json"), budget, r);
                const bool def = std::is_same_v<Row, typename Rows::LcmaeDefault>;
                std::string label(L::label);  // the default row in bold, cell by cell
                if (def) {
                    for (std::size_t p = label.find(" | "); p != std::string::npos; p = label.find(" | ", p + 7)) label.replace(p, 3, "** | **");
                    label = "**" + label + "**";
                }
                md << "| " << label << " | "
                   << (s == Stored::Same ? cell(r.knn_mean) : "-") << " | " << (s == Stored::Same ? cell(r.lin_cls) : "-") << " | "
                   << cell(L::paper.ft, 1) << " |";
                if (Table::paper_lin) md << " " << cell(L::paper.lin, 1) << " |";
                md << "\n";
            };
            (line(l), ...);
        },
        Lines{});
    md << "\n(bold: the paper's default, gray in the paper; '-': not run with this budget; per-row JSON in " << out.string() << ")\n";
    return md.str();
}

/// main() of a table's executable: Table<Backbone> at the data's geometry (28 px gray for
/// Fashion-MNIST, 32 px RGB for CIFAR-10).
template <template <class> class Table>
int run_table(int argc, char** argv) try {
    backend::cpu::prefer_passive_omp_wait(argv);  // re-executes itself once (omp_wait.hpp says why)
    using FashionTable = Table<apps::FashionMnistBackbone>;
    const Flags f = parse_flags(argc, argv, std::string("Table ") + std::string(FashionTable::id) + " of the paper, " + std::string(FashionTable::title));
    const auto go = [&]<class T>(T*) -> int {
        using Lines = typename T::Lines;
        const std::vector<bool> sel = selected_lines<Lines>(f);
        if (f.list) {
            int i = 0;
            std::apply([&](auto... l) { ((std::printf("%d  %-24s %.*s\n", ++i, std::string(decltype(l)::Row::id).c_str(),
                                                     int(decltype(l)::Row::name.size()), decltype(l)::Row::name.data())), ...); },
                       Lines{});
            return 0;
        }
        namespace fs = std::filesystem;
        const fs::path out(f.out);
        fs::create_directories(out);
        const backend::Cpu ctx = f.threads > 0 ? backend::Cpu(f.threads) : backend::Cpu();
        const std::string budget = budget_json(f);
        // --resume keeps only rows of the same budget; a row of another budget is an error (not
        // silently mixed into the table, not silently overwritten)
        std::size_t i = 0, kept = 0, todo = 0;
        std::vector<bool> run(sel.size(), false);
        std::set<std::string_view> seen;
        std::apply(
            [&](auto... l) {
                const auto plan = [&](auto li) {
                    using Row = typename decltype(li)::Row;
                    const std::size_t k = i++;
                    if (!sel[k] || !seen.insert(Row::id).second) return;
                    const fs::path file = out / (std::string(Row::id) + ".json");
                    RowResult r;
                    const Stored s = f.resume ? read_row(file, budget, r) : Stored::Missing;
                    if (s == Stored::OtherBudget)
                        LCMAE_FAIL(f.prog << ": --resume: " << file.string() << " was made with another budget; use the same flags, "
                                          << "another --out, or remove the file (this run: " << budget << ")");
                    if (s == Stored::Same) ++kept; else run[k] = true, ++todo;
                };
                (plan(l), ...);
            },
            Lines{});
        std::printf("%s: Table %s, %zu rows to run, %zu kept from %s (--resume); %d threads\n", f.prog.c_str(), std::string(T::id).c_str(), todo,
                    kept, out.string().c_str(), ctx.threads());
        std::fflush(stdout);
        const DataSplits d = todo > 0 ? load_data(f) : DataSplits{};
        const auto t0 = Clock::now();
        i = 0;
        std::apply(
            [&](auto... l) {
                const auto one = [&](auto li) {
                    using Row = typename decltype(li)::Row;
                    if (!run[i++]) return;
                    std::printf("row %s: %.*s\n", std::string(Row::id).c_str(), int(Row::name.size()), Row::name.data());
                    std::fflush(stdout);
                    run_row<Row>(f, ctx, d, out / (std::string(Row::id) + ".json"));
                };
                (one(l), ...);
            },
            Lines{});
        if (todo > 0) std::printf("%zu rows in %.1f s\n", todo, seconds_since(t0));
        const std::string md = markdown_table<T>(f, out, budget);
        io::AtomicFileWriter w(out / ("table-" + std::string(T::id) + ".md"));
        w.write(md);
        w.commit();
        std::printf("\n%s\n", md.c_str());
        return 0;
    };
    if (apps::is_fashion_mnist(f.data)) return go(static_cast<FashionTable*>(nullptr));
    return go(static_cast<Table<apps::FolderBackbone>*>(nullptr));
} catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
}

}  // namespace lcmae::ablations
