// Regression tests for issue 10 (reliability) in the data readers: sizes from untrusted headers
// that overflow, count mismatches, files that cannot be read for lack of permission, and a JPEG
// cut in half. Each is an lcmae::Error naming the file (or, with skip_corrupt, a warning + skip),
// never a crash or a silently gray image.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <unistd.h>
#include <zlib.h>

#include "data/temp_dir.hpp"
#include "lcmae/data/cifar.hpp"
#include "lcmae/data/idx.hpp"
#include "lcmae/data/image_folder.hpp"

using namespace lcmae;
using namespace lcmae::data;
using lcmae::test::TempDir;

namespace {
void put_be32(std::vector<std::uint8_t>& b, std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(v >> s));
}
std::vector<std::uint8_t> idx_header(const std::vector<std::uint32_t>& dims) {
    std::vector<std::uint8_t> b = {0, 0, 0x08, static_cast<std::uint8_t>(dims.size())};
    for (auto d : dims) put_be32(b, d);
    return b;
}
void write_file(const std::string& path, const std::vector<std::uint8_t>& b) {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}
template <class F>
std::string message_of(F&& f) {
    try {
        f();
    } catch (const lcmae::Error& e) {
        return e.what();
    }
    return "(no lcmae::Error thrown)";
}
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The largest single operator new request while `track_largest_new` is set: shows that a reader
// sizes its buffer by the data present, not by what a header claims (replaces the global
// operator new of test_data; it only records sizes).
std::atomic<bool> track_largest_new{false};
std::atomic<std::size_t> largest_new{0};
}  // namespace

void* operator new(std::size_t n) {
    if (track_largest_new.load(std::memory_order_relaxed)) {
        std::size_t seen = largest_new.load(std::memory_order_relaxed);
        while (n > seen && !largest_new.compare_exchange_weak(seen, n, std::memory_order_relaxed)) {
        }
    }
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {
/// Makes `path` unreadable; false (and a message) when this user can read it anyway (root).
bool make_unreadable(const std::string& path) {
    std::filesystem::permissions(path, std::filesystem::perms::none);
    if (::access(path.c_str(), R_OK) == 0) {
        MESSAGE("skipped: this user can read a file with mode 000 (root ignores permissions)");
        return false;
    }
    return true;
}
}  // namespace

TEST_CASE("IDX overflow: a 16-byte header whose count x rows x cols wraps 64 bits is an Error, not a crash") {
    TempDir dir;
    // 65536 x 2^24 x 2^24 = 2^64, which wrapped to 0 bytes: the old reader accepted the file with
    // no pixels and image(0) then read wild memory.
    const auto header = idx_header({65536u, 1u << 24, 1u << 24});
    REQUIRE(header.size() == 16);
    write_file(dir / "wrap-images", header);
    std::string msg = message_of([&] { (void)load_idx(dir / "wrap-images"); });
    INFO(msg);
    CHECK(contains(msg, dir / "wrap-images"));
    CHECK(contains(msg, "65536 x 16777216 x 16777216"));
    CHECK(contains(msg, "overflow"));
    // The same through gzip.
    {
        gzFile f = gzopen((dir / "wrap-images.gz").c_str(), "wb");
        REQUIRE(f != nullptr);
        gzwrite(f, header.data(), static_cast<unsigned>(header.size()));
        gzclose(f);
    }
    msg = message_of([&] { (void)load_idx(dir / "wrap-images.gz"); });
    INFO(msg);
    CHECK(contains(msg, "overflow"));
    // A row count past 2^31 - 1 cannot become an int.
    write_file(dir / "rows", idx_header({1u, 0x80000000u, 1u}));
    msg = message_of([&] { (void)load_idx(dir / "rows"); });
    INFO(msg);
    CHECK(contains(msg, "2147483648"));
    CHECK(contains(msg, "at most 2147483647"));
    // A plain file shorter than its header claims is refused before the data is allocated.
    write_file(dir / "short", idx_header({1000u, 28u, 28u}));
    msg = message_of([&] { (void)load_idx(dir / "short"); });
    INFO(msg);
    CHECK(contains(msg, "truncated"));
    CHECK(contains(msg, "784000"));
}

TEST_CASE("IDX: a tiny gzip file claiming gigabytes fails at its end without allocating them (fuzz finding)") {
    // fuzz/fuzz_idx.cpp found it: a 50-byte gzip file whose header claims 3 GB made the reader
    // allocate (and zero) the 3 GB before finding the stream empty; up to 64 GiB could be claimed.
    TempDir dir;
    auto bytes = idx_header({60000u, 1024u, 1024u});  // 60000 x 1 MiB, below the 2^36 limit
    bytes.resize(bytes.size() + 100, 7);
    {
        gzFile f = gzopen((dir / "claims.gz").c_str(), "wb");
        REQUIRE(f != nullptr);
        gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
        gzclose(f);
    }
    largest_new = 0;
    track_largest_new = true;
    const std::string msg = message_of([&] { (void)read_idx(dir / "claims.gz", 3); });
    track_largest_new = false;
    INFO(msg);
    CHECK(contains(msg, "truncated"));
    CHECK(contains(msg, "62914560000"));       // the claimed byte count
    CHECK(contains(msg, "only 100 are present"));
    CHECK(largest_new.load() <= (std::size_t{32} << 20));  // the 16 MiB first chunk, not 58 GiB
}

TEST_CASE("IDX: labels and images that disagree on the count") {
    TempDir dir;
    auto img = idx_header({3u, 2u, 2u});
    img.resize(img.size() + 12, 7);
    auto lab = idx_header({4u});
    lab.resize(lab.size() + 4, 1);
    write_file(dir / "img", img);
    write_file(dir / "lab", lab);
    const std::string msg = message_of([&] { (void)load_idx(dir / "img", dir / "lab"); });
    INFO(msg);
    CHECK(contains(msg, dir / "lab"));
    CHECK(contains(msg, "4 labels"));
    CHECK(contains(msg, "3 images"));
}

TEST_CASE("CIFAR: a file whose length is not a whole number of records") {
    TempDir dir;
    write_file(dir / "batch.bin", std::vector<std::uint8_t>(3073 * 2 + 5, 0));
    const std::string msg = message_of([&] { (void)load_cifar({dir / "batch.bin"}, CifarVariant::Cifar10); });
    INFO(msg);
    CHECK(contains(msg, dir / "batch.bin"));
    CHECK(contains(msg, "6151 bytes"));
    CHECK(contains(msg, "3073-byte records"));
}

TEST_CASE("data readers: an unreadable file says permission denied, not corrupt") {
    TempDir dir;
    auto img = idx_header({1u, 2u, 2u});
    img.resize(img.size() + 4, 0);
    write_file(dir / "locked-idx", img);
    write_file(dir / "locked.bin", std::vector<std::uint8_t>(3073, 0));
    std::filesystem::create_directories(dir / "folder");
    REQUIRE(cv::imwrite(dir / "folder/a.png", cv::Mat(4, 4, CV_8UC3, cv::Scalar(1, 2, 3))));
    if (!make_unreadable(dir / "locked-idx") || !make_unreadable(dir / "locked.bin") ||
        !make_unreadable(dir / "folder/a.png"))
        return;
    std::string msg = message_of([&] { (void)load_idx(dir / "locked-idx"); });
    INFO(msg);
    CHECK(contains(msg, "permission denied"));
    msg = message_of([&] { (void)load_cifar({dir / "locked.bin"}, CifarVariant::Cifar10); });
    INFO(msg);
    CHECK(contains(msg, "permission denied"));
    ImageFolder folder(dir / "folder", {.layout = FolderLayout::Flat});
    msg = message_of([&] { (void)folder.image(0); });
    INFO(msg);
    CHECK(contains(msg, "permission denied"));
    CHECK(!contains(msg, "corrupt or not an image"));
}

TEST_CASE("image folder: a JPEG cut in half is corrupt (error, or warning + skip)") {
    TempDir dir;
    std::filesystem::create_directories(dir / "imgs");
    cv::Mat noise(64, 64, CV_8UC3);
    cv::randu(noise, cv::Scalar::all(0), cv::Scalar::all(255));
    REQUIRE(cv::imwrite(dir / "imgs/a_cut.jpg", noise));
    REQUIRE(cv::imwrite(dir / "imgs/b_good.jpg", noise));
    const auto full = std::filesystem::file_size(dir / "imgs/a_cut.jpg");
    std::filesystem::resize_file(dir / "imgs/a_cut.jpg", full / 2);

    ImageFolder strict(dir / "imgs", {.layout = FolderLayout::Flat});
    REQUIRE(strict.size() == 2);
    const std::string msg = message_of([&] { (void)strict.image(0); });
    INFO(msg);
    CHECK(contains(msg, dir / "imgs/a_cut.jpg"));
    CHECK(contains(msg, "truncated JPEG"));
    CHECK(strict.image(1).rows == 64);  // the intact copy still decodes

    ImageFolder skipping(dir / "imgs", {.layout = FolderLayout::Flat, .skip_corrupt = true});
    const cv::Mat stand_in = skipping.image(0);
    CHECK(stand_in.rows == 64);
    CHECK(skipping.skipped() == 1);

    ImageFolder verified(dir / "imgs", {.layout = FolderLayout::Flat, .skip_corrupt = true, .verify = true});
    CHECK(verified.size() == 1);
    CHECK(verified.path(0) == dir / "imgs/b_good.jpg");
    CHECK_THROWS_AS(ImageFolder(dir / "imgs", {.layout = FolderLayout::Flat, .verify = true}), lcmae::Error);
}
