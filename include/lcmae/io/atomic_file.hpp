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
#include <string>
#include <string_view>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lcmae/core/error.hpp"

namespace lcmae::io {

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
                                       << " (nothing was replaced)");
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
        const std::filesystem::path dir = path_.has_parent_path() ? path_.parent_path() : std::filesystem::path(".");
        const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            ::fsync(dfd);  // best effort: some file systems refuse fsync on directories
            ::close(dfd);
        }
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
