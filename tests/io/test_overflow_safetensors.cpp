// Regression tests for issue 10 (reliability): safetensors headers whose sizes overflow, whose
// offsets lie outside the data or overlap, and a file that cannot be read for lack of permission.
// Each gives an lcmae::Error naming the file and the tensor, never a std::length_error or a crash.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "lcmae/io/safetensors.hpp"

#include "io/test_util.hpp"

using namespace lcmae;
using namespace lcmae::io;
namespace fs = std::filesystem;
using lcmae::test::TempDir;
using lcmae::test::throws_with;

namespace {
fs::path write_st(const TempDir& dir, const std::string& name, const std::string& header, std::size_t data_bytes) {
    const fs::path p = dir.path / name;
    std::ofstream os(p, std::ios::binary);
    const std::uint64_t n = header.size();
    os.write(reinterpret_cast<const char*>(&n), 8);
    os << header << std::string(data_bytes, '\0');
    return p;
}
// Opens the file and reads every tensor, as a loader would.
void open_and_read(const fs::path& p) {
    const SafetensorsFile f(p);
    for (const auto& t : f.tensors()) (void)f.read<float>(t.name, true);
}
}  // namespace

TEST_CASE("safetensors overflow: a shape whose byte count overflows int64 is an Error naming file and tensor") {
    TempDir dir;
    // 2^62 F64 elements: the element count fits in int64, the byte count (2^65) wraps to 0, which
    // matched data_offsets [0, 0] before the fix; reading then threw std::length_error.
    CHECK(throws_with([&] { open_and_read(write_st(dir, "wrap.st",
                                R"({"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}})", 0)); },
                      "wrap.st", "'w'", "4611686018427387904", "overflows int64"));
    // 2^61 x 3 F32: count fits, bytes do not.
    CHECK(throws_with([&] { open_and_read(write_st(dir, "wrap2.st",
                                R"({"w":{"dtype":"F32","shape":[2305843009213693952,3],"data_offsets":[0,0]}})", 0)); },
                      "wrap2.st", "'w'", "overflows int64"));
    // The element count itself overflows int64 (2^32 x 2^32).
    CHECK(throws_with([&] { open_and_read(write_st(dir, "numel.st",
                                R"({"w":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0)); },
                      "numel.st", "'w'", "element count overflows int64"));
    // A zero dim makes the count 0 whatever the others are: that is a valid empty tensor.
    const SafetensorsFile ok(write_st(dir, "zero.st",
                                      R"({"w":{"dtype":"F32","shape":[0,9223372036854775807],"data_offsets":[0,0]}})", 0));
    CHECK(ok.info("w").numel() == 0);
}

TEST_CASE("safetensors overflow: offsets beyond the data, negative, or overlapping") {
    TempDir dir;
    CHECK(throws_with([&] { open_and_read(write_st(dir, "far.st",
                                R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[9223372036854775803,9223372036854775807]}})", 8)); },
                      "far.st", "'w'", "out of range", "8 bytes"));
    CHECK(throws_with([&] { open_and_read(write_st(dir, "neg.st",
                                R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[-4,0]}})", 8)); },
                      "neg.st", "'w'", "invalid data_offsets [-4, 0)"));
    CHECK(throws_with([&] { open_and_read(write_st(dir, "negdim.st",
                                R"({"w":{"dtype":"U8","shape":[-2,-2],"data_offsets":[0,4]}})", 8)); },
                      "negdim.st", "'w'", "[-2, -2]", "non-negative"));
    CHECK(throws_with([&] { open_and_read(write_st(dir, "overlap.st",
                                R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                                R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})", 8)); },
                      "overlap.st", "overlaps"));
}

TEST_CASE("safetensors: an unreadable file says permission denied") {
    TempDir dir;
    const fs::path p = write_st(dir, "locked.st", R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 1);
    fs::permissions(p, fs::perms::none);
    if (::access(p.c_str(), R_OK) == 0) {
        MESSAGE("skipped: this user can read a file with mode 000 (root ignores permissions)");
        return;
    }
    CHECK(throws_with([&] { SafetensorsFile f(p); }, "locked.st", "ermission denied"));
}
