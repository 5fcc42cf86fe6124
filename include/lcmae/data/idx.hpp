// lcmae/data/idx.hpp - the IDX format of MNIST and Fashion-MNIST (gzip-compressed or plain).
//
// Format (yann.lecun.com/exdb/mnist): a big-endian header of 4 bytes magic = {0, 0, type, ndims}
// (type 0x08 = unsigned byte), then ndims big-endian uint32 sizes, then the data. Images are
// (N, rows, cols), labels (N). zlib's gzread reads gzip files and passes plain files through, so
// one reader serves both. Every failure names the file and says what was wrong.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <zlib.h>

#include "lcmae/core/error.hpp"
#include "lcmae/data/dataset.hpp"

namespace lcmae::data {

/// The raw content of one IDX file of unsigned bytes.
struct IdxArray {
    std::vector<std::uint32_t> dims;
    std::vector<std::uint8_t> data;
};

namespace detail {
struct GzCloser {
    void operator()(gzFile_s* f) const noexcept { gzclose(f); }
};

/// Reads exactly `bytes` bytes into `out`. They are bytes [offset, offset + bytes) of a `what` of
/// `whole` bytes (0: just these), which is what the errors report.
inline void gz_read_exact(gzFile f, void* out, std::size_t bytes, const std::string& path, const char* what,
                          std::size_t offset = 0, std::size_t whole = 0) {
    auto* p = static_cast<unsigned char*>(out);
    if (whole == 0) whole = bytes;
    std::size_t done = 0;
    while (done < bytes) {
        // gzread takes an unsigned count: read in chunks of at most 1 GiB.
        const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(bytes - done, 1u << 30));
        const int got = gzread(f, p + done, chunk);
        if (got < 0) {
            int errnum = 0;
            const char* msg = gzerror(f, &errnum);
            // A gzip stream that ends early reports Z_BUF_ERROR: that is truncation, say so.
            LCMAE_CHECK(errnum != Z_BUF_ERROR, "IDX file " << path << " is truncated: the " << what << " needs "
                                                           << whole << " bytes but the compressed stream ends early");
            LCMAE_FAIL("IDX file " << path << ": read error in the " << what << " (" << msg << ")");
        }
        LCMAE_CHECK(got > 0, "IDX file " << path << " is truncated: the " << what << " needs " << whole
                                         << " bytes but only " << offset + done << " are present");
        done += static_cast<std::size_t>(got);
    }
}
}  // namespace detail

namespace detail {
inline std::string dims_str(const std::vector<std::uint32_t>& dims) {
    std::string s;
    for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? " x " : "") + std::to_string(dims[i]);
    return s;
}
}  // namespace detail

/// Reads an IDX file of unsigned bytes with `expected_dims` dimensions (3 for images, 1 for labels).
inline IdxArray read_idx(const std::string& path, int expected_dims) {
    LCMAE_CHECK(std::filesystem::exists(path), "IDX file " << path << " does not exist");
    errno = 0;
    std::unique_ptr<gzFile_s, detail::GzCloser> f(gzopen(path.c_str(), "rb"));
    const int open_errno = errno;
    LCMAE_CHECK(f != nullptr, "IDX file " << path << " cannot be opened: " << detail::open_failure(open_errno));
    gzbuffer(f.get(), 1 << 17);

    unsigned char magic[4];
    detail::gz_read_exact(f.get(), magic, 4, path, "header");
    LCMAE_CHECK(magic[0] == 0 && magic[1] == 0,
                "IDX file " << path << " has a bad magic number (first two bytes must be 0, got "
                            << int(magic[0]) << ", " << int(magic[1]) << ")");
    LCMAE_CHECK(magic[2] == 0x08, "IDX file " << path << " has element type 0x" << std::hex << int(magic[2])
                                              << std::dec << "; only unsigned bytes (0x08) are supported");
    LCMAE_CHECK(magic[3] == expected_dims, "IDX file " << path << " has " << int(magic[3])
                                                       << " dimensions, expected " << expected_dims
                                                       << (expected_dims == 3 ? " (images)" : " (labels)"));
    IdxArray out;
    // Every size here comes from the file: check each product for overflow (a 16-byte header with
    // count 65536 x 2^24 x 2^24 wraps to 0 bytes without this) and bound each axis.
    constexpr std::size_t kMaxBytes = std::size_t{1} << 36;
    std::size_t total = 1;
    for (int d = 0; d < expected_dims; ++d) {
        unsigned char b[4];
        detail::gz_read_exact(f.get(), b, 4, path, "header");
        const std::uint32_t n = (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) |
                                (std::uint32_t{b[2]} << 8) | std::uint32_t{b[3]};
        LCMAE_CHECK(n > 0 || d == 0, "IDX file " << path << ": dimension " << d << " is 0");
        // Rows and columns become ints (cv::Mat): at most 2^31 - 1 each.
        LCMAE_CHECK(d == 0 || n <= std::uint32_t{0x7FFFFFFF},
                    "IDX file " << path << ": dimension " << d << " is " << n << ", expected at most 2147483647");
        out.dims.push_back(n);
        LCMAE_CHECK(!__builtin_mul_overflow(total, std::size_t{n}, &total),
                    "IDX file " << path << ": dimensions " << detail::dims_str(out.dims)
                                << " overflow a 64-bit byte count; not a real dataset");
    }
    LCMAE_CHECK(total < kMaxBytes, "IDX file " << path << " claims " << total << " bytes of data (dimensions "
                                               << detail::dims_str(out.dims) << "), expected below " << kMaxBytes
                                               << "; that is not a real dataset");
    // A plain (not gzipped) file must hold the data the header claims; check before allocating.
    if (gzdirect(f.get())) {
        std::error_code ec;
        const auto file_bytes = std::filesystem::file_size(path, ec);
        const std::size_t header_bytes = 4 + 4 * static_cast<std::size_t>(expected_dims);
        LCMAE_CHECK(ec || file_bytes >= header_bytes + total,
                    "IDX file " << path << " is truncated: the header (dimensions " << detail::dims_str(out.dims) << ") claims "
                                << total << " bytes of data but the file has only " << file_bytes - header_bytes);
        out.data.resize(total);
        detail::gz_read_exact(f.get(), out.data.data(), total, path, "data");
        return out;
    }
    // A compressed file's size bounds nothing: grow the buffer only as data arrives (16 MiB, then
    // doubling), so that a 50-byte gzip file claiming gigabytes fails at its end instead of
    // allocating them first (found by fuzz/fuzz_idx.cpp).
    constexpr std::size_t kFirstChunk = std::size_t{1} << 24;
    std::size_t done = 0;
    while (done < total) {
        const std::size_t next = std::min(total, std::max(kFirstChunk, 2 * done));
        out.data.resize(next);
        detail::gz_read_exact(f.get(), out.data.data() + done, next - done, path, "data", done, total);
        done = next;
    }
    return out;
}

/// An IDX image file and, optionally, its label file (empty path: unlabelled).
inline std::shared_ptr<InMemoryDataset> load_idx(const std::string& images_path, const std::string& labels_path = {},
                                                 std::string name = {}) {
    IdxArray images = read_idx(images_path, 3);
    std::vector<int> labels;
    int num_classes = 0;
    if (!labels_path.empty()) {
        IdxArray lab = read_idx(labels_path, 1);
        LCMAE_CHECK(lab.dims[0] == images.dims[0], "label file " << labels_path << " has " << lab.dims[0]
                                                                 << " labels but image file " << images_path
                                                                 << " has " << images.dims[0] << " images");
        labels.assign(lab.data.begin(), lab.data.end());
        for (int l : labels) num_classes = std::max(num_classes, l + 1);
    }
    if (name.empty()) name = images_path;
    return std::make_shared<InMemoryDataset>(std::move(name), std::move(images.data), images.dims[0],
                                             static_cast<int>(images.dims[1]), static_cast<int>(images.dims[2]), 1,
                                             std::move(labels), num_classes);
}

/// Where Debian's dataset-fashion-mnist package installs the files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

/// Fashion-MNIST (or MNIST: same file names) from `dir`: the 60k training or 10k test split.
/// Files may be gzipped ("...-ubyte.gz") or plain ("...-ubyte"); the gzipped name is tried first.
inline std::shared_ptr<InMemoryDataset> load_fashion_mnist(bool train = true, const std::string& dir = kFashionMnistDir) {
    const std::string prefix = dir + "/" + (train ? "train" : "t10k");
    auto pick = [](const std::string& base) {
        return std::filesystem::exists(base + ".gz") ? base + ".gz" : base;
    };
    return load_idx(pick(prefix + "-images-idx3-ubyte"), pick(prefix + "-labels-idx1-ubyte"),
                    std::string("fashion-mnist ") + (train ? "train" : "test"));
}

}  // namespace lcmae::data
