// The analyses (lcmae/analysis/): closed forms of the mean attention distance and the spectrum,
// attention rows of a tiny random model, and the sizes of the CSV files and plots they write.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "eval/synthetic.hpp"
#include "lcmae/analysis/attention_map.hpp"
#include "lcmae/analysis/reconstruct.hpp"
#include "lcmae/analysis/report.hpp"

using namespace lcmae;

namespace {
const vit::VitDims kTiny{16, 2, 2, 4, 12, 1, 4};  // G = 3, N = 10
const eval::ImagePrep kPrep{.image = 12, .channels = 1, .norm = data::Normalization::fashion_mnist()};

long count_lines(const std::string& path) {
    std::ifstream f(path);
    long n = 0;
    for (std::string s; std::getline(f, s);) ++n;
    return n;
}
}  // namespace

TEST_CASE("mean attention distance: identity attention is 0, attention on one far patch is its distance") {
    const long G = 4, L = G * G, N = 1 + L;
    const auto dist = analysis::grid_distances(G, 16.0);
    std::vector<double> a(static_cast<std::size_t>(N * N), 0.0);
    for (long i = 0; i < N; ++i) a[static_cast<std::size_t>(i * N + i)] = 1.0;
    CHECK(analysis::mean_attention_distance(a.data(), N, dist) == 0.0);
    // every query looks at patch (0, 0) only: the mean of all patches' distances to the corner
    std::fill(a.begin(), a.end(), 0.0);
    double expect = 0;
    for (long i = 0; i < L; ++i) {
        a[static_cast<std::size_t>((1 + i) * N + 1)] = 1.0;
        expect += 16.0 * std::hypot(double(i / G), double(i % G));
    }
    CHECK(analysis::mean_attention_distance(a.data(), N, dist) == doctest::Approx(expect / L));
}

TEST_CASE("mean attention distance: uniform attention is the mean pairwise grid distance; CLS mass is dropped, not renormalised") {
    for (long G : {2L, 3L, 7L}) {
        const long L = G * G, N = 1 + L;
        const double p = 4.0;
        // closed form by offsets: (G - |dr|)(G - |dc|) ordered pairs lie at offset (dr, dc)
        double pair_sum = 0;
        for (long dr = -(G - 1); dr < G; ++dr)
            for (long dc = -(G - 1); dc < G; ++dc)
                pair_sum += double(G - std::abs(dr)) * double(G - std::abs(dc)) * p * std::hypot(double(dr), double(dc));
        const double mean_pair = pair_sum / double(L * L);
        std::vector<float> patches_only(static_cast<std::size_t>(N * N), 0.0f), all(static_cast<std::size_t>(N * N), 1.0f / float(N));
        for (long i = 0; i < N; ++i)
            for (long j = 1; j < N; ++j) patches_only[static_cast<std::size_t>(i * N + j)] = 1.0f / float(L);
        const auto dist = analysis::grid_distances(G, p);
        CHECK(analysis::mean_attention_distance(patches_only.data(), N, dist) == doctest::Approx(mean_pair).epsilon(1e-6));
        CHECK(analysis::mean_attention_distance(all.data(), N, dist) == doctest::Approx(mean_pair * double(L) / double(N)).epsilon(1e-6));
    }
    CHECK_THROWS_WITH_AS(analysis::mean_attention_distance(std::vector<float>(25).data(), 5, analysis::grid_distances(3, 1)),
                         doctest::Contains("5 tokens need a (4 x 4) distance table, got 81 values"), Error);
}

TEST_CASE("spectrum: singular values of a constructed matrix and of a covariance with known eigenvalues") {
    // M = U diag(s) V^T with orthonormal U, V (from a QR of fixed random matrices)
    const long D = 6;
    Rng r(7, 1);
    Eigen::MatrixXd g1(D, D), g2(D, D);
    for (long i = 0; i < D; ++i)
        for (long j = 0; j < D; ++j) g1(i, j) = r.normal(), g2(i, j) = r.normal();
    const Eigen::MatrixXd U = Eigen::HouseholderQR<Eigen::MatrixXd>(g1).householderQ();
    const Eigen::MatrixXd V = Eigen::HouseholderQR<Eigen::MatrixXd>(g2).householderQ();
    const std::vector<double> s{9, 5, 2.5, 1, 0.25, 0};
    const Eigen::MatrixXd M = U * Eigen::Map<const Eigen::VectorXd>(s.data(), D).asDiagonal() * V.transpose();
    const auto got = analysis::singular_values(M);
    REQUIRE(got.size() == s.size());
    for (std::size_t k = 0; k < s.size(); ++k) CHECK(got[k] == doctest::Approx(s[k]).epsilon(1e-9));

    // features +-a_k u_k (plus a common offset the centring removes): covariance
    // (1 / 2K) sum_k 2 a_k^2 u_k u_k^T has eigenvalues a_k^2 / K on the u_k and 0 elsewhere
    const std::vector<double> amp{3, 2, 1};
    const long K = 3, n = 2 * K;
    std::vector<float> feats(static_cast<std::size_t>(n * D));
    for (long k = 0; k < K; ++k)
        for (long d = 0; d < D; ++d) {
            feats[static_cast<std::size_t>((2 * k) * D + d)] = float(5.0 + amp[k] * U(d, k));
            feats[static_cast<std::size_t>((2 * k + 1) * D + d)] = float(5.0 - amp[k] * U(d, k));
        }
    const auto spec = analysis::covariance_spectrum(feats.data(), n, D);
    REQUIRE(spec.size() == std::size_t(D));
    for (long k = 0; k < K; ++k) CHECK(spec[k] == doctest::Approx(amp[k] * amp[k] / K).epsilon(1e-5));
    for (long k = K; k < D; ++k) CHECK(spec[k] == doctest::Approx(0).epsilon(1e-5));
    CHECK(analysis::log_sigma(0) == -12);
}

TEST_CASE("layer probe: every block's attention rows sum to one; features are the block outputs' patch means") {
    const backend::Cpu ctx(2);
    const auto ds = test::toy_images(5, 12);
    analysis::LayerProbe<> probe(ctx, kTiny, 4);
    probe.encoder().init_random(ctx, 3);
    const analysis::LayerStats s = probe.run(ctx, *ds, kPrep);
    CHECK(s.layers == 2);
    CHECK(s.n == 5);
    CHECK(s.features.size() == std::size_t(2 * 5 * 16));
    for (long l = 0; l < 2; ++l)
        for (long h = 0; h < 2; ++h) {
            CHECK(s.distance.at(l, h) > 0);
            CHECK(s.distance.at(l, h) < 4.0 * std::sqrt(8.0));  // the largest distance on a 3 x 3 grid
        }
    // the last batch (image 4 alone): rows of every block and head sum to one
    const long N = 10;
    for (long l = 0; l < 2; ++l) {
        const auto p = probe.block_probs(ctx, l);
        REQUIRE(p.size() == std::size_t(1 * 2 * N * N));
        for (long row = 0; row < 2 * N; ++row) {
            double sum = 0;
            for (long j = 0; j < N; ++j) sum += p[static_cast<std::size_t>(row * N + j)];
            CHECK(sum == doctest::Approx(1.0).epsilon(1e-5));
        }
        const auto x = probe.block_output(ctx, l);
        for (long k = 0; k < 16; ++k) {
            double m = 0;
            for (long t = 1; t < N; ++t) m += x[static_cast<std::size_t>(t * 16 + k)];
            CHECK(s.layer_features(l)[4 * 16 + k] == doctest::Approx(m / 9).epsilon(1e-5));
        }
    }
}

TEST_CASE("reports: the distance and spectrum CSV files have one row per entry; the plots have the expected size") {
    const backend::Cpu ctx(2);
    const auto ds = test::toy_images(6, 12);
    std::vector<analysis::Run> runs;
    for (std::uint64_t seed : {1u, 2u}) {
        analysis::LayerProbe<> probe(ctx, kTiny, 4);
        probe.encoder().init_random(ctx, seed);
        runs.push_back({"seed" + std::to_string(seed), probe.run(ctx, *ds, kPrep)});
    }
    const auto dir = std::filesystem::temp_directory_path() / "lcmae_test_analysis";
    std::filesystem::create_directories(dir);
    const std::string dcsv = (dir / "distance.csv").string(), scsv = (dir / "spectrum.csv").string();
    analysis::write_distance_csv(dcsv, runs);
    CHECK(count_lines(dcsv) == 1 + 2 * 2 * (2 + 1));
    const cv::Mat dplot = analysis::draw_distance_plot(runs, 640, 400);
    CHECK(dplot.cols == 640);
    CHECK(dplot.rows == 400);

    std::vector<std::vector<std::vector<double>>> spectra;
    for (const auto& r : runs) spectra.push_back(analysis::layer_spectra(r.stats));
    analysis::write_spectrum_csv(scsv, {"a", "b"}, spectra);
    CHECK(count_lines(scsv) == 1 + 2 * 2 * 16);
    const cv::Mat one = analysis::draw_spectrum_plot({"a"}, {spectra[0][1]}, 1, 640, 400);
    CHECK((one.cols == 640 && one.rows == 400));
    const cv::Mat two = analysis::draw_spectrum_plot({"a", "b"}, {spectra[0][1], spectra[1][1]}, 1, 640, 400);
    CHECK((two.cols == 640 && two.rows == 800));  // spectra above, their difference below
    const std::string png = (dir / "spectrum.png").string();
    viz::write_png(png, two);
    CHECK(cv::imread(png).rows == 800);
    std::filesystem::remove_all(dir);
}

TEST_CASE("attention maps: a row of the mean map is the mean of the heads' rows; the grid has one row per query") {
    const backend::Cpu ctx(2);
    const auto ds = test::toy_images(1, 12);
    analysis::LayerProbe<> probe(ctx, kTiny, 1);
    probe.encoder().init_random(ctx, 5);
    std::vector<float> img(kPrep.floats());
    kPrep(ds->image(0), img.data());
    probe.forward(ctx, img.data(), 1);
    const auto p = probe.block_probs(ctx, 1);
    const analysis::Query q{1, 2};
    const auto h0 = analysis::attention_row(p.data(), 2, 3, q, 0), h1 = analysis::attention_row(p.data(), 2, 3, q, 1),
               mean = analysis::attention_row(p.data(), 2, 3, q, 2);
    REQUIRE(mean.size() == 9);
    for (std::size_t j = 0; j < 9; ++j) CHECK(mean[j] == doctest::Approx((h0[j] + h1[j]) / 2));
    CHECK(h0[4] == p[(0 * 10 + 1 + 1 * 3 + 2) * 10 + 1 + 4]);
    const cv::Mat g = analysis::attention_grid(ds->image(0), p.data(), 2, 3, {{0, 0}, q}, 48);
    CHECK(g.rows == 2 * 48);
    CHECK(g.cols == (2 + 2) * 48);
    CHECK_THROWS_WITH_AS(analysis::attention_grid(ds->image(0), p.data(), 2, 3, {{3, 0}}, 48),
                         doctest::Contains("query patch (3, 0) is outside the 3 x 3 grid"), Error);
}

namespace {
/// A kTiny probe with random weights (seed) and a position table that is not the sin-cos one (as
/// an imported checkpoint's), so a resampled encoder that kept its own table differs.
void init_with_own_table(const backend::Cpu& ctx, analysis::LayerProbe<>& probe, std::uint64_t seed) {
    probe.encoder().init_random(ctx, seed);
    std::vector<float> pos = probe.encoder().encoder().pos_embed();
    Rng r(seed, 77);
    for (float& v : pos) v += 0.5f * (r.uniform() - 0.5f);
    probe.encoder().encoder().set_pos_embed(std::move(pos));
}
}  // namespace

TEST_CASE("another input size: resampled at the trained grid, the encoder's attention is the original's, bit for bit") {
    const backend::Cpu ctx(2);
    const auto ds = test::toy_images(1, 12);
    analysis::LayerProbe<> trained(ctx, kTiny, 1), same(ctx, kTiny, 1);
    init_with_own_table(ctx, trained, 11);
    same.resample_from(trained);
    CHECK(same.encoder().encoder().pos_embed() == trained.encoder().encoder().pos_embed());
    std::vector<float> img(kPrep.floats());
    kPrep(ds->image(0), img.data());
    trained.forward(ctx, img.data(), 1);
    same.forward(ctx, img.data(), 1);
    for (long l = 0; l < kTiny.depth; ++l) {
        CHECK(same.block_probs(ctx, l) == trained.block_probs(ctx, l));
        CHECK(same.block_output(ctx, l) == trained.block_output(ctx, l));
    }
}

TEST_CASE("another input size: twice the size has the resampled table, the same weights, and attention rows that sum to one") {
    const backend::Cpu ctx(2);
    const auto ds = test::toy_images(1, 12);
    analysis::LayerProbe<> trained(ctx, kTiny, 1);
    init_with_own_table(ctx, trained, 12);
    vit::VitDims big_dims = kTiny;
    big_dims.image = 24;  // G' = 6, N' = 37
    analysis::LayerProbe<> big(ctx, big_dims, 1);
    big.resample_from(trained);
    const std::vector<float>& table = big.encoder().encoder().pos_embed();
    REQUIRE(table.size() == std::size_t(37 * 16));
    CHECK(table == nn::resample_abs_pos_embed(trained.encoder().encoder().pos_embed(), 16, 3, 3, 6, 6));
    CHECK(table != nn::sincos_pos_embed_2d<float>(16, 6));
    for (long k = 0; k < 16; ++k) CHECK(table[std::size_t(k)] == trained.encoder().encoder().pos_embed()[std::size_t(k)]);  // CLS row kept
    CHECK(big.encoder().params().values().size() == trained.encoder().params().values().size());
    for (std::size_t i = 0; i < big.encoder().params().values().size(); ++i)
        REQUIRE(big.encoder().params().values()[i] == trained.encoder().params().values()[i]);

    eval::ImagePrep prep = kPrep;
    prep.image = prep.resize = 24;
    std::vector<float> img(prep.floats());
    prep(ds->image(0), img.data());
    big.forward(ctx, img.data(), 1);
    const long N = 37;
    const auto p = big.block_probs(ctx, kTiny.depth - 1);
    REQUIRE(p.size() == std::size_t(kTiny.heads * N * N));
    for (long row = 0; row < kTiny.heads * N; ++row) {
        double sum = 0;
        for (long j = 0; j < N; ++j) sum += p[static_cast<std::size_t>(row * N + j)];
        CHECK(sum == doctest::Approx(1.0).epsilon(1e-5));
    }
    const cv::Mat g = analysis::attention_grid(ds->image(0), p.data(), kTiny.heads, 6, {{5, 5}, {0, 3}}, 48);
    CHECK(g.rows == 2 * 48);
    CHECK(g.cols == (kTiny.heads + 2) * 48);

    vit::VitDims wider = big_dims;
    wider.dim = 32;
    analysis::LayerProbe<> other(ctx, wider, 1);
    CHECK_THROWS_WITH_AS(other.resample_from(trained), doctest::Contains("differ in more than the image size (width 16 -> 32"), Error);
}

TEST_CASE("reconstruction: visible patches are the original, masked ones the prediction; the grid has 4 columns per image") {
    const backend::Cpu ctx(2);
    const auto ds = test::toy_images(3, 12);
    const models::DecoderDims dd{16, 1, 2};
    analysis::Reconstructor<> rec(ctx, kTiny, dd, 3, 0.75, true);
    rec.init_random(ctx, 4);
    std::vector<float> imgs(3 * kPrep.floats());
    for (std::size_t i = 0; i < 3; ++i) kPrep(ds->image(i), imgs.data() + i * kPrep.floats());
    Rng rng(1, 2);
    const auto r = rec.run(ctx, imgs.data(), 3, rng);
    CHECK(rec.kept() == 2);  // int(9 * 0.25)
    long removed = 0, nan = 0;
    for (auto m : r.mask) removed += m;
    CHECK(removed == 3 * 7);
    for (std::size_t i = 0; i < r.original.size(); ++i) {
        CHECK(r.original[i] == imgs[i]);
        if (std::isnan(r.masked_fill[i])) {
            ++nan;
            CHECK(r.pasted[i] == r.recon[i]);
        } else {
            CHECK(r.pasted[i] == imgs[i]);
        }
    }
    CHECK(nan == 3 * 7 * 16);
    CHECK(analysis::patch_pixel(1, 12, 4, 4, 5) == (4 + 1) * 12 + 4 + 1);  // patch (1, 1), pixel (1, 1)
    const cv::Mat g = analysis::reconstruction_grid(r, 1, 12, kPrep.norm, 2);
    CHECK(g.rows == 3 * (24 + 4) + 4);
    CHECK(g.cols == 4 * (24 + 4) + 4);
}
