// fuzz/fuzz_safetensors.cpp - SafetensorsFile on an arbitrary in-memory image; every tensor the
// header validates is then converted to float and double (integer dtypes included), so that a
// header whose offsets or shapes slip past validation reads out of bounds under ASan.
#include <span>
#include <vector>

#include "fuzz_common.hpp"
#include "lcmae/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    lcmae_fuzz::expect_value_or_error([&] {
        const lcmae::io::SafetensorsFile file(std::span<const unsigned char>(data, size), "fuzz input");
        for (const auto& t : file.tensors()) {
            std::vector<float> f(t.numel());
            file.read_into(t, f.data(), f.size(), /*allow_integer=*/true);
            std::vector<double> d(t.numel());
            file.read_into(t, d.data(), d.size(), /*allow_integer=*/true);
            (void)file.info(t.name);
        }
        for (const auto& [k, v] : file.metadata()) (void)k.size(), (void)v.size();
    });
    return 0;
}
