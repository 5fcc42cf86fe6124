// Line charts (lcmae/viz/line_plot.hpp): ticks, where a curve lands, legend colours, errors.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "lcmae/viz/line_plot.hpp"

using namespace lcmae;

TEST_CASE("nice_ticks steps by 1, 2 or 5 x 10^k and covers the range") {
    CHECK(viz::nice_ticks(0, 10) == std::vector<double>{0, 2, 4, 6, 8, 10});
    CHECK(viz::nice_ticks(0, 1, 5) == std::vector<double>{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1});
    const auto t = viz::nice_ticks(17, 2811);
    REQUIRE(t.size() >= 3);
    CHECK(t.front() >= 17);
    CHECK(t.back() <= 2811);
    CHECK(t[1] - t[0] == doctest::Approx(500));
    CHECK_THROWS_WITH_AS(viz::nice_ticks(1, 1), doctest::Contains("need a finite range lo < hi"), Error);
}

TEST_CASE("a horizontal series is drawn in its colour at its height, and nowhere above it") {
    viz::Series s{"flat", {0, 1, 2, 3}, {1, 1, 1, 1}, cv::Scalar(0, 0, 255), 3};
    viz::Series low{"low", {0, 3}, {0, 0}, cv::Scalar(255, 0, 0), 3};
    viz::PlotOptions o;
    o.width = 400;
    o.height = 300;
    o.title = "t";
    const cv::Mat img = viz::draw_line_plot({s, low}, o);
    REQUIRE(img.rows == 300);
    REQUIRE(img.cols == 400);
    // the plot area: left 90, right 30, top 55, bottom 70; y range [0, 1] padded by 5% each side
    const int ph = 300 - 55 - 70;
    const double y0 = -0.05, y1 = 1.05;
    const int row_flat = int(std::lround(55 + (1 - (1 - y0) / (y1 - y0)) * ph));
    const int row_low = int(std::lround(55 + (1 - (0 - y0) / (y1 - y0)) * ph));
    auto is = [&](int r, int c, cv::Vec3b want) {
        const cv::Vec3b p = img.at<cv::Vec3b>(r, c);
        return std::abs(p[0] - want[0]) < 40 && std::abs(p[1] - want[1]) < 40 && std::abs(p[2] - want[2]) < 40;
    };
    const int col = 90 + 60;  // left of the legend box (top right)
    CHECK(is(row_flat, col, {0, 0, 255}));
    CHECK(is(row_low, col, {255, 0, 0}));
    CHECK(!is(row_flat - 8, col, {0, 0, 255}));  // 3 px lines: nothing red 8 px above
    CHECK(!is(row_low - 20, col, {255, 0, 0}));
}

TEST_CASE("non-finite points break the line; log-y skips y <= 0") {
    viz::Series s{"gap", {0, 1, 2, 3}, {1, NAN, 2, 0}, cv::Scalar(0, 0, 255), 2};
    viz::PlotOptions o;
    o.log_y = true;
    CHECK_NOTHROW(viz::draw_line_plot({s}, o));
    viz::Series none{"none", {0, 1}, {0, -1}};
    CHECK_THROWS_WITH_AS(viz::draw_line_plot({none}, o), doctest::Contains("no finite point to draw (log y needs y > 0)"), Error);
}

TEST_CASE("bad input is an error that says why") {
    viz::Series bad{"bad", {0, 1, 2}, {1, 2}};
    CHECK_THROWS_WITH_AS(viz::draw_line_plot({bad}, {}), doctest::Contains("series 'bad' has 3 x and 2 y values"), Error);
    viz::PlotOptions tiny;
    tiny.width = 50;
    CHECK_THROWS_WITH_AS(viz::draw_line_plot({viz::Series{"a", {0, 1}, {0, 1}}}, tiny), doctest::Contains("too small"), Error);
    const cv::Mat img(10, 10, CV_8UC3, cv::Scalar(0, 0, 0));
    CHECK_THROWS_WITH_AS(viz::write_png("/nonexistent-dir/x.png", img), doctest::Contains("cannot write PNG '/nonexistent-dir/x.png'"), Error);
    const auto tmp = std::filesystem::temp_directory_path() / "lcmae-viz-test.png";
    viz::write_png(tmp.string(), img);
    CHECK(std::filesystem::file_size(tmp) > 0);
    std::filesystem::remove(tmp);
}
