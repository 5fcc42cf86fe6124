// lcmae/io/atomic_file.hpp - write a file so that readers see either the old or the new content.
//
// The bytes go to a temporary file in the same directory (so rename stays within one file system),
// which is flushed with fsync, then renamed over the destination; finally the directory is fsynced
// so the rename itself survives a crash. On any failure the temporary file is removed and an
// lcmae::Error names the destination and the failing system call; an existing destination file is
// left untouched. POSIX only.
#pragma once

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lcmae/core/error.hpp"

namespace lcmae::io {

/// fsyncs a directory so renames inside it survive a crash (best effort: some file systems refuse).
inline void fsync_dir(const std::filesystem::path& dir) noexcept {
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

/// True for the temporary names AtomicFileWriter gives a file whose destination leaf is `leaf`:
/// ".<leaf>.tmp.XXXXXX" (six characters from mkstemp).
inline bool is_atomic_temp_name(std::string_view name, std::string_view leaf) {
    constexpr std::string_view mid = ".tmp.";
    return name.size() == 1 + leaf.size() + mid.size() + 6 && name.front() == '.' && name.substr(1, leaf.size()) == leaf &&
           name.substr(1 + leaf.size(), mid.size()) == mid;
}

/// Removes the temporary files AtomicFileWriter left in `dir` for the destinations named `leaves`
/// (a writer killed before commit or abort leaves one). Only our naming pattern is touched.
/// Returns how many were removed. Errors while listing or removing are ignored (best effort).
inline int remove_stale_temp_files(const std::filesystem::path& dir, std::initializer_list<std::string_view> leaves) {
    int removed = 0;
    std::error_code ec;
    std::filesystem::directory_iterator it(dir, ec), end;
    if (ec) return 0;
    for (; it != end; it.increment(ec)) {
        if (ec) break;
        const std::string name = it->path().filename().string();
        for (std::string_view leaf : leaves)
            if (is_atomic_temp_name(name, leaf) && it->is_regular_file(ec)) {
                std::error_code rec;
                if (std::filesystem::remove(it->path(), rec)) ++removed;
                break;
            }
    }
    return removed;
}

/// rename(2) `from` onto `to` (same file system), then fsync `to`'s directory. Throws naming both.
inline void rename_replacing(const std::filesystem::path& from, const std::filesystem::path& to) {
    if (::rename(from.c_str(), to.c_str()) != 0) {
        const int err = errno;
        LCMAE_FAIL("renaming '" << from.string() << "' onto '" << to.string() << "' failed: " << std::strerror(err));
    }
    fsync_dir(to.has_parent_path() ? to.parent_path() : std::filesystem::path("."));
}

/// Streams byte chunks into a temporary file next to `path`; commit() makes it appear atomically.
/// Destroying an uncommitted writer deletes the temporary file.
class AtomicFileWriter {
public:
    explicit AtomicFileWriter(std::filesystem::path path) : path_(std::move(path)) {
        const std::filesystem::path dir = path_.has_parent_path() ? path_.parent_path() : std::filesystem::path(".");
        std::string leaf(1, '.');
        leaf.append(path_.filename().string()).append(".tmp.XXXXXX");
        std::string templ = (dir / leaf).string();
        fd_ = ::mkstemp(templ.data());
        LCMAE_CHECK(fd_ >= 0, "cannot create a temporary file in '" << dir.string() << "' to write '"
                                  << path_.string() << "': " << std::strerror(errno));
        tmp_ = templ;
        ::fchmod(fd_, 0644);
    }
    AtomicFileWriter(const AtomicFileWriter&) = delete;
    AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
    ~AtomicFileWriter() { abort(); }

    void write(const void* data, std::size_t bytes) {
        LCMAE_CHECK(fd_ >= 0, "write to '" << path_.string() << "' after commit/abort");
        const char* p = static_cast<const char*>(data);
        while (bytes > 0) {
            const ::ssize_t n = ::write(fd_, p, bytes);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                const int err = errno;
                abort();
                LCMAE_FAIL("writing '" << path_.string() << "' failed: " << (n < 0 ? std::strerror(err) : "no progress")
                                       << " ('" << path_.string() << "' itself was not replaced)");
            }
            p += n;
            bytes -= static_cast<std::size_t>(n);
        }
    }
    void write(std::string_view s) { write(s.data(), s.size()); }

    /// fsync, close, rename over the destination, fsync the directory.
    void commit() {
        LCMAE_CHECK(fd_ >= 0, "commit of '" << path_.string() << "' twice or after abort");
        if (::fsync(fd_) != 0) {
            const int err = errno;
            abort();
            LCMAE_FAIL("fsync of the temporary file for '" << path_.string() << "' failed: " << std::strerror(err));
        }
        if (::close(fd_) != 0) {
            const int err = errno;
            fd_ = -1;
            abort();
            LCMAE_FAIL("closing the temporary file for '" << path_.string() << "' failed: " << std::strerror(err));
        }
        fd_ = -1;
        if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
            const int err = errno;
            abort();
            LCMAE_FAIL("renaming the temporary file onto '" << path_.string() << "' failed: " << std::strerror(err));
        }
        tmp_.clear();
        fsync_dir(path_.has_parent_path() ? path_.parent_path() : std::filesystem::path("."));
    }

    /// Drops the temporary file (no effect after commit).
    void abort() noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
        if (!tmp_.empty()) ::unlink(tmp_.c_str());
        tmp_.clear();
    }

    const std::filesystem::path& path() const noexcept { return path_; }

private:
    std::filesystem::path path_;
    std::string tmp_;
    int fd_ = -1;
};

}  // namespace lcmae::io
