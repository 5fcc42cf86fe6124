// Dataset readers: IDX (gzip and plain), image folders, CIFAR, and every bad input of issue 4.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <zlib.h>

#include "data/temp_dir.hpp"
#include "lcmae/data/cifar.hpp"
#include "lcmae/data/idx.hpp"
#include "lcmae/data/image_folder.hpp"
#include "lcmae/data/loader.hpp"

using namespace lcmae;
using namespace lcmae::data;
using lcmae::test::TempDir;

namespace {
std::vector<std::uint8_t> idx_bytes(std::vector<std::uint32_t> dims, std::uint8_t type = 0x08) {
    std::vector<std::uint8_t> b = {0, 0, type, static_cast<std::uint8_t>(dims.size())};
    std::size_t n = 1;
    for (auto d : dims) {
        for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(d >> s));
        n *= d;
    }
    for (std::size_t i = 0; i < n; ++i) b.push_back(static_cast<std::uint8_t>((i * 7 + 3) % 256));
    return b;
}
void write_plain(const std::string& path, const std::vector<std::uint8_t>& b) {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}
void write_gz(const std::string& path, const std::vector<std::uint8_t>& b) {
    gzFile f = gzopen(path.c_str(), "wb");
    REQUIRE(f != nullptr);
    REQUIRE(gzwrite(f, b.data(), static_cast<unsigned>(b.size())) == static_cast<int>(b.size()));
    gzclose(f);
}
/// Runs f, requires an lcmae::Error, and returns its message.
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const lcmae::Error& e) {
        return e.what();
    }
    FAIL("expected an lcmae::Error");
    return {};
}
bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("IDX reader: images and labels, gzip and plain") {
    TempDir dir;
    auto images = idx_bytes({5, 3, 4});
    std::vector<std::uint8_t> labels = {0, 0, 8, 1, 0, 0, 0, 5, 3, 1, 4, 1, 5};
    write_gz(dir / "img.gz", images);
    write_plain(dir / "img", images);
    write_plain(dir / "lab", labels);
    for (const char* name : {"img.gz", "img"}) {
        auto ds = load_idx(dir / name, dir / "lab");
        REQUIRE(ds->size() == 5);
        CHECK(ds->channels() == 1);
        CHECK(ds->height() == 3);
        CHECK(ds->width() == 4);
        CHECK(ds->label(0) == 3);
        CHECK(ds->label(4) == 5);
        CHECK(ds->num_classes() == 6);
        const cv::Mat m = ds->image(2);
        CHECK(m.rows == 3);
        CHECK(m.cols == 4);
        for (int y = 0; y < 3; ++y)
            for (int x = 0; x < 4; ++x) CHECK(int(m.at<std::uint8_t>(y, x)) == ((2 * 12 + y * 4 + x) * 7 + 3) % 256);
    }
    auto unlabelled = load_idx(dir / "img");
    CHECK(unlabelled->label(1) == -1);
    CHECK(unlabelled->num_classes() == 0);
}

TEST_CASE("IDX reader: bad input names the file and what is wrong") {
    TempDir dir;
    auto images = idx_bytes({5, 3, 4});
    auto cut = images;
    cut.resize(cut.size() - 7);
    write_plain(dir / "cut", cut);
    write_gz(dir / "cut.gz", cut);
    auto e = error_of([&] { read_idx(dir / "cut", 3); });
    CHECK(has(e, dir / "cut"));
    CHECK(has(e, "truncated"));
    e = error_of([&] { read_idx(dir / "cut.gz", 3); });
    CHECK(has(e, dir / "cut.gz"));
    CHECK(has(e, "truncated"));
    // a truncated gzip stream (the compressed bytes cut short)
    write_gz(dir / "full.gz", idx_bytes({200, 28, 28}));
    std::ifstream in(dir / "full.gz", std::ios::binary);
    std::vector<char> gz((std::istreambuf_iterator<char>(in)), {});
    gz.resize(gz.size() / 2);
    std::ofstream(dir / "half.gz", std::ios::binary).write(gz.data(), static_cast<std::streamsize>(gz.size()));
    e = error_of([&] { read_idx(dir / "half.gz", 3); });
    CHECK(has(e, "half.gz"));
    CHECK(has(e, "truncated"));
    // header cut inside the dimensions
    write_plain(dir / "hdr", {0, 0, 8, 3, 0, 0});
    CHECK(has(error_of([&] { read_idx(dir / "hdr", 3); }), "truncated"));
    // bad magic, wrong type, wrong rank
    auto bad = images;
    bad[0] = 7;
    write_plain(dir / "magic", bad);
    CHECK(has(error_of([&] { read_idx(dir / "magic", 3); }), "magic"));
    write_plain(dir / "type", idx_bytes({2, 2, 2}, 0x0D));
    CHECK(has(error_of([&] { read_idx(dir / "type", 3); }), "element type"));
    write_plain(dir / "labels", idx_bytes({5}));
    e = error_of([&] { read_idx(dir / "labels", 3); });
    CHECK(has(e, "1 dimensions, expected 3"));
    // missing file
    CHECK(has(error_of([&] { read_idx(dir / "nope", 3); }), "does not exist"));
    // label count that does not match the image count
    write_plain(dir / "img", images);
    write_plain(dir / "lab4", idx_bytes({4}));
    e = error_of([&] { load_idx(dir / "img", dir / "lab4"); });
    CHECK(has(e, "4 labels"));
    CHECK(has(e, "5 images"));
    CHECK(has(e, dir / "lab4"));
}

// Where the data can be installed it must be: CI (CI=true) and every Debian-family system, where
// scripts/test.sh installs the dataset-fashion-mnist package, fail without it. Only where that
// package cannot exist (no /etc/debian_version) is the test skipped, visibly: CTest runs this case
// on its own as the test "data_fashion_mnist" and reports it as Skipped (tests/CMakeLists.txt).
TEST_CASE("Fashion-MNIST as installed") {
    const std::string file = std::string(kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz";
    if (!std::filesystem::exists(file)) {
        const char* ci = std::getenv("CI");
        const bool in_ci = ci != nullptr && std::string(ci) == "true";
        const bool debian = std::filesystem::exists("/etc/debian_version");
        const std::string where = in_ci ? "CI (CI=true)" : "a Debian-family system";
        if (in_ci || debian)
            FAIL("Fashion-MNIST is missing (" << file << ") on " << where
                                              << ": install the Debian package dataset-fashion-mnist (scripts/test.sh does)");
        MESSAGE("LCMAE_SKIP: Fashion-MNIST not installed, and the Debian package dataset-fashion-mnist cannot exist here");
        return;
    }
    auto test = load_fashion_mnist(false);
    CHECK(test->size() == 10000);
    CHECK(test->height() == 28);
    CHECK(test->width() == 28);
    CHECK(test->num_classes() == 10);
    CHECK(test->label(0) == 9);  // the first test image is an ankle boot
}

TEST_CASE("image folder: classes sorted by name, flat layout, formats") {
    TempDir dir;
    std::filesystem::create_directories(dir.path / "b_cls");
    std::filesystem::create_directories(dir.path / "a_cls" / "nested");
    cv::Mat red(6, 8, CV_8UC3, cv::Scalar(0, 0, 255));  // BGR red
    cv::imwrite(dir / "b_cls/x.png", red);
    cv::imwrite(dir / "b_cls/y.bmp", red);
    cv::imwrite(dir / "a_cls/z.png", red);
    cv::imwrite(dir / "a_cls/nested/w.jpg", red);
    std::ofstream(dir / "a_cls/readme.txt") << "not an image";
    ImageFolder f(dir.path.string());
    REQUIRE(f.size() == 4);
    CHECK(f.num_classes() == 2);
    CHECK(f.classes()[0] == "a_cls");
    CHECK(f.label(0) == 0);
    CHECK(f.label(1) == 0);
    CHECK(f.label(2) == 1);
    CHECK(has(f.path(0), "a_cls/nested/w.jpg"));
    const cv::Mat m = f.image(2);
    CHECK(m.channels() == 3);
    CHECK(m.at<cv::Vec3b>(0, 0) == cv::Vec3b(255, 0, 0));  // RGB order
    ImageFolderOptions gray;
    gray.channels = 1;
    CHECK(ImageFolder(dir.path.string(), gray).image(2).channels() == 1);

    TempDir flat;
    cv::imwrite(flat / "1.png", red);
    cv::imwrite(flat / "2.png", red);
    ImageFolder ff(flat.path.string());
    CHECK(ff.size() == 2);
    CHECK(ff.label(0) == -1);
    CHECK(ff.num_classes() == 0);
}

TEST_CASE("image folder: bad input") {
    TempDir dir;
    CHECK(has(error_of([&] { ImageFolder f(dir.path.string()); }), "contains no image files"));
    CHECK(has(error_of([&] { ImageFolder f(dir / "missing"); }), "does not exist"));
    std::filesystem::create_directories(dir.path / "empty_class");
    CHECK(has(error_of([&] { ImageFolder f(dir.path.string()); }), "contains no image files"));

    TempDir bad;
    cv::Mat img(40, 40, CV_8UC3, cv::Scalar(10, 20, 30));
    cv::imwrite(bad / "a.png", img);
    std::ofstream(bad / "b.png") << "this is not a png";
    cv::imwrite(bad / "c.png", img);
    ImageFolder strict(bad.path.string());
    auto e = error_of([&] { strict.image(1); });
    CHECK(has(e, bad / "b.png"));
    CHECK(has(e, "cannot decode"));
    // through the loader, the error names the sample's file too
    LoaderConfig cfg;
    cfg.batch = 3;
    cfg.image_size = 16;
    cfg.threads = 2;
    cfg.shuffle = false;
    Loader<crop::SimpleResized> loader(strict, cfg);
    loader.start_epoch(0);
    e = error_of([&] { loader.next(); });
    CHECK(has(e, bad / "b.png"));

    ImageFolderOptions skip;
    skip.skip_corrupt = true;
    ImageFolder lenient(bad.path.string(), skip);
    CHECK(lenient.image(1).rows == 40);  // replaced by the next decodable image
    CHECK(lenient.skipped() == 1);
    lenient.image(1);
    CHECK(lenient.skipped() == 1);  // counted once per file
    skip.verify = true;
    ImageFolder verified(bad.path.string(), skip);
    CHECK(verified.size() == 2);
    ImageFolderOptions verify_strict;
    verify_strict.verify = true;
    CHECK(has(error_of([&] { ImageFolder f(bad.path.string(), verify_strict); }), bad / "b.png"));
}

TEST_CASE("an image smaller than the crop, with upscaling off, is an error naming the file") {
    TempDir dir;
    cv::imwrite(dir / "small.png", cv::Mat(20, 30, CV_8UC3, cv::Scalar(1, 2, 3)));
    ImageFolder f(dir.path.string());
    LoaderConfig cfg;
    cfg.batch = 1;
    cfg.image_size = 32;
    cfg.allow_upscale = false;
    Loader<crop::RandomResized> loader(f, cfg);
    loader.start_epoch(0);
    const auto e = error_of([&] { loader.next(); });
    CHECK(has(e, dir / "small.png"));
    CHECK(has(e, "smaller than the 32 px crop"));
    cfg.allow_upscale = true;
    Loader<crop::RandomResized> up(f, cfg);
    up.start_epoch(0);
    CHECK(up.next()->size == 1);
}

TEST_CASE("CIFAR binary batches") {
    TempDir dir;
    std::vector<std::uint8_t> rec10, rec100;
    for (int r = 0; r < 3; ++r) {
        rec10.push_back(static_cast<std::uint8_t>(r + 4));
        rec100.push_back(1);
        rec100.push_back(static_cast<std::uint8_t>(r + 60));
        for (int c = 0; c < 3; ++c)
            for (int p = 0; p < 1024; ++p) {
                const auto v = static_cast<std::uint8_t>(r * 50 + c * 10 + p % 7);
                rec10.push_back(v);
                rec100.push_back(v);
            }
    }
    write_plain(dir / "c10.bin", rec10);
    write_plain(dir / "c100.bin", rec100);
    auto c10 = load_cifar({dir / "c10.bin"}, CifarVariant::Cifar10);
    REQUIRE(c10->size() == 3);
    CHECK(c10->label(2) == 6);
    CHECK(c10->num_classes() == 10);
    const cv::Mat m = c10->image(1);
    CHECK(m.at<cv::Vec3b>(0, 3) == cv::Vec3b(53, 63, 73));  // planes R, G, B -> HWC RGB
    auto c100 = load_cifar({dir / "c100.bin"}, CifarVariant::Cifar100);
    CHECK(c100->label(1) == 61);
    CHECK(c100->num_classes() == 100);
    rec10.pop_back();
    write_plain(dir / "cut.bin", rec10);
    auto e = error_of([&] { load_cifar({dir / "cut.bin"}, CifarVariant::Cifar10); });
    CHECK(has(e, dir / "cut.bin"));
    CHECK(has(e, "3073-byte records"));
    CHECK(has(error_of([&] { load_cifar10(dir.path.string()); }), "data_batch_1.bin"));
}

TEST_CASE("JPEG size from the header; reduced decoding keeps the shorter side above what the crop needs") {
    TempDir dir;
    cv::Mat img(375, 500, CV_8UC3);
    cv::randu(img, 0, 255);
    cv::GaussianBlur(img, img, cv::Size(9, 9), 3);
    std::filesystem::create_directories(dir.path / "c");
    cv::imwrite(dir / "c/a.jpg", img);
    cv::imwrite(dir / "c/b.png", img);
    std::ifstream in(dir / "c/a.jpg", std::ios::binary);
    std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
    const auto hw = jpeg_size(bytes);
    REQUIRE(hw.has_value());
    CHECK(hw->first == 375);
    CHECK(hw->second == 500);
    CHECK_FALSE(jpeg_size({0x89, 'P', 'N', 'G'}).has_value());
    CHECK_FALSE(jpeg_size({0xFF, 0xD8, 0xFF}).has_value());

    ImageFolder f(dir.path.string());
    CHECK(f.image(0).rows == 375);
    const cv::Mat r4 = f.image(0, 80);  // 375 >= 4 * 80 -> 1/4 scale
    CHECK(r4.rows == 94);
    CHECK(r4.cols == 125);
    CHECK(f.image(0, 32).rows == 47);    // 1/8
    CHECK(f.image(0, 188).rows == 375);  // 375 < 2 * 188 -> full
    CHECK(f.image(1, 32).rows == 375);   // png: always full
    // the reduced decode is a fair downscale of the full one
    cv::Mat full = f.image(0), small;
    cv::resize(full, small, r4.size(), 0, 0, cv::INTER_AREA);
    CHECK(cv::norm(small, r4, cv::NORM_L1) / double(small.total() * 3) < 4.0);
    // the loader asks for what its crop needs: image_size for the simple resized crop
    LoaderConfig cfg;
    cfg.batch = 1;
    cfg.image_size = 32;
    Loader<crop::SimpleResized> srs(f, cfg);
    CHECK(srs.decode_min_side() == 32);
    Loader<crop::RandomResized> rrc(f, cfg);
    CHECK(rrc.decode_min_side() == 72);  // 32 / sqrt(0.2) = 71.6
    cfg.reduced_decode = false;
    CHECK(Loader<crop::RandomResized>(f, cfg).decode_min_side() == 0);
}
