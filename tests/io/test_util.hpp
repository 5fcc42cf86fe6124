// Helpers shared by the io tests: a temporary directory and "throws an lcmae::Error whose message
// contains all of these pieces".
#pragma once

#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <iostream>
#include <string>

#include "lcmae/core/error.hpp"

namespace lcmae::test {

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        std::string t = (std::filesystem::temp_directory_path() / "lcmae_io_XXXXXX").string();
        if (::mkdtemp(t.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        path = t;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::permissions(path, std::filesystem::perms::owner_all, ec);
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

/// True when fn throws lcmae::Error and its message contains every piece; prints the message
/// otherwise so a failing check shows what was said.
template <class F, class... S>
bool throws_with(F&& fn, const S&... pieces) {
    try {
        fn();
    } catch (const lcmae::Error& e) {
        const std::string msg = e.what();
        bool ok = true;
        for (const std::string& p : {std::string(pieces)...}) ok = ok && msg.find(p) != std::string::npos;
        if (!ok) std::cerr << "error message lacks an expected piece: " << msg << "\n";
        return ok;
    } catch (const std::exception& e) {
        std::cerr << "a non-lcmae exception was thrown: " << e.what() << "\n";
        return false;
    }
    std::cerr << "no exception was thrown\n";
    return false;
}

}  // namespace lcmae::test
