// fuzz/fuzz_common.hpp - shared by the libFuzzer targets (fuzz/fuzz_*.cpp).
//
// Contract under test: a reader answers any input with a value or with lcmae::Error. Any other
// exception escapes the target and libFuzzer reports it as a crash ("deadly signal" after
// std::terminate), as it does for sanitizer reports, timeouts and allocations above its limit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <unistd.h>

#include "lcmae/core/error.hpp"

namespace lcmae_fuzz {

/// Runs `body`, swallowing lcmae::Error (the documented answer to bad input) and nothing else.
template <class F>
void expect_value_or_error(F&& body) {
    try {
        body();
    } catch (const lcmae::Error&) {
    }
}

/// The IDX and CIFAR readers take file paths: each input is written to one file per process
/// (rewritten every run) so that the readers' own file code (gzopen, file_size) is what runs.
/// The file is removed when the process exits normally.
class ScratchFile {
public:
    explicit ScratchFile(const char* suffix) {
        const char* tmp = std::getenv("TMPDIR");
        path_ = (std::filesystem::path(tmp && *tmp ? tmp : "/tmp") /
                 ("lcmae-fuzz-" + std::to_string(::getpid()) + suffix))
                    .string();
    }
    ScratchFile(const ScratchFile&) = delete;
    ScratchFile& operator=(const ScratchFile&) = delete;
    ~ScratchFile() {
        std::error_code ec;
        std::filesystem::remove(path_, ec);
    }

    /// Replaces the file's content with `bytes`; returns its path.
    const std::string& write(std::span<const std::uint8_t> bytes) const {
        std::ofstream out(path_, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        out.close();
        if (!out) {
            std::perror(("cannot write fuzz scratch file " + path_).c_str());
            std::abort();
        }
        return path_;
    }

private:
    std::string path_;
};

/// Decodes the last image of a loaded dataset and reads every byte of it here (instrumented code,
/// not OpenCV's), so that an image header pointing past the pixels is an ASan report.
template <class Dataset>
void touch_last_image(const Dataset& ds) {
    if (ds.size() == 0) return;
    const auto m = ds.image(ds.size() - 1);
    const std::size_t bytes = m.total() * m.elemSize();
    unsigned sum = 0;
    for (std::size_t i = 0; i < bytes; ++i) sum += m.data[i];
    volatile unsigned sink = sum;
    (void)sink;
    (void)ds.label(ds.size() - 1);
}

}  // namespace lcmae_fuzz
