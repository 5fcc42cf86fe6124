// fuzz/fuzz_json.cpp - lcmae::json::parse on arbitrary text. A parsed value must survive
// dump -> parse -> dump unchanged (a dump the parser rejects, or one that changes, is a finding).
#include <cstdlib>
#include <string_view>

#include "fuzz_common.hpp"
#include "lcmae/io/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    lcmae_fuzz::expect_value_or_error([&] {
        const lcmae::json::Value v = lcmae::json::parse(text, "fuzz input");
        const std::string once = lcmae::json::dump(v);
        const std::string twice = lcmae::json::dump(lcmae::json::parse(once, "fuzz input, dumped"));
        if (once != twice) std::abort();
    });
    return 0;
}
