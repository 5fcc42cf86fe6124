// lcmae/data/image_folder.hpp - images decoded by OpenCV from a folder tree.
//
// Labelled layout is torchvision's ImageFolder: root/<class>/<...>/<image>, classes sorted by name
// and numbered from 0, files sorted by path, so indices match PyTorch for the same tree. The flat
// layout (no labels, label -1) takes every image under root, for pre-training. Files are decoded on
// demand by the loader's workers; only paths are held in memory.
#pragma once

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "lcmae/core/error.hpp"
#include "lcmae/data/dataset.hpp"

namespace lcmae::data {

enum class FolderLayout {
    Classes,  ///< root/<class>/<image>: labelled, classes sorted by name
    Flat,     ///< every image under root, unlabelled
    Auto      ///< Classes when root holds sub-folders, otherwise Flat
};

struct ImageFolderOptions {
    FolderLayout layout = FolderLayout::Auto;
    /// Channels the dataset hands out: 3 (RGB) or 1 (gray). Decoding straight to the wanted
    /// channel count is cheaper than converting later.
    int channels = 3;
    /// false: a file that cannot be decoded is an error naming it. true: it is replaced by the next
    /// decodable image (in index order, so still deterministic), with one warning per file on
    /// stderr and a count in skipped().
    bool skip_corrupt = false;
    /// Decode every file once when opening, dropping (skip_corrupt) or rejecting corrupt ones up
    /// front. Slow for large sets; off by default.
    bool verify = false;
};

/// True for the file extensions OpenCV's imgcodecs decode (case-insensitive).
inline bool is_image_file(const std::filesystem::path& p) {
    std::string ext = p.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    static const std::set<std::string> known = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp",
                                                ".pgm", ".ppm", ".pbm", ".pnm", ".jp2", ".exr", ".hdr"};
    return known.count(ext) != 0;
}

/// (height, width) from a JPEG's frame header, without decoding; nullopt when `bytes` is not a
/// JPEG or the header is not found. Reads the SOFn segment (ITU T.81, B.2.2).
inline std::optional<std::pair<int, int>> jpeg_size(const std::vector<std::uint8_t>& bytes) {
    const std::size_t n = bytes.size();
    if (n < 4 || bytes[0] != 0xFF || bytes[1] != 0xD8) return std::nullopt;
    std::size_t p = 2;
    while (p + 4 <= n) {
        if (bytes[p] != 0xFF) return std::nullopt;
        const std::uint8_t m = bytes[p + 1];
        if (m == 0xFF) {  // fill byte
            ++p;
            continue;
        }
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {  // markers without a length
            p += 2;
            continue;
        }
        const std::size_t len = (std::size_t{bytes[p + 2]} << 8) | bytes[p + 3];
        const bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
        if (sof) {
            if (p + 9 > n) return std::nullopt;
            const int h = (bytes[p + 5] << 8) | bytes[p + 6], w = (bytes[p + 7] << 8) | bytes[p + 8];
            if (h <= 0 || w <= 0) return std::nullopt;
            return std::pair{h, w};
        }
        if (m == 0xDA || m == 0xD9 || len < 2) return std::nullopt;  // scan data before a frame header
        p += 2 + len;
    }
    return std::nullopt;
}

/// True when `bytes` hold a complete JPEG: after the first start-of-scan (FF DA) segment there is
/// an end-of-image marker (FF D9). Entropy-coded data never contains FF D9 (a data byte FF is
/// stuffed as FF 00), so a file cut inside the scan has none; an EXIF thumbnail's FF D9 sits
/// before the main scan and does not count. Bytes that are not a JPEG return true.
inline bool jpeg_complete(const std::vector<std::uint8_t>& bytes) {
    const std::size_t n = bytes.size();
    if (n < 4 || bytes[0] != 0xFF || bytes[1] != 0xD8) return true;
    std::size_t p = 2;
    while (p + 4 <= n) {
        if (bytes[p] != 0xFF) return false;  // marker structure broken
        const std::uint8_t m = bytes[p + 1];
        if (m == 0xFF) {
            ++p;
            continue;
        }
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {
            p += 2;
            continue;
        }
        if (m == 0xD9) return true;
        const std::size_t len = (std::size_t{bytes[p + 2]} << 8) | bytes[p + 3];
        if (len < 2) return false;
        p += 2 + len;
        if (m == 0xDA) {  // start of scan: an end marker must follow somewhere in the rest
            for (std::size_t q = p; q + 1 < n; ++q)
                if (bytes[q] == 0xFF && bytes[q + 1] == 0xD9) return true;
            return false;
        }
    }
    return false;  // ended inside the headers
}

class ImageFolder : public Dataset {
public:
    explicit ImageFolder(const std::string& root, ImageFolderOptions options = {}) : root_(root), opt_(options) {
        namespace fs = std::filesystem;
        LCMAE_CHECK(opt_.channels == 1 || opt_.channels == 3,
                    "image folder " << root << ": channels must be 1 or 3, got " << opt_.channels);
        LCMAE_CHECK(fs::is_directory(root), "image folder " << root << " does not exist or is not a directory");

        std::vector<fs::path> class_dirs;
        bool has_top_level_images = false;
        for (const auto& e : fs::directory_iterator(root)) {
            if (e.is_directory()) class_dirs.push_back(e.path());
            else if (e.is_regular_file() && is_image_file(e.path())) has_top_level_images = true;
        }
        FolderLayout layout = opt_.layout;
        if (layout == FolderLayout::Auto) layout = class_dirs.empty() ? FolderLayout::Flat : FolderLayout::Classes;
        if (layout == FolderLayout::Classes) {
            LCMAE_CHECK(!class_dirs.empty(), "image folder " << root << " has no class sub-folders (expected "
                                                             << "root/<class>/<image>; use the flat layout for "
                                                             << "unlabelled images)");
            if (has_top_level_images)
                std::fprintf(stderr, "lcmae warning: image folder %s: images directly under the root are ignored "
                                     "in the class layout\n", root.c_str());
            std::sort(class_dirs.begin(), class_dirs.end());
            for (const auto& dir : class_dirs) {
                const int label = static_cast<int>(classes_.size());
                classes_.push_back(dir.filename().string());
                for (auto& p : collect(dir)) {
                    files_.push_back(std::move(p));
                    labels_.push_back(label);
                }
            }
        } else {
            files_ = collect(root);
        }
        LCMAE_CHECK(!files_.empty(), "image folder " << root << " contains no image files (looked for png, jpg, "
                                                     << "jpeg, bmp, tif, tiff, webp, pgm, ppm, ...)");
        if (opt_.verify) verify_all();
    }

    std::size_t size() const override { return files_.size(); }
    int channels() const override { return opt_.channels; }
    int label(std::size_t i) const override { return labels_.empty() ? -1 : labels_.at(i); }
    int num_classes() const override { return static_cast<int>(classes_.size()); }
    std::string name() const override { return root_; }
    std::string describe(std::size_t i) const override { return files_.at(i); }
    std::size_t skipped() const override { return skipped_.load(); }
    const std::vector<std::string>& classes() const { return classes_; }
    const std::string& path(std::size_t i) const { return files_.at(i); }

    cv::Mat image(std::size_t i) const override { return image(i, 0); }

    /// JPEGs are decoded at 1/2, 1/4 or 1/8 scale by libjpeg's DCT scaling (several times faster)
    /// when the shorter side stays at least min_side; other formats are decoded in full.
    cv::Mat image(std::size_t i, int min_side) const override {
        LCMAE_CHECK(i < files_.size(), "image folder " << root_ << ": index " << i << " out of range (size "
                                                       << files_.size() << ")");
        std::string why;
        cv::Mat img = decode(files_[i], min_side, &why);
        if (!img.empty()) return img;
        LCMAE_CHECK(opt_.skip_corrupt, "cannot decode image file " << files_[i] << " (" << why << "; set "
                                                                   << "ImageFolderOptions::skip_corrupt to skip it)");
        note_corrupt(files_[i], why);
        // Deterministic stand-in: the next decodable file in index order.
        for (std::size_t k = 1; k < files_.size(); ++k) {
            const std::string& alt = files_[(i + k) % files_.size()];
            img = decode(alt, min_side, &why);
            if (!img.empty()) return img;
            note_corrupt(alt, why);
        }
        LCMAE_FAIL("image folder " << root_ << ": no file can be decoded");
    }

private:
    static std::vector<std::string> collect(const std::filesystem::path& dir) {
        namespace fs = std::filesystem;
        std::vector<std::string> out;
        for (const auto& e : fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink))
            if (e.is_regular_file() && is_image_file(e.path())) out.push_back(e.path().string());
        std::sort(out.begin(), out.end());
        return out;
    }

    /// Decoded as RGB (or gray) 8-bit; empty when the file cannot be read or decoded, with the
    /// reason in *why ("permission denied", "truncated JPEG: no end marker FF D9", ...).
    cv::Mat decode(const std::string& path, int min_side = 0, std::string* why = nullptr) const {
        const auto fail = [&](std::string reason) {
            if (why) *why = std::move(reason);
            return cv::Mat();
        };
        std::vector<std::uint8_t> bytes;
        {
            errno = 0;
            std::ifstream in(path, std::ios::binary | std::ios::ate);
            const int open_errno = errno;
            if (!in) return fail("cannot be opened: " + detail::open_failure(open_errno));
            const auto end = in.tellg();
            if (end < 0) return fail("cannot be read");
            const auto size = static_cast<std::size_t>(end);
            if (size == 0) return fail("empty file");
            bytes.resize(size);
            in.seekg(0);
            if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size)))
                return fail("read failed");
        }
        // libjpeg decodes a JPEG cut short with only a warning, filling the rest with gray: treat
        // the missing end marker as corrupt input like any other.
        if (!jpeg_complete(bytes)) return fail("truncated JPEG: no end marker FF D9 after the image data");
        const bool gray = opt_.channels == 1;
        int flags = gray ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR;
        if (min_side > 0) {
            if (const auto hw = jpeg_size(bytes)) {
                const int shorter = std::min(hw->first, hw->second);
                if (shorter >= 8 * min_side) flags = gray ? cv::IMREAD_REDUCED_GRAYSCALE_8 : cv::IMREAD_REDUCED_COLOR_8;
                else if (shorter >= 4 * min_side) flags = gray ? cv::IMREAD_REDUCED_GRAYSCALE_4 : cv::IMREAD_REDUCED_COLOR_4;
                else if (shorter >= 2 * min_side) flags = gray ? cv::IMREAD_REDUCED_GRAYSCALE_2 : cv::IMREAD_REDUCED_COLOR_2;
            }
        }
        cv::Mat img;
        try {
            img = cv::imdecode(bytes, flags);
        } catch (const cv::Exception&) {
            return fail("corrupt or not an image (the decoder threw)");
        }
        if (img.empty()) return fail("corrupt or not an image");
        if (img.depth() != CV_8U) img.convertTo(img, CV_8U);  // 16-bit png/tiff: scale is rare, keep it simple
        if (opt_.channels == 3) cv::cvtColor(img, img, cv::COLOR_BGR2RGB);
        return img;
    }

    void note_corrupt(const std::string& path, const std::string& why) const {
        std::lock_guard<std::mutex> lock(mutex_);
        if (reported_.insert(path).second) {
            ++skipped_;
            std::fprintf(stderr, "lcmae warning: skipping image file %s: cannot be decoded (%s)\n", path.c_str(),
                         why.c_str());
        }
    }

    void verify_all() {
        std::vector<std::string> files;
        std::vector<int> labels;
        for (std::size_t i = 0; i < files_.size(); ++i) {
            std::string why;
            if (!decode(files_[i], 0, &why).empty()) {
                files.push_back(files_[i]);
                if (!labels_.empty()) labels.push_back(labels_[i]);
                continue;
            }
            LCMAE_CHECK(opt_.skip_corrupt, "cannot decode image file " << files_[i] << " (" << why << ")");
            note_corrupt(files_[i], why);
        }
        if (skipped_ > 0)
            std::fprintf(stderr, "lcmae warning: image folder %s: dropped %zu corrupt files, %zu remain\n",
                         root_.c_str(), skipped_.load(), files.size());
        LCMAE_CHECK(!files.empty(), "image folder " << root_ << ": no file can be decoded");
        files_ = std::move(files);
        labels_ = std::move(labels);
    }

    std::string root_;
    ImageFolderOptions opt_;
    std::vector<std::string> files_;
    std::vector<int> labels_;
    std::vector<std::string> classes_;
    mutable std::mutex mutex_;
    mutable std::set<std::string> reported_;
    mutable std::atomic<std::size_t> skipped_{0};
};

}  // namespace lcmae::data
