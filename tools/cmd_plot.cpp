// tools/cmd_plot.cpp - `lcmae plot`: training curves from metrics.jsonl files as a PNG (OpenCV,
// include/lcmae/viz/line_plot.hpp).
//
//   lcmae plot --out curves.png --x step --y loss MAE=runs/mae/metrics.jsonl LC-MAE=runs/lcmae/metrics.jsonl
//   lcmae plot --out parts.png --y mim,gg --log-y LC-MAE=runs/lcmae/metrics.jsonl
//
// Each positional argument is LABEL=FILE: a JSON-lines file, one object per logging step; every
// key named by --x and --y must be a number in every line (a line without it is an error naming the
// file and line). One series per (file, y key), labelled "LABEL" or "LABEL key" when --y names
// several keys.
#include <cmath>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/options.hpp"
#include "commands.hpp"
#include "lcmae/core/error.hpp"
#include "lcmae/viz/line_plot.hpp"

namespace lcmae::tools {
namespace {

const std::vector<cli::Option>& plot_options() {
    static const std::vector<cli::Option> table{
        {"--out", "FILE.png", "(required)", "the PNG to write", cli::Kind::Text, "all"},
        {"--x", "KEY", "step", "the key on the x axis", cli::Kind::Text, "all"},
        {"--y", "KEY[,KEY...]", "loss", "the key(s) on the y axis", cli::Kind::Text, "all"},
        {"--title", "TEXT", "(none)", "title above the plot", cli::Kind::Text, "all"},
        {"--xlabel", "TEXT", "the --x key", "x axis label", cli::Kind::Text, "all"},
        {"--ylabel", "TEXT", "the --y key(s)", "y axis label", cli::Kind::Text, "all"},
        {"--log-y", "", "off", "log-scaled y axis", cli::Kind::Flag, "all"},
        {"--y-min", "Y", "(from the data)", "bottom of the y axis", cli::Kind::Number, "all"},
        {"--y-max", "Y", "(from the data)", "top of the y axis (points above are clipped)", cli::Kind::Number, "all"},
        {"--smooth", "N", "1", "plot the running mean of the last N points (1 = raw)", cli::Kind::Int, "all"},
        {"--width", "PX", "960", "image width", cli::Kind::Int, "all"},
        {"--height", "PX", "600", "image height", cli::Kind::Int, "all"},
        {"--help", "", "", "this text", cli::Kind::Flag, "all"},
    };
    return table;
}

std::vector<std::string> split_commas(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    for (std::string part; std::getline(ss, part, ',');)
        if (!part.empty()) out.push_back(part);
    return out;
}

double number_at(const nlohmann::json& obj, const std::string& key, const std::string& file, long line) {
    const auto it = obj.find(key);
    LCMAE_CHECK(it != obj.end(), file << " line " << line << ": no key '" << key << "'");
    LCMAE_CHECK(it->is_number(), file << " line " << line << ": '" << key << "' is " << it->type_name() << ", expected a number");
    return it->get<double>();
}

}  // namespace

int cmd_plot(int argc, char** argv) {
    const std::string help_cmd = "lcmae plot";
    std::string out, xkey = "step", ykeys = "loss", title, xlabel, ylabel;
    bool log_y = false;
    long smooth = 1, width = 960, height = 600;
    double y_min = NAN, y_max = NAN;
    std::vector<std::pair<std::string, std::string>> inputs;  // label, file
    for (int i = 1; i < argc; ++i) {
        const std::string k = argv[i];
        if (k.rfind("-", 0) != 0) {
            const auto eq = k.find('=');
            if (eq == std::string::npos || eq == 0 || eq + 1 == k.size())
                cli::usage_error("expected LABEL=FILE.jsonl, got '" + k + "'", help_cmd);
            inputs.emplace_back(k.substr(0, eq), k.substr(eq + 1));
            continue;
        }
        const cli::Option* o = cli::find_option(plot_options(), k);
        if (!o) cli::usage_error("unknown option '" + k + "' for 'lcmae plot'", help_cmd);
        const std::string n = o->name;
        if (n == "--help") {
            std::cout << "usage: lcmae plot --out FILE.png [options] LABEL=FILE.jsonl [LABEL=FILE.jsonl ...]\n\noptions:\n";
            cli::print_options(std::cout, plot_options(), "all");
            return 0;
        }
        if (n == "--log-y") { log_y = true; continue; }
        if (i + 1 >= argc) cli::usage_error("option " + k + " needs a value (" + o->value + ")", help_cmd);
        const std::string v = argv[++i];
        if (n == "--out") out = v;
        else if (n == "--x") xkey = v;
        else if (n == "--y") ykeys = v;
        else if (n == "--title") title = v;
        else if (n == "--xlabel") xlabel = v;
        else if (n == "--ylabel") ylabel = v;
        else if (n == "--y-min") y_min = cli::parse_number(n, v, help_cmd);
        else if (n == "--y-max") y_max = cli::parse_number(n, v, help_cmd);
        else if (n == "--smooth") smooth = cli::parse_int(n, v, 1, 100000, help_cmd);
        else if (n == "--width") width = cli::parse_int(n, v, 200, 8000, help_cmd);
        else if (n == "--height") height = cli::parse_int(n, v, 150, 8000, help_cmd);
    }
    if (out.empty()) cli::usage_error("--out FILE.png is required", help_cmd);
    if (inputs.empty()) cli::usage_error("no input given (expected LABEL=FILE.jsonl)", help_cmd);
    const auto ys = split_commas(ykeys);
    if (ys.empty()) cli::usage_error("--y expects one or more keys separated by commas, got '" + ykeys + "'", help_cmd);

    std::vector<viz::Series> series;
    for (const auto& [label, file] : inputs) {
        std::ifstream in(file);
        LCMAE_CHECK(in, "cannot open metrics file '" << file << "'");
        std::vector<viz::Series> mine(ys.size());
        for (std::size_t j = 0; j < ys.size(); ++j) mine[j].label = ys.size() > 1 ? label + " " + ys[j] : label;
        std::string text;
        long line = 0;
        while (std::getline(in, text)) {
            ++line;
            if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
            nlohmann::json obj;
            try {
                obj = nlohmann::json::parse(text);
            } catch (const nlohmann::json::exception& e) {
                LCMAE_FAIL(file << " line " << line << " is not JSON: " << e.what());
            }
            LCMAE_CHECK(obj.is_object(), file << " line " << line << " is " << obj.type_name() << ", expected an object");
            const double x = number_at(obj, xkey, file, line);
            for (std::size_t j = 0; j < ys.size(); ++j) {
                mine[j].x.push_back(x);
                mine[j].y.push_back(number_at(obj, ys[j], file, line));
            }
        }
        LCMAE_CHECK(line > 0 && !mine[0].x.empty(), "metrics file '" << file << "' has no lines");
        for (auto& s : mine) {
            if (smooth > 1) {  // trailing running mean: the curve at x is the mean of the last N points
                std::vector<double> sm(s.y.size());
                double acc = 0;
                for (std::size_t i = 0; i < s.y.size(); ++i) {
                    acc += s.y[i];
                    if (i >= std::size_t(smooth)) acc -= s.y[i - std::size_t(smooth)];
                    sm[i] = acc / double(std::min<std::size_t>(i + 1, std::size_t(smooth)));
                }
                s.y = std::move(sm);
            }
            series.push_back(std::move(s));
        }
    }
    viz::PlotOptions po;
    po.title = title;
    po.xlabel = xlabel.empty() ? xkey : xlabel;
    po.ylabel = ylabel.empty() ? ykeys + (smooth > 1 ? " (mean of " + std::to_string(smooth) + ")" : "") : ylabel;
    po.width = int(width);
    po.height = int(height);
    po.log_y = log_y;
    po.y_min = y_min;
    po.y_max = y_max;
    if (std::isfinite(y_min) && std::isfinite(y_max) && !(y_max > y_min))
        cli::usage_error("--y-max must be above --y-min", help_cmd);
    viz::write_png(out, viz::draw_line_plot(series, po));
    std::printf("wrote %s (%zu series)\n", out.c_str(), series.size());
    return 0;
}

}  // namespace lcmae::tools
