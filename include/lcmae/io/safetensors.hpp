// lcmae/io/safetensors.hpp - reader and writer for the safetensors format (PyTorch, timm, HF).
//
// Layout of a file: 8 bytes little-endian u64 N, then N bytes of JSON header
//   {"__metadata__": {"k": "v", ...},                          (optional, string -> string)
//    "<name>": {"dtype": "F32", "shape": [d0, ...], "data_offsets": [begin, end]}, ...}
// then the data: every tensor's raw little-endian row-major bytes at [begin, end) counted from the
// first byte after the header. Tensors may be stored in any order.
//
// Reading validates everything before any tensor is handed out: header length vs file size, strict
// JSON, known dtype, non-negative shape, offsets inside the data and not overlapping, and
// numel * sizeof(dtype) == end - begin. Every error names the file and, where one is involved, the
// tensor. Floating dtypes (F64, F32, BF16, F16) and integer dtypes (I64, I32, U8) convert to float
// or double on request (read_into). Writing is atomic (see atomic_file.hpp).
#pragma once

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lcmae/core/error.hpp"
#include "lcmae/core/shape.hpp"
#include "lcmae/io/atomic_file.hpp"
#include "lcmae/io/json.hpp"

namespace lcmae::io {

static_assert(std::endian::native == std::endian::little, "lcmae's safetensors code assumes a little-endian host");

enum class Dtype { F64, F32, F16, BF16, I64, I32, U8 };

inline std::size_t dtype_size(Dtype d) noexcept {
    switch (d) {
        case Dtype::F64: case Dtype::I64: return 8;
        case Dtype::F32: case Dtype::I32: return 4;
        case Dtype::F16: case Dtype::BF16: return 2;
        case Dtype::U8: return 1;
    }
    return 0;
}
inline const char* dtype_name(Dtype d) noexcept {
    switch (d) {
        case Dtype::F64: return "F64";
        case Dtype::F32: return "F32";
        case Dtype::F16: return "F16";
        case Dtype::BF16: return "BF16";
        case Dtype::I64: return "I64";
        case Dtype::I32: return "I32";
        case Dtype::U8: return "U8";
    }
    return "?";
}
inline std::ostream& operator<<(std::ostream& os, Dtype d) { return os << dtype_name(d); }
/// Parses "F32" etc.; false if unknown.
inline bool parse_dtype(std::string_view s, Dtype& out) noexcept {
    for (Dtype d : {Dtype::F64, Dtype::F32, Dtype::F16, Dtype::BF16, Dtype::I64, Dtype::I32, Dtype::U8})
        if (s == dtype_name(d)) {
            out = d;
            return true;
        }
    return false;
}
inline bool is_floating(Dtype d) noexcept {
    return d == Dtype::F64 || d == Dtype::F32 || d == Dtype::F16 || d == Dtype::BF16;
}
/// The dtype that stores T exactly (float -> F32, double -> F64, int64 -> I64, ...).
template <class T>
constexpr Dtype dtype_of() {
    if constexpr (std::is_same_v<T, float>) return Dtype::F32;
    else if constexpr (std::is_same_v<T, double>) return Dtype::F64;
    else if constexpr (std::is_same_v<T, std::int64_t>) return Dtype::I64;
    else if constexpr (std::is_same_v<T, std::int32_t>) return Dtype::I32;
    else if constexpr (std::is_same_v<T, std::uint8_t>) return Dtype::U8;
    else static_assert(sizeof(T) == 0, "no safetensors dtype for this type");
}

namespace detail {
inline float half_to_float(std::uint16_t h) noexcept {
    const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
    std::uint32_t exp = (h >> 10) & 0x1Fu;
    std::uint32_t mant = h & 0x3FFu;
    std::uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            int e = -1;
            do {
                ++e;
                mant <<= 1;
            } while ((mant & 0x400u) == 0);
            bits = sign | (std::uint32_t(127 - 15 - e) << 23) | ((mant & 0x3FFu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    return std::bit_cast<float>(bits);
}
inline float bf16_to_float(std::uint16_t b) noexcept { return std::bit_cast<float>(std::uint32_t(b) << 16); }

template <class Src>
Src load_le(const unsigned char* p) noexcept {
    Src v;
    std::memcpy(&v, p, sizeof(Src));
    return v;
}
}  // namespace detail

/// One tensor of a file: where its bytes are and what they mean.
struct TensorInfo {
    std::string name;
    Dtype dtype = Dtype::F32;
    Shape shape;
    std::size_t begin = 0, end = 0;  // byte offsets relative to the data start
    std::size_t nbytes() const noexcept { return end - begin; }
    std::size_t numel() const noexcept { return static_cast<std::size_t>(shape.numel()); }
};

/// A whole safetensors file read into memory and validated.
class SafetensorsFile {
public:
    /// Upper bound on the header size (the reference implementation uses 100 MB as well).
    static constexpr std::uint64_t kMaxHeader = 100'000'000;

    explicit SafetensorsFile(const std::filesystem::path& path) : path_(path.string()) {
        const int fd = ::open(path.c_str(), O_RDONLY);
        LCMAE_CHECK(fd >= 0, "cannot open safetensors file '" << path_ << "': " << std::strerror(errno));
        struct stat st {};
        if (::fstat(fd, &st) != 0) {
            const int err = errno;
            ::close(fd);
            LCMAE_FAIL("cannot stat '" << path_ << "': " << std::strerror(err));
        }
        size_ = static_cast<std::size_t>(st.st_size);
        bytes_.reset(new unsigned char[size_ == 0 ? 1 : size_]);
        std::size_t got = 0;
        while (got < size_) {
            const ::ssize_t n = ::read(fd, bytes_.get() + got, size_ - got);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                const int err = errno;
                ::close(fd);
                LCMAE_FAIL("reading '" << path_ << "' failed after " << got << " of " << size_
                                       << " bytes: " << (n < 0 ? std::strerror(err) : "unexpected end of file"));
            }
            got += static_cast<std::size_t>(n);
        }
        ::close(fd);
        parse();
    }

    /// Parses an in-memory image of a file; `what` names it in errors.
    SafetensorsFile(std::span<const unsigned char> image, std::string what) : path_(std::move(what)) {
        size_ = image.size();
        bytes_.reset(new unsigned char[size_ == 0 ? 1 : size_]);
        if (size_) std::memcpy(bytes_.get(), image.data(), size_);
        parse();
    }

    const std::string& path() const noexcept { return path_; }
    /// Tensors in header order.
    const std::vector<TensorInfo>& tensors() const noexcept { return tensors_; }
    const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
    bool contains(std::string_view name) const { return index_.count(std::string(name)) != 0; }
    const TensorInfo* find(std::string_view name) const {
        const auto it = index_.find(std::string(name));
        return it == index_.end() ? nullptr : &tensors_[it->second];
    }
    const TensorInfo& info(std::string_view name) const {
        const TensorInfo* t = find(name);
        LCMAE_CHECK(t != nullptr, "safetensors file '" << path_ << "' has no tensor '" << name << "'");
        return *t;
    }
    /// The raw little-endian bytes of a tensor.
    std::span<const unsigned char> raw(const TensorInfo& t) const noexcept {
        return {bytes_.get() + data_start_ + t.begin, t.nbytes()};
    }

    /// Converts tensor `name` into `out` (exactly numel values). Integer dtypes convert only when
    /// `allow_integer` is true (so a float model never silently loads an index tensor).
    template <class T>
    void read_into(const TensorInfo& t, T* out, std::size_t count, bool allow_integer = false) const {
        static_assert(std::is_arithmetic_v<T>);
        LCMAE_CHECK(count == t.numel(), "tensor '" << t.name << "' in '" << path_ << "' has " << t.numel()
                                                   << " values " << t.shape.str() << ", the destination holds " << count);
        LCMAE_CHECK(is_floating(t.dtype) || allow_integer || std::is_integral_v<T>,
                    "tensor '" << t.name << "' in '" << path_ << "' has integer dtype " << t.dtype
                               << ", expected a floating dtype (F32, F64, BF16, F16)");
        const unsigned char* p = raw(t).data();
        switch (t.dtype) {
            case Dtype::F32:
                if constexpr (std::is_same_v<T, float>) {
                    if (count) std::memcpy(out, p, count * 4);
                    return;
                }
                for (std::size_t i = 0; i < count; ++i) out[i] = static_cast<T>(detail::load_le<float>(p + 4 * i));
                return;
            case Dtype::F64:
                if constexpr (std::is_same_v<T, double>) {
                    if (count) std::memcpy(out, p, count * 8);
                    return;
                }
                for (std::size_t i = 0; i < count; ++i) out[i] = static_cast<T>(detail::load_le<double>(p + 8 * i));
                return;
            case Dtype::F16:
                for (std::size_t i = 0; i < count; ++i)
                    out[i] = static_cast<T>(detail::half_to_float(detail::load_le<std::uint16_t>(p + 2 * i)));
                return;
            case Dtype::BF16:
                for (std::size_t i = 0; i < count; ++i)
                    out[i] = static_cast<T>(detail::bf16_to_float(detail::load_le<std::uint16_t>(p + 2 * i)));
                return;
            case Dtype::I64:
                for (std::size_t i = 0; i < count; ++i) out[i] = static_cast<T>(detail::load_le<std::int64_t>(p + 8 * i));
                return;
            case Dtype::I32:
                for (std::size_t i = 0; i < count; ++i) out[i] = static_cast<T>(detail::load_le<std::int32_t>(p + 4 * i));
                return;
            case Dtype::U8:
                for (std::size_t i = 0; i < count; ++i) out[i] = static_cast<T>(p[i]);
                return;
        }
    }
    template <class T>
    void read_into(std::string_view name, T* out, std::size_t count, bool allow_integer = false) const {
        read_into(info(name), out, count, allow_integer);
    }
    /// A tensor converted to a vector of T.
    template <class T>
    std::vector<T> read(std::string_view name, bool allow_integer = false) const {
        const TensorInfo& t = info(name);
        std::vector<T> v(t.numel());
        read_into(t, v.data(), v.size(), allow_integer);
        return v;
    }

private:
    void parse() {
        LCMAE_CHECK(size_ >= 8, "safetensors file '" << path_ << "' is truncated: " << size_
                                                     << " bytes, too short for the 8-byte header length");
        const auto header_len = detail::load_le<std::uint64_t>(bytes_.get());
        LCMAE_CHECK(header_len <= kMaxHeader, "safetensors file '" << path_ << "' has a bad header length "
                                                                   << header_len << " (limit " << kMaxHeader << ")");
        LCMAE_CHECK(header_len <= size_ - 8, "safetensors file '" << path_ << "' is truncated or corrupt: header length "
                                                                  << header_len << " exceeds the " << (size_ - 8)
                                                                  << " bytes after the length field");
        data_start_ = 8 + static_cast<std::size_t>(header_len);
        const std::size_t data_size = size_ - data_start_;
        const std::string_view text(reinterpret_cast<const char*>(bytes_.get() + 8), static_cast<std::size_t>(header_len));
        const json::Value root = json::parse(text, "the header of '" + path_ + "'");
        LCMAE_CHECK(root.is_object(), "the header of safetensors file '" << path_ << "' is " << root.type_name()
                                                                          << ", expected an object");
        for (const auto& [name, v] : root.members()) {
            if (name == "__metadata__") {
                LCMAE_CHECK(v.is_object(), "'__metadata__' in '" << path_ << "' is " << v.type_name() << ", expected an object");
                for (const auto& [k, mv] : v.members()) {
                    LCMAE_CHECK(mv.is_string(), "metadata value '" << k << "' in '" << path_ << "' is " << mv.type_name()
                                                                   << ", expected a string");
                    metadata_.emplace(k, mv.as_string());
                }
                continue;
            }
            tensors_.push_back(parse_tensor(name, v, data_size));
            index_.emplace(name, tensors_.size() - 1);
        }
        // no two tensors may share bytes
        std::vector<const TensorInfo*> order;
        for (const auto& t : tensors_)
            if (t.nbytes() > 0) order.push_back(&t);
        std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
        for (std::size_t i = 1; i < order.size(); ++i)
            LCMAE_CHECK(order[i]->begin >= order[i - 1]->end,
                        "safetensors file '" << path_ << "': tensor '" << order[i]->name << "' [" << order[i]->begin << ", "
                                             << order[i]->end << ") overlaps tensor '" << order[i - 1]->name << "' ["
                                             << order[i - 1]->begin << ", " << order[i - 1]->end << ")");
    }

    TensorInfo parse_tensor(const std::string& name, const json::Value& v, std::size_t data_size) const {
        const auto where = [&] { return "tensor '" + name + "' in safetensors file '" + path_ + "'"; };
        LCMAE_CHECK(v.is_object(), where() << " is described by " << v.type_name() << ", expected an object");
        TensorInfo t;
        t.name = name;
        for (const auto& [k, _] : v.members())
            LCMAE_CHECK(k == "dtype" || k == "shape" || k == "data_offsets", where() << " has an unknown field '" << k << "'");
        const json::Value* dt = v.find("dtype");
        const json::Value* sh = v.find("shape");
        const json::Value* off = v.find("data_offsets");
        LCMAE_CHECK(dt && sh && off, where() << " lacks one of 'dtype', 'shape', 'data_offsets'");
        LCMAE_CHECK(dt->is_string(), where() << ": 'dtype' is " << dt->type_name() << ", expected a string");
        LCMAE_CHECK(parse_dtype(dt->as_string(), t.dtype),
                    where() << " has unsupported dtype '" << dt->as_string() << "' (supported: F64 F32 F16 BF16 I64 I32 U8)");
        LCMAE_CHECK(sh->is_array(), where() << ": 'shape' is " << sh->type_name() << ", expected an array");
        LCMAE_CHECK(sh->items().size() <= Shape::kMaxRank,
                    where() << " has rank " << sh->items().size() << ", more than the supported " << Shape::kMaxRank);
        std::vector<std::int64_t> dims;
        const auto shape_text = [&] {
            std::string out = "[";
            for (std::size_t i = 0; i < sh->items().size(); ++i) {
                const auto& d = sh->items()[i];
                out += (i ? ", " : "") + (d.is_integer() ? std::to_string(d.as_integer()) : std::string(d.type_name()));
            }
            return out + "]";
        };
        // numel and numel * dtype size must both fit in int64 (Shape::numel is int64); check each
        // product for overflow before anything is sized from it.
        std::int64_t numel = 1;
        for (const auto& d : sh->items()) {
            LCMAE_CHECK(d.is_integer() && d.as_integer() >= 0,
                        where() << " has shape " << shape_text() << ": dims must be non-negative integers");
            LCMAE_CHECK(!__builtin_mul_overflow(numel, d.as_integer(), &numel),
                        where() << " has shape " << shape_text() << " whose element count overflows int64");
            dims.push_back(d.as_integer());
        }
        std::int64_t want_bytes = 0;
        LCMAE_CHECK(!__builtin_mul_overflow(numel, static_cast<std::int64_t>(dtype_size(t.dtype)), &want_bytes),
                    where() << " has shape " << shape_text() << " of " << t.dtype << ": " << numel
                            << " elements times " << dtype_size(t.dtype) << " bytes overflows int64");
        t.shape = Shape::from_range(dims.begin(), dims.end());
        LCMAE_CHECK(off->is_array() && off->items().size() == 2 && off->items()[0].is_integer() &&
                        off->items()[1].is_integer(),
                    where() << ": 'data_offsets' must be an array of two integers");
        const std::int64_t b = off->items()[0].as_integer(), e = off->items()[1].as_integer();
        LCMAE_CHECK(b >= 0 && b <= e, where() << " has invalid data_offsets [" << b << ", " << e
                                              << "): expected 0 <= begin <= end");
        LCMAE_CHECK(static_cast<std::uint64_t>(e) <= data_size,
                    where() << " has data_offsets [" << b << ", " << e << ") out of range: the data section holds "
                            << data_size << " bytes (file truncated?)");
        t.begin = static_cast<std::size_t>(b);
        t.end = static_cast<std::size_t>(e);
        const auto want = static_cast<std::uint64_t>(want_bytes);
        LCMAE_CHECK(want == t.nbytes(), where() << ": shape " << t.shape.str() << " of " << t.dtype << " needs " << want
                                                << " bytes but data_offsets span " << t.nbytes());
        return t;
    }

    std::string path_;
    std::unique_ptr<unsigned char[]> bytes_;
    std::size_t size_ = 0;
    std::size_t data_start_ = 0;
    std::vector<TensorInfo> tensors_;
    std::unordered_map<std::string, std::size_t> index_;
    std::map<std::string, std::string> metadata_;
};

/// Collects tensors (borrowed pointers or owned converted copies) and writes one file atomically.
/// Borrowed data must stay alive and unchanged until write() returns.
class SafetensorsWriter {
public:
    /// Adds a tensor whose bytes (numel * dtype_size) live at `data` (borrowed, not copied).
    void add_raw(std::string name, Dtype dtype, Shape shape, const void* data) {
        check_name(name);
        Item it{std::move(name), dtype, shape, static_cast<const unsigned char*>(data), {}};
        LCMAE_CHECK(data != nullptr || it.nbytes() == 0, "tensor '" << it.name << "' has no data");
        items_.push_back(std::move(it));
    }
    /// Adds `data` (numel values of T) stored as T's own dtype, borrowed.
    template <class T>
    void add(std::string name, Shape shape, const T* data) {
        add_raw(std::move(name), dtype_of<T>(), shape, data);
    }
    /// Adds `data` converted to `dtype` (F32, F64, I64, I32 or U8); the converted copy is owned.
    template <class T>
    void add_as(std::string name, Dtype dtype, Shape shape, const T* data) {
        if (dtype == dtype_of<T>()) return add(std::move(name), shape, data);
        check_name(name);
        const std::size_t n = static_cast<std::size_t>(shape.numel());
        Item it{std::move(name), dtype, shape, nullptr, {}};
        it.owned.resize(n * dtype_size(dtype));
        unsigned char* p = it.owned.data();
        switch (dtype) {
            case Dtype::F32: store<float>(p, data, n); break;
            case Dtype::F64: store<double>(p, data, n); break;
            case Dtype::I64: store<std::int64_t>(p, data, n); break;
            case Dtype::I32: store<std::int32_t>(p, data, n); break;
            case Dtype::U8: store<std::uint8_t>(p, data, n); break;
            default: LCMAE_FAIL("writing dtype " << dtype << " is not supported (tensor '" << it.name << "')");
        }
        items_.push_back(std::move(it));
    }
    void set_metadata(std::string key, std::string value) { metadata_[std::move(key)] = std::move(value); }
    void set_metadata(const std::map<std::string, std::string>& m) {
        for (const auto& [k, v] : m) metadata_[k] = v;
    }
    std::size_t size() const noexcept { return items_.size(); }

    /// The header JSON (padded with spaces to a multiple of 8 bytes) for the tensors added so far.
    std::string header() const {
        json::Value root = json::Value::object();
        if (!metadata_.empty()) {
            json::Value m = json::Value::object();
            for (const auto& [k, v] : metadata_) m.set(k, json::Value::string(v));
            root.set("__metadata__", std::move(m));
        }
        std::size_t offset = 0;
        for (const auto& it : items_) {
            json::Value t = json::Value::object();
            t.set("dtype", json::Value::string(dtype_name(it.dtype)));
            json::Value shape = json::Value::array();
            for (std::int64_t d : it.shape) shape.push(json::Value::integer(d));
            t.set("shape", std::move(shape));
            json::Value off = json::Value::array();
            off.push(json::Value::integer(static_cast<std::int64_t>(offset)));
            offset += it.nbytes();
            off.push(json::Value::integer(static_cast<std::int64_t>(offset)));
            t.set("data_offsets", std::move(off));
            root.set(it.name, std::move(t));
        }
        std::string h = json::dump(root);
        h.append((8 - h.size() % 8) % 8, ' ');
        return h;
    }

    /// Writes the file atomically (temporary file, fsync, rename).
    void write(const std::filesystem::path& path) const {
        const std::string h = header();
        AtomicFileWriter f(path);
        unsigned char len[8];
        const std::uint64_t n = h.size();
        std::memcpy(len, &n, 8);
        f.write(len, 8);
        f.write(h);
        for (const auto& it : items_) {
            const unsigned char* p = it.data ? it.data : it.owned.data();
            if (it.nbytes()) f.write(p, it.nbytes());
        }
        f.commit();
    }

private:
    struct Item {
        std::string name;
        Dtype dtype;
        Shape shape;
        const unsigned char* data;
        std::vector<unsigned char> owned;
        std::size_t nbytes() const noexcept { return static_cast<std::size_t>(shape.numel()) * dtype_size(dtype); }
    };
    template <class D, class S>
    static void store(unsigned char* p, const S* src, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) {
            const D d = static_cast<D>(src[i]);
            std::memcpy(p + i * sizeof(D), &d, sizeof(D));
        }
    }
    void check_name(const std::string& name) {
        LCMAE_CHECK(!name.empty(), "a safetensors tensor needs a non-empty name");
        LCMAE_CHECK(name != "__metadata__", "'__metadata__' is reserved and cannot name a tensor");
        LCMAE_CHECK(names_.insert(name).second, "tensor name '" << name << "' added twice to one safetensors file");
    }

    std::vector<Item> items_;
    std::map<std::string, std::string> metadata_;
    std::set<std::string> names_;
};

}  // namespace lcmae::io
