// Tests of the strict JSON reader/writer and the safetensors reader/writer: a file written by
// Python's safetensors, round trips, every corruption case, and atomic writes.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <csignal>
#include <sys/resource.h>
#include <unistd.h>

#include "lcmae/io/json.hpp"
#include "lcmae/io/safetensors.hpp"

#include "io/test_util.hpp"

using namespace lcmae;
using namespace lcmae::io;
namespace fs = std::filesystem;
using lcmae::test::TempDir;
using lcmae::test::throws_with;

TEST_CASE("json: objects, arrays, strings with escapes, integers") {
    const auto v = json::parse(R"( {"a": [1, -2, 0, 9223372036854775807, -9223372036854775808],
        "s": "q\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00", "o": {}, "e": []}  )");
    const auto& a = v.find("a")->items();
    CHECK(a.size() == 5);
    CHECK(a[1].as_integer() == -2);
    CHECK(a[3].as_integer() == INT64_MAX);
    CHECK(a[4].as_integer() == INT64_MIN);
    CHECK(v.find("s")->as_string() == "q\"\\/\b\f\n\r\t\xC3\xA9\xF0\x9F\x98\x80");
    CHECK(v.find("o")->members().empty());
    CHECK(v.find("missing") == nullptr);
    // dump and re-parse give the same value
    const std::string d = json::dump(v);
    CHECK(json::dump(json::parse(d)) == d);
    CHECK(json::dump(json::Value::string(std::string("x\x01y\"", 4))) == "\"x\\u0001y\\\"\"");
}

TEST_CASE("json: malformed input is rejected with a clear error") {
    for (const char* bad : {"", "{", "{\"a\":1,}", "[1,]", "{\"a\" 1}", "{a:1}", "[1 2]", "{\"a\":1}x", "01",
                            "1.5", "1e3", "true", "null", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"",
                            "\"\\udc00\"", "{\"a\":1,\"a\":2}", "9223372036854775808", "-", "\"a\nb\""}) {
        CAPTURE(bad);
        CHECK(throws_with([&] { json::parse(bad, "the test header"); }, "malformed JSON in the test header"));
    }
    std::string deep(100, '[');
    deep += std::string(100, ']');
    CHECK(throws_with([&] { json::parse(deep); }, "nesting"));
}

TEST_CASE("safetensors: a file written by Python's safetensors reads correctly") {
    const fs::path p = fs::path(LCMAE_TEST_DATA_DIR) / "io/data/python_written.safetensors";
    const SafetensorsFile f(p);
    CHECK(f.metadata().at("creator") == "safetensors-python");
    CHECK(f.metadata().at("k") == "v\"\n");
    CHECK(f.tensors().size() == 10);
    const auto& w = f.info("blocks.0.attn.qkv.weight");
    CHECK(w.dtype == Dtype::F32);
    CHECK(w.shape == Shape{2, 3});
    CHECK(f.read<float>("blocks.0.attn.qkv.weight") == std::vector<float>{-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f});
    CHECK(f.read<double>("f64") == std::vector<double>{1.5, -2.25, 1e-300});
    CHECK(f.read<float>("f64")[1] == -2.25f);
    CHECK(f.read<std::int64_t>("i64") == std::vector<std::int64_t>{1, -2, 3, std::int64_t(1) << 40});
    CHECK(f.read<std::int32_t>("i32") == std::vector<std::int32_t>{7, -8, 9, 10});
    CHECK(f.read<double>("u8", true) == std::vector<double>{0, 1, 254, 255, 128});
    const auto h = f.read<float>("f16");
    CHECK(h[0] == 1.0f);
    CHECK(h[1] == -0.5f);
    CHECK(h[2] == 65504.0f);
    CHECK(h[3] == doctest::Approx(5.960464477539063e-08));  // a subnormal half
    const auto b = f.read<float>("bf16");
    CHECK(b[0] == 1.0f);
    CHECK(b[1] == -3.0f);
    CHECK(b[2] == 0.15625f);
    CHECK(double(b[3]) == doctest::Approx(1.0002555517425873e+30));
    CHECK(f.info("scalar").shape.rank() == 0);
    CHECK(f.read<float>("scalar") == std::vector<float>{3.25f});
    CHECK(f.read<float>("empty").empty());
    CHECK(f.info("empty").shape == Shape{0, 4});
    CHECK(f.read<float>("name with \"quotes\" and \xC3\xA9") == std::vector<float>{42.0f});
    // integer tensors do not silently convert to float unless asked
    CHECK(throws_with([&] { f.read<float>("i64"); }, "'i64'"));
    CHECK(throws_with([&] { f.info("nope"); }, "python_written.safetensors"));
}

TEST_CASE_TEMPLATE("safetensors: write then read round trip", T, float, double) {
    TempDir dir;
    const fs::path p = dir.path / "rt.safetensors";
    std::vector<T> a(6), c(1, T(-7));
    for (int i = 0; i < 6; ++i) a[i] = T(0.1) * T(i) - T(0.3);
    std::vector<std::int64_t> ints{1, -5, 1ll << 50};
    SafetensorsWriter w;
    w.add("z.second", Shape{2, 3}, a.data());
    w.add("a.first", Shape{}, c.data());
    w.add("ints", Shape{3}, ints.data());
    w.add_as("as_f64", Dtype::F64, Shape{6}, a.data());
    w.add_as("as_f32", Dtype::F32, Shape{6}, a.data());
    w.set_metadata("epoch", "3");
    w.set_metadata("quote", "a\"b\\c\n");
    w.write(p);
    CHECK(w.header().size() % 8 == 0);
    const SafetensorsFile f(p);
    CHECK(f.tensors()[0].name == "z.second");  // order kept
    CHECK(f.read<T>("z.second") == a);
    CHECK(f.read<T>("a.first") == c);
    CHECK(f.read<std::int64_t>("ints") == ints);
    CHECK(f.info("as_f64").dtype == Dtype::F64);
    CHECK(f.info("as_f32").dtype == Dtype::F32);
    const auto back64 = f.read<double>("as_f64");
    for (int i = 0; i < 6; ++i) CHECK(back64[i] == double(a[i]));
    CHECK(f.metadata().at("epoch") == "3");
    CHECK(f.metadata().at("quote") == "a\"b\\c\n");
    // the writer refuses duplicates and the reserved name
    SafetensorsWriter w2;
    w2.add("x", Shape{1}, a.data());
    CHECK_THROWS_AS(w2.add("x", Shape{1}, a.data()), Error);
    CHECK_THROWS_AS(w2.add("__metadata__", Shape{1}, a.data()), Error);
}

namespace {
// A file from a header text and a data section of `data_bytes` bytes.
fs::path craft(const TempDir& dir, const std::string& name, const std::string& header, std::size_t data_bytes,
               std::int64_t header_len_override = -1) {
    const fs::path p = dir.path / name;
    std::ofstream os(p, std::ios::binary);
    const std::uint64_t n = header_len_override >= 0 ? std::uint64_t(header_len_override) : header.size();
    os.write(reinterpret_cast<const char*>(&n), 8);
    os << header;
    os << std::string(data_bytes, '\0');
    return p;
}
}  // namespace

TEST_CASE("safetensors: every corruption gives an Error naming the file and the tensor") {
    TempDir dir;
    const std::string good = R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
    {
        const SafetensorsFile ok(craft(dir, "good.st", good, 16));
        CHECK(ok.read<float>("w").size() == 4);
    }
    // truncated: fewer than 8 bytes
    {
        const fs::path p = dir.path / "tiny.st";
        std::ofstream(p) << "abc";
        CHECK(throws_with([&] { SafetensorsFile f(p); }, "tiny.st", "truncated"));
    }
    // truncated data: the tensor runs past the end
    CHECK(throws_with([&] { SafetensorsFile f(craft(dir, "short.st", good, 12)); }, "short.st", "'w'", "out of range"));
    // bad header length: larger than the file, and absurdly large
    CHECK(throws_with([&] { SafetensorsFile f(craft(dir, "hl.st", good, 16, 5000)); }, "hl.st", "header length"));
    CHECK(throws_with([&] { SafetensorsFile f(craft(dir, "hl2.st", good, 16, std::int64_t(1) << 40)); }, "hl2.st",
                      "header length"));
    // bad JSON
    CHECK(throws_with([&] { SafetensorsFile f(craft(dir, "json.st", R"({"w":{"dtype":"F32",)", 16)); }, "json.st",
                      "malformed JSON"));
    CHECK(throws_with([&] { SafetensorsFile f(craft(dir, "arr.st", "[1,2]", 0)); }, "arr.st", "expected an object"));
    // bad dtype
    CHECK(throws_with(
        [&] { SafetensorsFile f(craft(dir, "dt.st", R"({"w":{"dtype":"F8","shape":[2],"data_offsets":[0,2]}})", 2)); },
        "dt.st", "'w'", "unsupported dtype 'F8'"));
    // offsets reversed / out of range
    CHECK(throws_with(
        [&] { SafetensorsFile f(craft(dir, "rev.st", R"({"w":{"dtype":"U8","shape":[2],"data_offsets":[4,2]}})", 8)); },
        "rev.st", "'w'", "invalid data_offsets"));
    CHECK(throws_with(
        [&] { SafetensorsFile f(craft(dir, "oor.st", R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[6,10]}})", 8)); },
        "oor.st", "'w'", "out of range"));
    // shape * dtype size != byte span
    CHECK(throws_with(
        [&] { SafetensorsFile f(craft(dir, "sz.st", R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", 16)); },
        "sz.st", "'w'", "(3,)", "needs 12 bytes"));
    // overlap
    CHECK(throws_with(
        [&] {
            SafetensorsFile f(craft(dir, "ov.st",
                                    R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                    R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                    12));
        },
        "ov.st", "overlaps"));
    // missing fields, negative dims, unknown fields, non-string metadata
    CHECK(throws_with([&] { SafetensorsFile f(craft(dir, "mf.st", R"({"w":{"dtype":"F32","shape":[0]}})", 0)); }, "mf.st",
                      "'w'", "data_offsets"));
    CHECK(throws_with(
        [&] { SafetensorsFile f(craft(dir, "neg.st", R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", 0)); },
        "neg.st", "'w'", "non-negative"));
    CHECK(throws_with(
        [&] {
            SafetensorsFile f(
                craft(dir, "uk.st", R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[0,0],"x":1}})", 0));
        },
        "uk.st", "unknown field 'x'"));
    CHECK(throws_with([&] { SafetensorsFile f(craft(dir, "md.st", R"({"__metadata__":{"a":1}})", 0)); }, "md.st",
                      "metadata value 'a'"));
    // a missing file
    CHECK(throws_with([&] { SafetensorsFile f(dir.path / "none.st"); }, "none.st", "cannot open"));
}

namespace {
std::size_t count_entries(const fs::path& dir) {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
    return n;
}
}  // namespace

TEST_CASE("safetensors: atomic writes leave no partial file") {
    TempDir dir;
    std::vector<float> big(1 << 16, 1.0f);
    const fs::path dest = dir.path / "ckpt.safetensors";
    SafetensorsWriter w_old;
    w_old.add("old", Shape{4}, big.data());
    w_old.write(dest);
    CHECK(count_entries(dir.path) == 1);

    // 1. a directory that cannot be written: nothing appears, the error names the destination
    const fs::path ro = dir.path / "ro";
    fs::create_directory(ro);
    SafetensorsWriter w;
    w.add("big", Shape{std::int64_t(big.size())}, big.data());
    if (::geteuid() != 0) {
        fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
        CHECK(throws_with([&] { w.write(ro / "x.safetensors"); }, "x.safetensors"));
        fs::permissions(ro, fs::perms::owner_all);
        CHECK(count_entries(ro) == 0);
    }
    // (as root permissions do not stop writes; a parent that is a regular file does)
    CHECK(throws_with([&] { w.write(dest / "x.safetensors"); }, "x.safetensors"));
    CHECK(throws_with([&] { w.write(dir.path / "no_such_dir" / "x.safetensors"); }, "x.safetensors"));

    // 2. the write itself fails half-way (file size limit): the old file survives intact and no
    //    temporary file is left behind
    struct rlimit old_lim {};
    ::getrlimit(RLIMIT_FSIZE, &old_lim);
    const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = old_lim;
    lim.rlim_cur = 4096;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &lim) == 0);
    bool threw = false;
    try {
        w.write(dest);
    } catch (const Error& e) {
        threw = true;
        CHECK(std::string(e.what()).find("ckpt.safetensors") != std::string::npos);
    }
    ::setrlimit(RLIMIT_FSIZE, &old_lim);
    std::signal(SIGXFSZ, old_handler);
    CHECK(threw);
    const SafetensorsFile still(dest);
    CHECK(still.contains("old"));
    CHECK_FALSE(still.contains("big"));
    CHECK(count_entries(dir.path) == 2);  // ckpt.safetensors and ro/, no temporary
}
