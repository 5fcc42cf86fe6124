// fuzz/fuzz_idx.cpp - the IDX reader (MNIST / Fashion-MNIST), plain or gzip. The first input byte
// picks what runs on the rest (written to a scratch file: the reader opens files through zlib):
// mode 0 reads labels (1 dimension), mode 1 images (3 dimensions), mode 2 loads an unlabelled
// dataset (load_idx: the dimensions become an InMemoryDataset).
#include <span>

#include "fuzz_common.hpp"
#include "lcmae/data/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    static const lcmae_fuzz::ScratchFile scratch(".idx");
    const int mode = data[0] % 3;
    const std::string& path = scratch.write(std::span(data + 1, size - 1));
    lcmae_fuzz::expect_value_or_error([&] {
        if (mode == 2) {
            const auto ds = lcmae::data::load_idx(path);
            lcmae_fuzz::touch_last_image(*ds);
        } else {
            (void)lcmae::data::read_idx(path, mode == 0 ? 1 : 3);
        }
    });
    return 0;
}
