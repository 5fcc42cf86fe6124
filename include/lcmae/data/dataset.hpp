// lcmae/data/dataset.hpp - the interface every image source implements, and an in-memory dataset
// that IDX and CIFAR files load into.
//
// Why one small virtual interface: the loader (and later the evaluators) only need "how many",
// "pixels of i" and "label of i"; a virtual call per image is nothing next to decoding it, and it
// lets users plug in their own sources without templates spreading through the trainer.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <opencv2/core.hpp>

#include "lcmae/core/error.hpp"

namespace lcmae::data {

namespace detail {
/// Why opening `path` failed, from errno as the failed open left it: "permission denied",
/// "no such file", ... (the words a person looks for), never a bare "corrupt".
inline std::string open_failure(int err) {
    switch (err) {
        case EACCES:
        case EPERM: return "permission denied";
        case ENOENT: return "no such file";
        case EISDIR: return "is a directory";
        default: return err != 0 ? std::string(std::strerror(err)) : std::string("cannot be opened");
    }
}

/// a * b, or false when it overflows size_t (sizes computed from numbers read out of a file).
inline bool checked_mul(std::size_t a, std::size_t b, std::size_t& out) noexcept {
    return !__builtin_mul_overflow(a, b, &out);
}
}  // namespace detail

/// A random-access image source. image() and label() must be safe to call from several threads
/// at once (the loader's workers do).
class Dataset {
public:
    virtual ~Dataset() = default;

    virtual std::size_t size() const = 0;
    /// Channels of the stored images: 1 (gray) or 3 (RGB order, not OpenCV's BGR).
    virtual int channels() const = 0;
    /// Class index of image i, or -1 when the dataset has no labels.
    virtual int label(std::size_t i) const = 0;
    /// Number of classes (0 when unlabelled).
    virtual int num_classes() const = 0;
    /// Image i as 8-bit HWC with channels() channels. The result may share memory with the
    /// dataset: treat it as read-only (every transform here returns a new image).
    virtual cv::Mat image(std::size_t i) const = 0;
    /// Image i, possibly smaller than stored as long as its shorter side stays at least
    /// `min_side` (the loader asks for what its crop needs). Sources that can decode at a reduced
    /// scale cheaply (JPEG) override this; the result is still a pure function of (i, min_side).
    virtual cv::Mat image(std::size_t i, int min_side) const {
        (void)min_side;
        return image(i);
    }
    /// A short name for messages ("fashion-mnist train", the folder path).
    virtual std::string name() const = 0;
    /// Where image i comes from, for error messages: a file path, or "<file> #i".
    virtual std::string describe(std::size_t i) const { return name() + " #" + std::to_string(i); }
    /// Images replaced because they could not be decoded (only sources that can skip corrupt files
    /// count anything); the loader reports the count at the end of each epoch.
    virtual std::size_t skipped() const { return 0; }
};

/// All images of one size in one contiguous uint8 array (N, H, W, C), plus optional labels.
/// IDX (MNIST, Fashion-MNIST) and CIFAR load into this: 70k 28x28 images are 55 MB.
class InMemoryDataset : public Dataset {
public:
    InMemoryDataset(std::string name, std::vector<std::uint8_t> pixels, std::size_t count, int height,
                    int width, int channels, std::vector<int> labels = {}, int num_classes = 0)
        : name_(std::move(name)), pixels_(std::move(pixels)), count_(count), height_(height),
          width_(width), channels_(channels), labels_(std::move(labels)), num_classes_(num_classes) {
        LCMAE_CHECK(channels_ == 1 || channels_ == 3,
                    name_ << ": images must have 1 or 3 channels, got " << channels_);
        LCMAE_CHECK(height_ > 0 && width_ > 0,
                    name_ << ": image size must be positive, got " << height_ << "x" << width_);
        std::size_t total = 0;
        LCMAE_CHECK(detail::checked_mul(count_, image_bytes(), total),
                    name_ << ": " << count_ << " images of " << height_ << "x" << width_ << "x" << channels_
                          << " overflow a 64-bit byte count");
        LCMAE_CHECK(pixels_.size() == total,
                    name_ << ": " << pixels_.size() << " pixel bytes do not hold " << count_ << " images of "
                          << height_ << "x" << width_ << "x" << channels_);
        LCMAE_CHECK(labels_.empty() || labels_.size() == count_,
                    name_ << ": " << labels_.size() << " labels for " << count_ << " images");
        if (!labels_.empty() && num_classes_ == 0)
            for (int l : labels_) num_classes_ = std::max(num_classes_, l + 1);
    }

    std::size_t size() const override { return count_; }
    int channels() const override { return channels_; }
    int label(std::size_t i) const override { return labels_.empty() ? -1 : labels_.at(i); }
    int num_classes() const override { return num_classes_; }
    using Dataset::image;  // keep image(i, min_side) visible beside the override below
    cv::Mat image(std::size_t i) const override {
        LCMAE_CHECK(i < count_, name_ << ": image index " << i << " out of range (size " << count_ << ")");
        // A header over our own bytes: no copy. const_cast is safe because callers treat it as read-only.
        return cv::Mat(height_, width_, CV_8UC(channels_),
                       const_cast<std::uint8_t*>(pixels_.data() + i * image_bytes()));
    }
    std::string name() const override { return name_; }
    int height() const { return height_; }
    int width() const { return width_; }

private:
    std::size_t image_bytes() const {
        return static_cast<std::size_t>(height_) * static_cast<std::size_t>(width_) *
               static_cast<std::size_t>(channels_);
    }

    std::string name_;
    std::vector<std::uint8_t> pixels_;
    std::size_t count_;
    int height_, width_, channels_;
    std::vector<int> labels_;
    int num_classes_;
};

}  // namespace lcmae::data
