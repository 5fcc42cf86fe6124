// lcmae/io/json.hpp - a small, strict JSON reader and writer for safetensors headers.
//
// Supports exactly what a safetensors header needs: objects, arrays, strings (with every JSON
// escape, \uXXXX including surrogate pairs, emitted as UTF-8) and integers (int64 range).
// Everything else - floats, true/false/null, trailing commas, duplicate keys, comments, leading
// zeros, control characters inside strings, trailing garbage - is rejected with an lcmae::Error
// that names the byte offset and what was expected. Trailing whitespace is allowed (safetensors
// pads the header with spaces to an 8-byte boundary).
//
// Objects keep their members in file order (a vector of pairs), so a header round-trips.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lcmae/core/error.hpp"

namespace lcmae::json {

/// A JSON value restricted to object / array / string / integer.
class Value {
public:
    enum class Type { Object, Array, String, Integer };

    Value() : type_(Type::Object) {}
    static Value object() { return Value(Type::Object); }
    static Value array() { return Value(Type::Array); }
    static Value string(std::string s) {
        Value v(Type::String);
        v.str_ = std::move(s);
        return v;
    }
    static Value integer(std::int64_t i) {
        Value v(Type::Integer);
        v.int_ = i;
        return v;
    }

    Type type() const noexcept { return type_; }
    bool is_object() const noexcept { return type_ == Type::Object; }
    bool is_array() const noexcept { return type_ == Type::Array; }
    bool is_string() const noexcept { return type_ == Type::String; }
    bool is_integer() const noexcept { return type_ == Type::Integer; }
    static const char* type_name(Type t) noexcept {
        switch (t) {
            case Type::Object: return "an object";
            case Type::Array: return "an array";
            case Type::String: return "a string";
            case Type::Integer: return "an integer";
        }
        return "?";
    }
    const char* type_name() const noexcept { return type_name(type_); }

    const std::string& as_string() const {
        LCMAE_CHECK(is_string(), "JSON value is " << type_name() << ", expected a string");
        return str_;
    }
    std::int64_t as_integer() const {
        LCMAE_CHECK(is_integer(), "JSON value is " << type_name() << ", expected an integer");
        return int_;
    }
    const std::vector<Value>& items() const {
        LCMAE_CHECK(is_array(), "JSON value is " << type_name() << ", expected an array");
        return items_;
    }
    const std::vector<std::pair<std::string, Value>>& members() const {
        LCMAE_CHECK(is_object(), "JSON value is " << type_name() << ", expected an object");
        return members_;
    }
    /// The member called `key`, or nullptr.
    const Value* find(std::string_view key) const {
        for (const auto& [k, v] : members())
            if (k == key) return &v;
        return nullptr;
    }

    /// Appends to an array.
    Value& push(Value v) {
        LCMAE_CHECK(is_array(), "push on JSON " << type_name());
        items_.push_back(std::move(v));
        return items_.back();
    }
    /// Adds a member to an object; a duplicate key is an error.
    Value& set(std::string key, Value v) {
        LCMAE_CHECK(is_object(), "set on JSON " << type_name());
        LCMAE_CHECK(find(key) == nullptr, "duplicate JSON key \"" << key << "\"");
        members_.emplace_back(std::move(key), std::move(v));
        return members_.back().second;
    }

private:
    explicit Value(Type t) : type_(t) {}
    Type type_;
    std::string str_;
    std::int64_t int_ = 0;
    std::vector<Value> items_;
    std::vector<std::pair<std::string, Value>> members_;
};

namespace detail {

class Parser {
public:
    Parser(std::string_view text, std::string_view what) : s_(text), what_(what) {}

    Value parse_document() {
        skip_ws();
        Value v = parse_value(0);
        skip_ws();
        if (i_ != s_.size()) fail("unexpected trailing characters after the JSON value");
        return v;
    }

private:
    static constexpr int kMaxDepth = 64;

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
        const char c = s_[i_];
        if (c == '{') return parse_object(depth);
        if (c == '[') return parse_array(depth);
        if (c == '"') return Value::string(parse_string());
        if (c == '-' || (c >= '0' && c <= '9')) return parse_integer();
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
                fail("duplicate key \"" + key + "\"");
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
        if (peek() == '.' || peek() == 'e' || peek() == 'E') fail("floating-point numbers are not supported");
        if (!neg) {
            if (acc == std::numeric_limits<std::int64_t>::min()) {
                i_ = start;
                fail("integer out of the 64-bit range");
            }
            acc = -acc;
        }
        return Value::integer(acc);
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
            if (c != '\\') {
                out += char(c);
                ++i_;
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
inline Value parse(std::string_view text, std::string_view what = "JSON text") {
    return detail::Parser(text, what).parse_document();
}

/// Compact serialisation (no spaces), members in insertion order.
inline std::string dump(const Value& v) {
    std::string out;
    detail::write_value(out, v);
    return out;
}

}  // namespace lcmae::json
