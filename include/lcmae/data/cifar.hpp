// lcmae/data/cifar.hpp - CIFAR-10 and CIFAR-100 in their binary format.
//
// Format (cs.toronto.edu/~kriz/cifar.html): fixed-size records; CIFAR-10 = 1 label byte + 3072
// pixel bytes, CIFAR-100 = coarse label byte + fine label byte + 3072 pixel bytes. Pixels are three
// 32x32 planes R, G, B; we store HWC RGB like every other dataset here. Fine labels are used for
// CIFAR-100.
#pragma once

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "lcmae/core/error.hpp"
#include "lcmae/data/dataset.hpp"

namespace lcmae::data {

enum class CifarVariant { Cifar10, Cifar100 };

/// Reads one or more CIFAR binary batch files into one dataset.
inline std::shared_ptr<InMemoryDataset> load_cifar(const std::vector<std::string>& files, CifarVariant variant,
                                                   std::string name = {}) {
    constexpr std::size_t kPixels = 32 * 32 * 3;
    const std::size_t label_bytes = variant == CifarVariant::Cifar10 ? 1 : 2;
    const std::size_t record = label_bytes + kPixels;
    const int classes = variant == CifarVariant::Cifar10 ? 10 : 100;
    LCMAE_CHECK(!files.empty(), "load_cifar: no batch files given");

    std::vector<std::uint8_t> pixels;
    std::vector<int> labels;
    std::vector<std::uint8_t> buf(record);
    for (const auto& path : files) {
        LCMAE_CHECK(std::filesystem::exists(path), "CIFAR batch file " << path << " does not exist");
        const auto bytes = std::filesystem::file_size(path);
        LCMAE_CHECK(bytes > 0 && bytes % record == 0,
                    "CIFAR batch file " << path << " has " << bytes << " bytes, not a whole number of "
                                        << record << "-byte records (truncated, or "
                                        << (variant == CifarVariant::Cifar10 ? "a CIFAR-100" : "a CIFAR-10")
                                        << " file?)");
        errno = 0;
        std::ifstream in(path, std::ios::binary);
        const int open_errno = errno;
        LCMAE_CHECK(in, "CIFAR batch file " << path << " cannot be opened: " << detail::open_failure(open_errno));
        const std::size_t n = bytes / record;
        // The pixel total is bounded by the file sizes, but check the products anyway.
        std::size_t more = 0, total = 0;
        LCMAE_CHECK(detail::checked_mul(n, kPixels, more) && !__builtin_add_overflow(pixels.size(), more, &total),
                    "CIFAR batch file " << path << ": " << n << " records overflow a 64-bit byte count");
        pixels.reserve(total);
        labels.reserve(labels.size() + n);
        for (std::size_t r = 0; r < n; ++r) {
            in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(record));
            LCMAE_CHECK(in, "CIFAR batch file " << path << ": read failed at record " << r);
            const int label = buf[label_bytes - 1];
            LCMAE_CHECK(label < classes, "CIFAR batch file " << path << ": record " << r << " has label " << label
                                                             << ", expected below " << classes);
            labels.push_back(label);
            const std::uint8_t* planes = buf.data() + label_bytes;
            for (int p = 0; p < 32 * 32; ++p)
                for (int c = 0; c < 3; ++c) pixels.push_back(planes[c * 32 * 32 + p]);
        }
    }
    const std::size_t count = labels.size();
    if (name.empty()) name = files.front();
    return std::make_shared<InMemoryDataset>(std::move(name), std::move(pixels), count, 32, 32, 3, std::move(labels),
                                             classes);
}

/// The standard file names under the extracted folder (cifar-10-batches-bin / cifar-100-binary).
inline std::shared_ptr<InMemoryDataset> load_cifar10(const std::string& dir, bool train = true) {
    std::vector<std::string> files;
    if (train)
        for (int b = 1; b <= 5; ++b) files.push_back(dir + "/data_batch_" + std::to_string(b) + ".bin");
    else
        files.push_back(dir + "/test_batch.bin");
    return load_cifar(files, CifarVariant::Cifar10, std::string("cifar-10 ") + (train ? "train" : "test"));
}
inline std::shared_ptr<InMemoryDataset> load_cifar100(const std::string& dir, bool train = true) {
    return load_cifar({dir + (train ? "/train.bin" : "/test.bin")}, CifarVariant::Cifar100,
                      std::string("cifar-100 ") + (train ? "train" : "test"));
}

}  // namespace lcmae::data
