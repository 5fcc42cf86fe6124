// Tests of the JSON reader's limits (issue 10): parsing is linear in time (a hashed duplicate-key
// check), bounded in memory (a cap on the number of values, a depth limit), and strings must be
// well-formed UTF-8 (no lone surrogates, raw or escaped), with errors naming the byte offset.
#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "lcmae/io/json.hpp"

#include "io/test_util.hpp"

using namespace lcmae;
using lcmae::test::throws_with;

namespace {
std::string many_keys(int n, bool duplicate_last) {
    std::string s = "{\"__metadata__\":{";
    for (int k = 0; k < n; ++k) {
        if (k) s += ',';
        s += "\"key" + std::to_string(k) + "\":\"v" + std::to_string(k) + "\"";
    }
    if (duplicate_last) s += ",\"key12345\":\"again\"";
    s += "}}";
    return s;
}
double seconds_to_parse(const std::string& text) {
    const auto t0 = std::chrono::steady_clock::now();
    try {
        (void)json::parse(text);
    } catch (const Error&) {
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

TEST_CASE("json limits: 100k distinct keys parse in linear time; a duplicate among them is rejected") {
    const std::string text = many_keys(100000, false);
    const double t = seconds_to_parse(text);
    CHECK(t < 2.0);
    const auto v = json::parse(text);
    const json::Value* m = v.find("__metadata__");
    REQUIRE(m != nullptr);
    CHECK(m->members().size() == 100000);
    CHECK(m->find("key99999")->as_string() == "v99999");
    CHECK(m->find("key0")->as_string() == "v0");
    CHECK(m->find("nope") == nullptr);
    // round trip keeps order
    CHECK(json::dump(v) == text);

    const std::string dup = many_keys(100000, true);
    CHECK(seconds_to_parse(dup) < 2.0);
    CHECK(throws_with([&] { json::parse(dup); }, "duplicate key \"key12345\""));
    // the error names the offset of the repeated key
    CHECK(throws_with([&] { json::parse(dup); }, "at byte " + std::to_string(dup.size() - 20)));
}

TEST_CASE("json limits: set() on a large object stays fast and still rejects duplicates") {
    json::Value o = json::Value::object();
    const auto t0 = std::chrono::steady_clock::now();
    for (int k = 0; k < 100000; ++k) o.set("k" + std::to_string(k), json::Value::integer(k));
    CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 2.0);
    CHECK(throws_with([&] { o.set("k777", json::Value::integer(0)); }, "duplicate JSON key"));
    const json::Value copy = o;  // deep copy keeps the index usable
    CHECK(copy.find("k99999")->as_integer() == 99999);
}

TEST_CASE("json limits: a huge array of zeros is refused with bounded memory") {
    CHECK(sizeof(json::Value) <= 32);
    std::string zeros = "[";
    for (int k = 0; k < 5'000'000; ++k) zeros += k ? ",0" : "0";  // 10 MB, 5M values
    zeros += ']';
    const double t = seconds_to_parse(zeros);
    CHECK(t < 5.0);
    CHECK(throws_with([&] { json::parse(zeros); }, "more than 1048576 values"));
    // a large but reasonable array still parses
    std::string ok = "[";
    for (int k = 0; k < 100000; ++k) ok += k ? ",7" : "7";
    ok += ']';
    CHECK(json::parse(ok).items().size() == 100000);
}

TEST_CASE("json limits: deep nesting is rejected") {
    for (const char open : {'[', '{'}) {
        std::string deep;
        for (int k = 0; k < 100000; ++k) deep += open == '[' ? "[" : "{\"a\":";
        CAPTURE(open);
        CHECK(throws_with([&] { json::parse(deep); }, "nesting deeper than 64 levels"));
    }
    std::string ok(60, '[');
    ok += std::string(60, ']');
    CHECK_NOTHROW(json::parse(ok));
}

TEST_CASE("json limits: invalid UTF-8 and lone surrogates are rejected with the byte offset") {
    // well-formed multi-byte characters pass through unchanged
    const std::string good = "\"a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"";
    CHECK(json::parse(good).as_string() == good.substr(1, good.size() - 2));
    struct Bad {
        std::string text;
        std::size_t offset;
    };
    for (const Bad& b : {Bad{"\"ab\x80\"", 3},                   // stray continuation byte
                         Bad{"\"\xc0\xaf\"", 1},                  // overlong '/'
                         Bad{"\"x\xe0\x80\xaf\"", 2},             // overlong 3-byte
                         Bad{"\"\xed\xa0\x80\"", 1},              // UTF-8-encoded surrogate U+D800
                         Bad{"\"\xf4\x90\x80\x80\"", 1},          // above U+10FFFF
                         Bad{"\"\xff\"", 1},                      // never valid
                         Bad{"\"abc\xe2\x82\"", 4},               // truncated by the closing quote
                         Bad{"\"\xe2\x82", 1},                    // truncated by the end
                         Bad{"{\"k\xc3\":1}", 3}}) {              // in a key
        CAPTURE(b.text);
        CHECK(throws_with([&] { json::parse(b.text, "hdr"); },
                          "malformed JSON in hdr at byte " + std::to_string(b.offset) + ": invalid UTF-8"));
    }
    CHECK(throws_with([&] { json::parse(R"("ab\udc00")"); }, "at byte 9: lone low surrogate"));
    CHECK(throws_with([&] { json::parse(R"("\ud800")"); }, "high surrogate without a following low surrogate"));
    CHECK(throws_with([&] { json::parse(R"("\ud800\u0041")"); }, "invalid low surrogate"));
    CHECK(throws_with([&] { json::parse(R"("\u12g4")"); }, "at byte 5: bad hex digit"));
    CHECK(json::parse(R"("\ud83d\ude00")").as_string() == "\xf0\x9f\x98\x80");
}

TEST_CASE("json: Dialect::Config accepts numbers and true/false; the default dialect still refuses them") {
    const auto v = json::parse(R"({"blr": 1.5e-3, "alpha": 0.25, "epochs": 3, "no-eval": true, "x": false, "m": -2E+2})", "cfg",
                               json::Dialect::Config);
    CHECK(v.find("blr")->is_number());
    CHECK(v.find("blr")->as_number() == 1.5e-3);
    CHECK(v.find("alpha")->as_number() == 0.25);
    CHECK(v.find("epochs")->is_integer());
    CHECK(v.find("epochs")->as_number() == 3.0);
    CHECK(v.find("no-eval")->as_bool());
    CHECK_FALSE(v.find("x")->as_bool());
    CHECK(v.find("m")->as_number() == -200.0);
    CHECK(json::dump(v) == R"({"blr":1.5e-3,"alpha":0.25,"epochs":3,"no-eval":true,"x":false,"m":-2E+2})");
    CHECK(throws_with([&] { json::parse(R"({"a": 1.5})"); }, "floating-point numbers are not supported"));
    CHECK(throws_with([&] { json::parse(R"({"a": true})"); }, "true/false/null are not supported"));
    CHECK(throws_with([&] { json::parse(R"({"a": null})", "cfg", json::Dialect::Config); }, "null is not supported"));
    CHECK(throws_with([&] { json::parse(R"({"a": 1.})", "cfg", json::Dialect::Config); }, "expected a digit"));
    CHECK(throws_with([&] { json::parse(R"({"a": 1e999})", "cfg", json::Dialect::Config); }, "number out of the double range"));
    CHECK(throws_with([&] { json::parse(R"({"a": tru})", "cfg", json::Dialect::Config); }, "expected true or false"));
    CHECK(sizeof(json::Value) <= 32);
}
