// lcmae/analysis/report.hpp - the analyses' CSV files and plots (OpenCV, viz/line_plot.hpp), one
// entry per analysed checkpoint ("run"): label + LayerStats.
//
//   distance CSV: label,layer,head,distance_px  (head "mean" = the average over heads)
//   spectrum CSV: label,layer,rank,sigma,log10_sigma
#pragma once

#include <fstream>
#include <string>
#include <vector>

#include "lcmae/analysis/layers.hpp"
#include "lcmae/analysis/spectrum.hpp"
#include "lcmae/viz/line_plot.hpp"

namespace lcmae::analysis {

/// One analysed checkpoint.
struct Run {
    std::string label;
    LayerStats stats;
};

/// Spectra of every layer of a run: (layers) x (dim singular values, descending).
inline std::vector<std::vector<double>> layer_spectra(const LayerStats& s) {
    std::vector<std::vector<double>> out;
    for (long l = 0; l < s.layers; ++l) out.push_back(covariance_spectrum(s.layer_features(l), s.n, s.dim));
    return out;
}

namespace detail {
inline std::ofstream open_csv(const std::string& path, const char* header) {
    std::ofstream f(path);
    LCMAE_CHECK(f, "cannot write CSV file '" << path << "'");
    f << header << "\n";
    f.precision(9);
    return f;
}
inline std::vector<double> one_to(long n) {
    std::vector<double> x(static_cast<std::size_t>(n));
    for (long i = 0; i < n; ++i) x[static_cast<std::size_t>(i)] = double(i + 1);
    return x;
}
}  // namespace detail

/// Rows: per run, layer (1-based) and head (0-based, then "mean"). runs * layers * (heads + 1) rows.
inline void write_distance_csv(const std::string& path, const std::vector<Run>& runs) {
    auto f = detail::open_csv(path, "label,layer,head,distance_px");
    for (const auto& r : runs) {
        const DistanceTable& t = r.stats.distance;
        for (long l = 0; l < t.layers; ++l) {
            for (long h = 0; h < t.heads; ++h) f << r.label << "," << l + 1 << "," << h << "," << t.at(l, h) << "\n";
            f << r.label << "," << l + 1 << ",mean," << t.layer_mean(l) << "\n";
        }
    }
    LCMAE_CHECK(f.flush(), "cannot write CSV file '" << path << "'");
}

/// Mean distance per layer (thick, one colour per run) and each head (thin, same colour).
inline cv::Mat draw_distance_plot(const std::vector<Run>& runs, int width = 960, int height = 600) {
    std::vector<viz::Series> series;
    for (std::size_t k = 0; k < runs.size(); ++k) {
        const DistanceTable& t = runs[k].stats.distance;
        const cv::Scalar c = viz::detail::palette(static_cast<int>(k));
        viz::Series mean{runs[k].label + " (mean of heads)", detail::one_to(t.layers), {}, c, 3};
        for (long l = 0; l < t.layers; ++l) mean.y.push_back(t.layer_mean(l));
        series.push_back(std::move(mean));
        for (long h = 0; h < t.heads; ++h) {
            viz::Series s{runs[k].label + " head " + std::to_string(h), detail::one_to(t.layers), {}, c, 1};
            for (long l = 0; l < t.layers; ++l) s.y.push_back(t.at(l, h));
            series.push_back(std::move(s));
        }
    }
    return viz::draw_line_plot(series, {.title = "mean attention distance", .xlabel = "layer", .ylabel = "distance (px)",
                                        .width = width, .height = height});
}

/// Rows: per run, layer (1-based) and rank (1-based). runs * layers * dim rows.
inline void write_spectrum_csv(const std::string& path, const std::vector<std::string>& labels,
                               const std::vector<std::vector<std::vector<double>>>& spectra) {
    auto f = detail::open_csv(path, "label,layer,rank,sigma,log10_sigma");
    for (std::size_t k = 0; k < spectra.size(); ++k)
        for (std::size_t l = 0; l < spectra[k].size(); ++l)
            for (std::size_t r = 0; r < spectra[k][l].size(); ++r)
                f << labels[k] << "," << l + 1 << "," << r + 1 << "," << spectra[k][l][r] << "," << log_sigma(spectra[k][l][r]) << "\n";
    LCMAE_CHECK(f.flush(), "cannot write CSV file '" << path << "'");
}

/// log10 sigma per rank of one layer for each run; with two runs a second panel (below) shows the
/// per-rank difference log10 sigma(run 2) - log10 sigma(run 1).
inline cv::Mat draw_spectrum_plot(const std::vector<std::string>& labels, const std::vector<std::vector<double>>& layer_spectra,
                                  long layer, int width = 960, int height = 600) {
    std::vector<viz::Series> series;
    for (std::size_t k = 0; k < layer_spectra.size(); ++k) {
        viz::Series s{labels[k], detail::one_to(static_cast<long>(layer_spectra[k].size())), {}};
        for (double v : layer_spectra[k]) s.y.push_back(log_sigma(v));
        series.push_back(std::move(s));
    }
    const std::string where = "layer " + std::to_string(layer + 1);
    cv::Mat top = viz::draw_line_plot(series, {.title = "singular value spectrum, " + where, .xlabel = "rank",
                                               .ylabel = "log10 sigma", .width = width, .height = height});
    if (layer_spectra.size() != 2) return top;
    const auto& a = layer_spectra[0];
    const auto& b = layer_spectra[1];
    LCMAE_CHECK(a.size() == b.size(), "spectra of " << a.size() << " and " << b.size() << " values cannot be compared");
    viz::Series d{labels[1] + " - " + labels[0], detail::one_to(static_cast<long>(a.size())), {}};
    for (std::size_t r = 0; r < a.size(); ++r) d.y.push_back(log_sigma(b[r]) - log_sigma(a[r]));
    cv::Mat bottom = viz::draw_line_plot({d}, {.title = "per-rank difference, " + where, .xlabel = "rank",
                                               .ylabel = "log10 sigma difference", .width = width, .height = height});
    cv::Mat both;
    cv::vconcat(top, bottom, both);
    return both;
}

}  // namespace lcmae::analysis
