// lcmae/core/error.hpp - the one exception type of the library and the check macro that throws it.
//
// Every public function validates its input with LCMAE_CHECK. A failed check throws lcmae::Error
// whose message names the source location, the condition that failed, and a sentence built by the
// caller that says what value was seen and what was expected:
//
//   LCMAE_CHECK(batch <= planned, "batch " << batch << " exceeds the planned maximum " << planned);
//   -> "lcmae error at include/lcmae/nn/linear.hpp:42: batch 65 exceeds the planned maximum 64
//       [check: batch <= planned]"
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace lcmae {

/// The exception every lcmae check throws. what() is a full sentence for a person.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {
[[noreturn]] inline void throw_error(const char* file, int line, const char* condition,
                                     const std::string& message) {
    std::ostringstream os;
    os << "lcmae error at " << file << ':' << line << ": " << message;
    if (condition != nullptr && condition[0] != '\0') os << " [check: " << condition << ']';
    throw Error(os.str());
}
}  // namespace detail

}  // namespace lcmae

/// Throws lcmae::Error with `message_stream` (anything that streams into std::ostream) when `cond`
/// is false. The message is built only on failure.
#define LCMAE_CHECK(cond, message_stream)                                                 \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            std::ostringstream lcmae_check_os_;                                           \
            lcmae_check_os_ << message_stream;                                            \
            ::lcmae::detail::throw_error(__FILE__, __LINE__, #cond, lcmae_check_os_.str()); \
        }                                                                                 \
    } while (false)

/// Throws lcmae::Error unconditionally (for paths that are errors by construction).
#define LCMAE_FAIL(message_stream)                                              \
    do {                                                                        \
        std::ostringstream lcmae_check_os_;                                     \
        lcmae_check_os_ << message_stream;                                      \
        ::lcmae::detail::throw_error(__FILE__, __LINE__, "", lcmae_check_os_.str()); \
    } while (false)
