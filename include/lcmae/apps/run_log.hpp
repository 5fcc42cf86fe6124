// lcmae/apps/run_log.hpp - what a training program shows and records while it runs:
//
//   MetricsLog   OUT/metrics.jsonl, one JSON object per logging step, appended and flushed line by
//                line; a resumed run keeps the earlier lines up to the step it resumed from (lines of
//                later steps, written after that checkpoint, are dropped so none is duplicated).
//   Progress     on a terminal (isatty) one line rewritten in place (\r) with step/total, epoch,
//                images/s, the loss parts, lr and ETA; otherwise a plain log line every ~10 s.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "lcmae/core/error.hpp"
#include "lcmae/io/atomic_file.hpp"
#include "lcmae/io/json.hpp"

namespace lcmae::apps {

/// One logging step: averages over the micro-batches since the previous one.
struct MetricsRecord {
    std::int64_t step = 0, epoch = 0, images = 0;
    double loss = 0, mim = 0, gg = 0, lr = 0, images_per_s = 0, elapsed_s = 0;

    std::string json_line() const {
        char buf[384];
        std::snprintf(buf, sizeof buf,
                      "{\"step\": %lld, \"epoch\": %lld, \"images\": %lld, \"loss\": %.6g, \"mim\": %.6g, \"gg\": %.6g, "
                      "\"lr\": %.6g, \"images_per_s\": %.4g, \"elapsed_s\": %.4g}\n",
                      (long long)step, (long long)epoch, (long long)images, loss, mim, gg, lr, images_per_s, elapsed_s);
        return buf;
    }
};

/// OUT/metrics.jsonl. Opening it for a fresh run (resumed_step < 0) truncates it; for a run resumed
/// at `resumed_step` it rewrites the file (atomically) with the lines whose step is <= resumed_step.
class MetricsLog {
public:
    MetricsLog(const std::filesystem::path& path, std::int64_t resumed_step) : path_(path) {
        std::string kept;
        if (resumed_step >= 0 && std::filesystem::exists(path)) {
            std::ifstream in(path);
            std::string line;
            for (std::size_t n = 1; std::getline(in, line); ++n) {
                if (line.empty()) continue;
                std::int64_t step = -1;
                try {
                    const json::Value v = json::parse(line, path.string() + " line " + std::to_string(n), json::Dialect::Config);
                    const json::Value* s = v.is_object() ? v.find("step") : nullptr;
                    if (s != nullptr && s->is_integer()) step = s->as_integer();
                } catch (const lcmae::Error&) {
                    // a line cut short by a crash: dropped with the others that cannot be read
                }
                if (step >= 0 && step <= resumed_step) kept += line + "\n";
            }
        }
        io::AtomicFileWriter w(path);
        w.write(kept);
        w.commit();
        f_ = std::fopen(path.c_str(), "ab");
        LCMAE_CHECK(f_ != nullptr, "cannot append to '" << path.string() << "': " << std::strerror(errno));
    }
    MetricsLog(const MetricsLog&) = delete;
    MetricsLog& operator=(const MetricsLog&) = delete;
    ~MetricsLog() {
        if (f_) std::fclose(f_);
    }

    void append(const MetricsRecord& r) {
        const std::string line = r.json_line();
        LCMAE_CHECK(std::fwrite(line.data(), 1, line.size(), f_) == line.size() && std::fflush(f_) == 0,
                    "writing '" << path_.string() << "' failed: " << std::strerror(errno));
    }

private:
    std::filesystem::path path_;
    std::FILE* f_ = nullptr;
};

/// "1h02m", "4m05s", "12s".
inline std::string format_duration(double s) {
    if (!(s >= 0) || !std::isfinite(s)) return "?";
    const long t = std::lround(s);
    char buf[32];
    if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
    else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
    else std::snprintf(buf, sizeof buf, "%lds", t);
    return buf;
}

/// Shows training progress on stdout: a single line updated in place when stdout is a terminal
/// (at most 4 times a second), otherwise a plain line every `plain_every_s` seconds.
class Progress {
public:
    explicit Progress(double plain_every_s = 10.0, bool tty = ::isatty(::fileno(stdout)) == 1)
        : tty_(tty), every_(tty ? 0.25 : plain_every_s) {}
    bool tty() const noexcept { return tty_; }

    /// Whether a line is due `elapsed_s` into the run (call update() only then).
    bool due(double elapsed_s) const { return elapsed_s - last_ >= every_; }

    /// r: the averages since the last shown line; total_steps: the run's planned optimiser steps.
    void update(const MetricsRecord& r, std::int64_t total_steps, std::int64_t epochs, double eta_s) {
        last_ = r.elapsed_s;
        char buf[320];
        if (tty_) {
            std::snprintf(buf, sizeof buf,
                          "\rstep %lld/%lld  epoch %lld/%lld  %.1f img/s  loss %.4f (mim %.4f, gg %.4f)  lr %.2e  %s, ETA %s\033[K",
                          (long long)r.step, (long long)total_steps, (long long)r.epoch + 1, (long long)epochs, r.images_per_s,
                          r.loss, r.mim, r.gg, r.lr, format_duration(r.elapsed_s).c_str(), format_duration(eta_s).c_str());
            shown_ = true;
        } else {
            std::snprintf(buf, sizeof buf,
                          "epoch %lld  step %6lld/%lld  loss %.4f (mim %.4f, gg %.4f)  lr %.2e  %.1f images/s  %.1f min  ETA %s\n",
                          (long long)r.epoch, (long long)r.step, (long long)total_steps, r.loss, r.mim, r.gg, r.lr,
                          r.images_per_s, r.elapsed_s / 60, format_duration(eta_s).c_str());
        }
        std::fputs(buf, stdout);
        std::fflush(stdout);
    }
    /// Ends the in-place line (before any other output).
    void finish_line() {
        if (shown_) std::fputs("\n", stdout);
        shown_ = false;
        std::fflush(stdout);
    }

private:
    bool tty_;
    double every_;
    double last_ = 0;
    bool shown_ = false;
};

}  // namespace lcmae::apps
