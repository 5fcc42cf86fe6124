// lcmae/core/shape.hpp - a small tensor shape (up to 6 dims), row-major, with a readable form.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <string>

#include "lcmae/core/error.hpp"

namespace lcmae {

/// Dimensions of a row-major tensor. Shape{} is a scalar (numel 1).
class Shape {
public:
    static constexpr std::size_t kMaxRank = 6;

    Shape() = default;
    Shape(std::initializer_list<std::int64_t> dims) {
        LCMAE_CHECK(dims.size() <= kMaxRank, "a Shape has at most " << kMaxRank << " dims, got " << dims.size());
        for (std::int64_t d : dims) {
            LCMAE_CHECK(d >= 0, "shape dims must be non-negative, got " << d);
            dims_[rank_++] = d;
        }
    }
    template <class It>
    static Shape from_range(It first, It last) {
        Shape s;
        for (; first != last; ++first) {
            LCMAE_CHECK(s.rank_ < kMaxRank, "a Shape has at most " << kMaxRank << " dims");
            LCMAE_CHECK(*first >= 0, "shape dims must be non-negative, got " << *first);
            s.dims_[s.rank_++] = static_cast<std::int64_t>(*first);
        }
        return s;
    }

    std::size_t rank() const noexcept { return rank_; }
    std::int64_t operator[](std::size_t i) const {
        LCMAE_CHECK(i < rank_, "dim " << i << " of a rank-" << rank_ << " shape " << str());
        return dims_[i];
    }
    std::int64_t numel() const noexcept {
        std::int64_t n = 1;
        for (std::size_t i = 0; i < rank_; ++i) n *= dims_[i];
        return n;
    }
    const std::int64_t* begin() const noexcept { return dims_.data(); }
    const std::int64_t* end() const noexcept { return dims_.data() + rank_; }

    friend bool operator==(const Shape& a, const Shape& b) noexcept {
        if (a.rank_ != b.rank_) return false;
        for (std::size_t i = 0; i < a.rank_; ++i)
            if (a.dims_[i] != b.dims_[i]) return false;
        return true;
    }
    /// "(197, 768)" - the form PyTorch prints.
    std::string str() const {
        std::ostringstream os;
        os << '(';
        for (std::size_t i = 0; i < rank_; ++i) os << (i ? ", " : "") << dims_[i];
        if (rank_ == 1) os << ',';
        os << ')';
        return os.str();
    }
    friend std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << s.str(); }

private:
    std::array<std::int64_t, kMaxRank> dims_{};
    std::size_t rank_ = 0;
};

}  // namespace lcmae
