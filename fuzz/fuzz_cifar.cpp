// fuzz/fuzz_cifar.cpp - the CIFAR binary reader. The first input byte picks the variant (even:
// CIFAR-10, odd: CIFAR-100); the rest is the batch file (written to a scratch file: the reader
// opens files), loaded into an InMemoryDataset whose last image is then decoded.
#include <span>

#include "fuzz_common.hpp"
#include "lcmae/data/cifar.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    static const lcmae_fuzz::ScratchFile scratch(".bin");
    const auto variant = data[0] % 2 ? lcmae::data::CifarVariant::Cifar100 : lcmae::data::CifarVariant::Cifar10;
    const std::string& path = scratch.write(std::span(data + 1, size - 1));
    lcmae_fuzz::expect_value_or_error([&] {
        const auto ds = lcmae::data::load_cifar({path}, variant);
        lcmae_fuzz::touch_last_image(*ds);
    });
    return 0;
}
