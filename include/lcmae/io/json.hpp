// lcmae/io/json.hpp - a small, strict JSON reader and writer for safetensors headers.
//
// Supports exactly what a safetensors header needs: objects, arrays, strings (with every JSON
// escape, \uXXXX including surrogate pairs, emitted as UTF-8) and integers (int64 range).
// Everything else - floats, true/false/null, trailing commas, duplicate keys, comments, leading
// zeros, control characters inside strings, trailing garbage - is rejected with an lcmae::Error
// that names the byte offset and what was expected. Trailing whitespace is allowed (safetensors
// pads the header with spaces to an 8-byte boundary).
//
// Dialect::Config (opt-in, for settings files such as `lcmae pretrain --config`) also accepts
// numbers with a fraction or exponent (Type::Number: a finite double plus its source text) and
// true/false (Type::Bool); null and everything else above stay errors.
//
// Objects keep their members in file order (a vector of pairs), so a header round-trips.
#pragma once

#include <cstddef>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "lcmae/core/error.hpp"

namespace lcmae::json {

/// What a parse accepts (see the file comment): Safetensors is the default.
enum class Dialect { Safetensors, Config };

/// A JSON value restricted to object / array / string / integer (and, parsed with
/// Dialect::Config, number and bool).
///
/// Compact on purpose (32 bytes): an integer or an empty string/array/object allocates nothing,
/// a non-empty string or container holds one heap block. Objects with more than a handful of
/// members keep a hash index, so find() and set() (and with them the parser's duplicate-key check)
/// take constant time instead of scanning the members.
class Value {
public:
    enum class Type : std::uint8_t { Object, Array, String, Integer, Number, Bool };
    using Member = std::pair<std::string, Value>;

    Value() : type_(Type::Object) {}
    Value(const Value& o) : type_(o.type_), int_(o.int_) {
        if (o.str_) str_ = std::make_unique<std::string>(*o.str_);
        if (o.box_) box_ = std::make_unique<Box>(*o.box_);
    }
    Value(Value&&) noexcept = default;
    Value& operator=(const Value& o) {
        if (this != &o) *this = Value(o);
        return *this;
    }
    Value& operator=(Value&&) noexcept = default;
    ~Value() = default;

    static Value object() { return Value(Type::Object); }
    static Value array() { return Value(Type::Array); }
    static Value string(std::string s) {
        Value v(Type::String);
        if (!s.empty()) v.str_ = std::make_unique<std::string>(std::move(s));
        return v;
    }
    static Value integer(std::int64_t i) {
        Value v(Type::Integer);
        v.int_ = i;
        return v;
    }
    /// A number with a fraction or exponent; `text` is how it is written (kept for dump()).
    static Value number(double x, std::string text) {
        Value v(Type::Number);
        v.int_ = std::bit_cast<std::int64_t>(x);  // the bits of the double: Value stays 32 bytes
        v.str_ = std::make_unique<std::string>(std::move(text));
        return v;
    }
    static Value boolean(bool b) {
        Value v(Type::Bool);
        v.int_ = b ? 1 : 0;
        return v;
    }

    Type type() const noexcept { return type_; }
    bool is_object() const noexcept { return type_ == Type::Object; }
    bool is_array() const noexcept { return type_ == Type::Array; }
    bool is_string() const noexcept { return type_ == Type::String; }
    bool is_integer() const noexcept { return type_ == Type::Integer; }
    /// An integer or a number with a fraction or exponent.
    bool is_number() const noexcept { return type_ == Type::Integer || type_ == Type::Number; }
    bool is_bool() const noexcept { return type_ == Type::Bool; }
    static const char* type_name(Type t) noexcept {
        switch (t) {
            case Type::Object: return "an object";
            case Type::Array: return "an array";
            case Type::String: return "a string";
            case Type::Integer: return "an integer";
            case Type::Number: return "a number";
            case Type::Bool: return "true or false";
        }
        return "?";
    }
    const char* type_name() const noexcept { return type_name(type_); }

    const std::string& as_string() const {
        LCMAE_CHECK(is_string(), "JSON value is " << type_name() << ", expected a string");
        static const std::string empty;
        return str_ ? *str_ : empty;
    }
    std::int64_t as_integer() const {
        LCMAE_CHECK(is_integer(), "JSON value is " << type_name() << ", expected an integer");
        return int_;
    }
    double as_number() const {
        LCMAE_CHECK(is_number(), "JSON value is " << type_name() << ", expected a number");
        return type_ == Type::Integer ? double(int_) : std::bit_cast<double>(int_);
    }
    bool as_bool() const {
        LCMAE_CHECK(is_bool(), "JSON value is " << type_name() << ", expected true or false");
        return int_ != 0;
    }
    /// A number as written in the text (an integer in decimal).
    std::string number_text() const {
        LCMAE_CHECK(is_number(), "JSON value is " << type_name() << ", expected a number");
        return type_ == Type::Integer ? std::to_string(int_) : *str_;
    }
    const std::vector<Value>& items() const {
        LCMAE_CHECK(is_array(), "JSON value is " << type_name() << ", expected an array");
        static const std::vector<Value> empty;
        return box_ ? box_->items : empty;
    }
    const std::vector<Member>& members() const {
        LCMAE_CHECK(is_object(), "JSON value is " << type_name() << ", expected an object");
        static const std::vector<Member> empty;
        return box_ ? box_->members : empty;
    }
    /// The member called `key`, or nullptr. Constant time on average for large objects.
    const Value* find(std::string_view key) const {
        const auto& ms = members();
        if (!box_) return nullptr;
        if (box_->index.empty()) {
            for (const auto& [k, v] : ms)
                if (k == key) return &v;
            return nullptr;
        }
        const auto [lo, hi] = box_->index.equal_range(std::hash<std::string_view>{}(key));
        for (auto it = lo; it != hi; ++it)
            if (ms[it->second].first == key) return &ms[it->second].second;
        return nullptr;
    }

    /// Appends to an array.
    Value& push(Value v) {
        LCMAE_CHECK(is_array(), "push on JSON " << type_name());
        auto& items = box().items;
        items.push_back(std::move(v));
        return items.back();
    }
    /// Adds a member to an object; a duplicate key is an error.
    Value& set(std::string key, Value v) {
        LCMAE_CHECK(is_object(), "set on JSON " << type_name());
        LCMAE_CHECK(find(key) == nullptr, "duplicate JSON key \"" << key << "\"");
        Box& b = box();
        b.members.emplace_back(std::move(key), std::move(v));
        if (!b.index.empty()) {
            b.index.emplace(std::hash<std::string_view>{}(b.members.back().first), b.members.size() - 1);
        } else if (b.members.size() > kIndexFrom) {
            b.index.reserve(b.members.size() * 2);
            for (std::size_t k = 0; k < b.members.size(); ++k)
                b.index.emplace(std::hash<std::string_view>{}(b.members[k].first), k);
        }
        return b.members.back().second;
    }

private:
    static constexpr std::size_t kIndexFrom = 8;  // objects larger than this get a hash index
    struct Box {
        std::vector<Value> items;
        std::vector<Member> members;
        std::unordered_multimap<std::size_t, std::size_t> index;  // hash(key) -> position in members
    };
    explicit Value(Type t) : type_(t) {}
    Box& box() {
        if (!box_) box_ = std::make_unique<Box>();
        return *box_;
    }
    Type type_;
    std::int64_t int_ = 0;
    std::unique_ptr<std::string> str_;
    std::unique_ptr<Box> box_;
};

namespace detail {

class Parser {
public:
    Parser(std::string_view text, std::string_view what, Dialect dialect = Dialect::Safetensors)
        : s_(text), what_(what), config_(dialect == Dialect::Config) {}

    Value parse_document() {
        skip_ws();
        Value v = parse_value(0);
        skip_ws();
        if (i_ != s_.size()) fail("unexpected trailing characters after the JSON value");
        return v;
    }

private:
    static constexpr int kMaxDepth = 64;
    // A cap on the number of values (every array element, member value and the root): with
    // 32-byte values it bounds the parse tree to a few tens of MB whatever the input (a 10 MB
    // array of zeros is 5M values). A safetensors header needs ~8 values per tensor.
    static constexpr std::size_t kMaxValues = std::size_t(1) << 20;
    std::size_t values_ = 0;

    [[noreturn]] void fail(const std::string& why) const {
        std::string near;
        for (std::size_t k = i_; k < s_.size() && k < i_ + 16; ++k) {
            const char c = s_[k];
            near += (c >= 0x20 && c < 0x7f) ? c : '?';
        }
        LCMAE_FAIL("malformed JSON in " << what_ << " at byte " << i_ << ": " << why
                                        << (i_ < s_.size() ? " (near \"" + near + "\")" : " (at end of text)"));
    }
    void skip_ws() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
    }
    char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
    void expect(char c) {
        if (i_ >= s_.size() || s_[i_] != c) fail(std::string("expected '") + c + "'");
        ++i_;
    }

    Value parse_value(int depth) {
        if (depth > kMaxDepth) fail("nesting deeper than 64 levels");
        if (i_ >= s_.size()) fail("expected a value");
        if (++values_ > kMaxValues) fail("more than " + std::to_string(kMaxValues) + " values");
        const char c = s_[i_];
        if (c == '{') return parse_object(depth);
        if (c == '[') return parse_array(depth);
        if (c == '"') return Value::string(parse_string());
        if (c == '-' || (c >= '0' && c <= '9')) return parse_integer();
        if (config_ && (c == 't' || c == 'f' || c == 'n')) {
            for (const bool b : {true, false}) {
                const std::string_view word = b ? "true" : "false";
                if (s_.substr(i_, word.size()) == word) {
                    i_ += word.size();
                    return Value::boolean(b);
                }
            }
            fail(c == 'n' ? "null is not supported" : "expected true or false");
        }
        if (c == 't' || c == 'f' || c == 'n') fail("true/false/null are not supported in a safetensors header");
        fail("expected an object, array, string or integer");
    }

    Value parse_object(int depth) {
        expect('{');
        Value obj = Value::object();
        skip_ws();
        if (peek() == '}') {
            ++i_;
            return obj;
        }
        for (;;) {
            skip_ws();
            if (peek() != '"') fail("expected a string key");
            const std::size_t key_at = i_;
            std::string key = parse_string();
            if (obj.find(key) != nullptr) {
                i_ = key_at;
                fail("duplicate key \"" + (key.size() > 64 ? key.substr(0, 64) + "..." : key) + "\"");
            }
            skip_ws();
            expect(':');
            skip_ws();
            obj.set(std::move(key), parse_value(depth + 1));
            skip_ws();
            if (peek() == ',') {
                ++i_;
                continue;
            }
            if (peek() == '}') {
                ++i_;
                return obj;
            }
            fail("expected ',' or '}' in an object");
        }
    }

    Value parse_array(int depth) {
        expect('[');
        Value arr = Value::array();
        skip_ws();
        if (peek() == ']') {
            ++i_;
            return arr;
        }
        for (;;) {
            skip_ws();
            arr.push(parse_value(depth + 1));
            skip_ws();
            if (peek() == ',') {
                ++i_;
                continue;
            }
            if (peek() == ']') {
                ++i_;
                return arr;
            }
            fail("expected ',' or ']' in an array");
        }
    }

    Value parse_integer() {
        const std::size_t start = i_;
        bool neg = false;
        if (peek() == '-') {
            neg = true;
            ++i_;
        }
        if (!(peek() >= '0' && peek() <= '9')) fail("expected a digit");
        if (peek() == '0' && i_ + 1 < s_.size() && s_[i_ + 1] >= '0' && s_[i_ + 1] <= '9')
            fail("leading zeros are not allowed");
        // accumulate as a negative number so INT64_MIN fits
        std::int64_t acc = 0;
        while (peek() >= '0' && peek() <= '9') {
            const int d = s_[i_] - '0';
            if (acc < (std::numeric_limits<std::int64_t>::min() + d) / 10) {
                i_ = start;
                fail("integer out of the 64-bit range");
            }
            acc = acc * 10 - d;
            ++i_;
        }
        if (peek() == '.' || peek() == 'e' || peek() == 'E') {
            if (!config_) fail("floating-point numbers are not supported");
            return parse_fraction(start);
        }
        if (!neg) {
            if (acc == std::numeric_limits<std::int64_t>::min()) {
                i_ = start;
                fail("integer out of the 64-bit range");
            }
            acc = -acc;
        }
        return Value::integer(acc);
    }

    /// Dialect::Config: the rest of a number after its integer part (JSON's grammar: '.' digits,
    /// then e/E, an optional sign and digits); it must be a finite double.
    Value parse_fraction(std::size_t start) {
        const auto digits = [&] {
            if (!(peek() >= '0' && peek() <= '9')) fail("expected a digit");
            while (peek() >= '0' && peek() <= '9') ++i_;
        };
        if (peek() == '.') {
            ++i_;
            digits();
        }
        if (peek() == 'e' || peek() == 'E') {
            ++i_;
            if (peek() == '+' || peek() == '-') ++i_;
            digits();
        }
        double x = 0;
        const auto [ptr, ec] = std::from_chars(s_.data() + start, s_.data() + i_, x);
        if (ec != std::errc{} || ptr != s_.data() + i_ || !std::isfinite(x)) {
            i_ = start;
            fail("number out of the double range");
        }
        return Value::number(x, std::string(s_.substr(start, i_ - start)));
    }

    unsigned hex4() {
        if (i_ + 4 > s_.size()) fail("truncated \\u escape");
        unsigned v = 0;
        for (int k = 0; k < 4; ++k) {
            const char c = s_[i_++];
            v <<= 4;
            if (c >= '0' && c <= '9') v |= unsigned(c - '0');
            else if (c >= 'a' && c <= 'f') v |= unsigned(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') v |= unsigned(c - 'A' + 10);
            else {
                --i_;
                fail("bad hex digit in a \\u escape");
            }
        }
        return v;
    }
    static void put_utf8(std::string& out, unsigned cp) {
        if (cp < 0x80) {
            out += char(cp);
        } else if (cp < 0x800) {
            out += char(0xC0 | (cp >> 6));
            out += char(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += char(0xE0 | (cp >> 12));
            out += char(0x80 | ((cp >> 6) & 0x3F));
            out += char(0x80 | (cp & 0x3F));
        } else {
            out += char(0xF0 | (cp >> 18));
            out += char(0x80 | ((cp >> 12) & 0x3F));
            out += char(0x80 | ((cp >> 6) & 0x3F));
            out += char(0x80 | (cp & 0x3F));
        }
    }

    /// The length of the well-formed UTF-8 sequence starting at i_ (its first byte is >= 0x80);
    /// rejects stray continuation bytes, overlong forms, surrogates, code points above U+10FFFF and
    /// truncated sequences, naming the offset of the sequence's first byte.
    std::size_t utf8_length() const {
        const auto at = [&](std::size_t k) { return static_cast<unsigned char>(s_[i_ + k]); };
        const unsigned char c = at(0);
        std::size_t n = 0;
        unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
        if (c >= 0xC2 && c <= 0xDF) n = 2;
        else if (c == 0xE0) n = 3, lo = 0xA0;
        else if (c == 0xED) n = 3, hi = 0x9F;  // U+D800..U+DFFF (surrogates) are not characters
        else if (c >= 0xE1 && c <= 0xEF) n = 3;
        else if (c == 0xF0) n = 4, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3) n = 4;
        else if (c == 0xF4) n = 4, hi = 0x8F;
        else fail("invalid UTF-8 in a string (byte 0x" + hex2(c) + " cannot start a character)");
        if (i_ + n > s_.size()) fail("invalid UTF-8 in a string (truncated multi-byte character)");
        if (at(1) < lo || at(1) > hi) fail("invalid UTF-8 in a string (bad, overlong or surrogate sequence)");
        for (std::size_t k = 2; k < n; ++k)
            if (at(k) < 0x80 || at(k) > 0xBF) fail("invalid UTF-8 in a string (bad continuation byte)");
        return n;
    }
    static std::string hex2(unsigned char c) {
        static const char* hex = "0123456789abcdef";
        return {hex[c >> 4], hex[c & 15]};
    }

    std::string parse_string() {
        expect('"');
        std::string out;
        for (;;) {
            if (i_ >= s_.size()) fail("unterminated string");
            const unsigned char c = static_cast<unsigned char>(s_[i_]);
            if (c == '"') {
                ++i_;
                return out;
            }
            if (c < 0x20) fail("control character inside a string");
            if (c >= 0x80) {
                const std::size_t n = utf8_length();
                out.append(s_.data() + i_, n);
                i_ += n;
                continue;
            }
            if (c != '\\') {
                // copy the run of plain ASCII characters at once
                std::size_t j = i_ + 1;
                while (j < s_.size()) {
                    const unsigned char d = static_cast<unsigned char>(s_[j]);
                    if (d == '"' || d == '\\' || d < 0x20 || d >= 0x80) break;
                    ++j;
                }
                out.append(s_.data() + i_, j - i_);
                i_ = j;
                continue;
            }
            ++i_;
            if (i_ >= s_.size()) fail("unterminated escape");
            const char e = s_[i_++];
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    unsigned cp = hex4();
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        if (i_ + 2 > s_.size() || s_[i_] != '\\' || s_[i_ + 1] != 'u')
                            fail("high surrogate without a following low surrogate");
                        i_ += 2;
                        const unsigned lo = hex4();
                        if (lo < 0xDC00 || lo > 0xDFFF) fail("invalid low surrogate");
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                        fail("lone low surrogate");
                    }
                    put_utf8(out, cp);
                    break;
                }
                default:
                    --i_;
                    fail(std::string("invalid escape '\\") + e + "'");
            }
        }
    }

    std::string_view s_;
    std::string_view what_;
    bool config_ = false;
    std::size_t i_ = 0;
};

inline void write_string(std::string& out, std::string_view s) {
    static const char* hex = "0123456789abcdef";
    out += '"';
    for (const char ch : s) {
        const unsigned char c = static_cast<unsigned char>(ch);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (c < 0x20) {
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 15];
                } else {
                    out += ch;  // UTF-8 passes through unchanged
                }
        }
    }
    out += '"';
}

inline void write_value(std::string& out, const Value& v) {
    switch (v.type()) {
        case Value::Type::String: write_string(out, v.as_string()); break;
        case Value::Type::Integer: out += std::to_string(v.as_integer()); break;
        case Value::Type::Number: out += v.number_text(); break;
        case Value::Type::Bool: out += v.as_bool() ? "true" : "false"; break;
        case Value::Type::Array: {
            out += '[';
            bool first = true;
            for (const auto& item : v.items()) {
                if (!first) out += ',';
                first = false;
                write_value(out, item);
            }
            out += ']';
            break;
        }
        case Value::Type::Object: {
            out += '{';
            bool first = true;
            for (const auto& [k, item] : v.members()) {
                if (!first) out += ',';
                first = false;
                write_string(out, k);
                out += ':';
                write_value(out, item);
            }
            out += '}';
            break;
        }
    }
}

}  // namespace detail

/// Parses `text` strictly; `what` names the source in error messages (e.g. the file name).
inline Value parse(std::string_view text, std::string_view what = "JSON text", Dialect dialect = Dialect::Safetensors) {
    return detail::Parser(text, what, dialect).parse_document();
}

/// Compact serialisation (no spaces), members in insertion order.
inline std::string dump(const Value& v) {
    std::string out;
    detail::write_value(out, v);
    return out;
}

}  // namespace lcmae::json
