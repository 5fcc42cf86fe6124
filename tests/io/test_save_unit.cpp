// Trainer::save() / load() as one unit (issue 10): the checkpoint and the training state carry the
// same step / micro-batch counter / run id and load() refuses a mixed pair; a save leaves no
// temporaries and removes those a killed save left; non-finite weights, EMA target values or Adam
// moments are never written (the last good files stay byte-identical).
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "lcmae/core/error.hpp"
#include "lcmae/core/rng.hpp"
#include "lcmae/io/safetensors.hpp"
#include "lcmae/models/lcmae_model.hpp"
#include "lcmae/train/trainer.hpp"

using namespace lcmae;
using namespace lcmae::models;
namespace fs = std::filesystem;

namespace {
backend::Cpu ctx(2);
constexpr long kBatch = 4;

ModelSpec tiny() {
    ModelSpec s;
    s.encoder = vit::VitDims{8, 1, 2, 2, 8, 1, 4};  // D 8, 1 block, 2 heads, patch 2, 8 px, gray
    s.decoder = DecoderDims{8, 1, 2};
    s.head_hidden = 12;
    s.loss = GuidanceLoss::Cosine;  // with an EMA target
    s.max_batch = kBatch;
    return s;
}
train::TrainConfig config(int accumulation = 1) {
    train::TrainConfig c;
    c.batch = kBatch;
    c.accumulation = accumulation;
    c.epochs = 2;
    c.warmup_epochs = 0.5;
    c.blr = 1e-2;
    c.seed = 5;
    return c;
}

struct Run {
    LcmaeModel<float> model;
    train::Trainer<float> trainer;
    explicit Run(int accumulation = 1, std::uint64_t init = 1)
        : model(tiny(), init), trainer(model, config(accumulation), 8) {}
    void train(long count) {
        std::vector<float> v1(kBatch * 64), v2(kBatch * 64);
        for (long m = 0; m < count; ++m) {
            Rng r(99, std::uint64_t(trainer.iteration()));
            for (auto& x : v1) x = float(r.normal());
            for (auto& x : v2) x = float(r.normal());
            trainer.micro_batch(ctx, v1.data(), v2.data(), kBatch);
        }
    }
};

fs::path fresh_dir(const std::string& name) {
    const fs::path d = fs::temp_directory_path() / ("lcmae_save_unit_" + name);
    fs::remove_all(d);
    return d;
}
std::string bytes_of(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    REQUIRE(f.good());
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
std::set<std::string> names_in(const fs::path& d) {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(d)) out.insert(e.path().filename().string());
    return out;
}
void touch(const fs::path& p) { std::ofstream(p) << "junk"; }
std::string error_of(auto&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return {};
}
bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("save: both files carry step, micro-batch counter and run id; load accepts the pair") {
    const fs::path d = fresh_dir("meta");
    Run a(2);
    a.train(3);  // step 1 + one micro-batch of the next cycle: partial_grad.* is written
    a.trainer.save(d, {{"config", "x"}});
    const io::SafetensorsFile ck(d / "checkpoint.safetensors"), ts(d / "train_state.safetensors");
    for (const auto* f : {&ck, &ts}) {
        CHECK(f->metadata().at("lcmae_step") == "1");
        CHECK(f->metadata().at("lcmae_micro") == "3");
        CHECK(f->metadata().at("lcmae_run_id") == a.trainer.run_id());
    }
    CHECK(ck.metadata().at("config") == "x");
    CHECK(ts.find("partial_grad.step") != nullptr);
    Run b(2, 7);
    b.trainer.load(d);
    CHECK(b.trainer.step() == 1);
    CHECK(b.trainer.micro_step() == 1);
    // the id is deterministic (same seed and config) and differs for another configuration
    CHECK(Run(2, 3).trainer.run_id() == a.trainer.run_id());
    CHECK(Run(1).trainer.run_id() != a.trainer.run_id());
    fs::remove_all(d);
}

TEST_CASE("load refuses a checkpoint of step N beside a training state of step M, naming both") {
    const fs::path d2 = fresh_dir("mixed_2"), d3 = fresh_dir("mixed_3");
    Run a;
    a.train(2);
    a.trainer.save(d2);
    a.train(1);
    a.trainer.save(d3);
    // a kill between the two renames of the step-3 save: its checkpoint beside step 2's state
    fs::copy_file(d3 / "checkpoint.safetensors", d2 / "checkpoint.safetensors", fs::copy_options::overwrite_existing);
    Run b(1, 7);
    const std::string msg = error_of([&] { b.trainer.load(d2); });
    CAPTURE(msg);
    CHECK(has(msg, "checkpoint.safetensors' is step 3"));
    CHECK(has(msg, "train_state.safetensors' is step 2"));
    CHECK(b.trainer.step() == 0);  // nothing was restored
    // the reverse mix too
    fs::copy_file(d2 / "train_state.safetensors", d3 / "train_state.safetensors", fs::copy_options::overwrite_existing);
    CHECK(has(error_of([&] { b.trainer.load(d3); }), "step 2"));
    // a pair from another run (another configuration) at the same step is refused as well
    const fs::path other = fresh_dir("mixed_other");
    {
        train::TrainConfig c = config();
        c.blr = 2e-2;
        LcmaeModel<float> m(tiny(), 1);
        train::Trainer<float> t(m, c, 8);
        std::vector<float> v1(kBatch * 64, 0.5f), v2(kBatch * 64, -0.5f);
        for (int i = 0; i < 2; ++i) t.micro_batch(ctx, v1.data(), v2.data(), kBatch);
        t.save(other);
    }
    Run c;
    c.train(2);
    const fs::path d2b = fresh_dir("mixed_2b");
    c.trainer.save(d2b);
    fs::copy_file(other / "checkpoint.safetensors", d2b / "checkpoint.safetensors", fs::copy_options::overwrite_existing);
    CHECK(has(error_of([&] { b.trainer.load(d2b); }), "run "));
    for (const auto& d : {d2, d3, other, d2b}) fs::remove_all(d);
}

TEST_CASE("a save killed between its two renames is finished by the next load (and only with its own state)") {
    const fs::path d = fresh_dir("finish"), d3 = fresh_dir("finish_3");
    Run a;
    a.train(2);
    a.trainer.save(d);
    const std::string ts2 = bytes_of(d / "train_state.safetensors");
    a.train(1);
    a.trainer.save(d3);
    // the step-3 save into d, killed after its checkpoint's rename: the new state is still staged
    const auto kill_between_renames = [&](const fs::path& staged_state) {
        fs::copy_file(d3 / "checkpoint.safetensors", d / "checkpoint.safetensors", fs::copy_options::overwrite_existing);
        fs::create_directory(d / ".save-3-3.tmp");
        fs::copy_file(staged_state, d / ".save-3-3.tmp" / "train_state.safetensors");
    };
    kill_between_renames(d3 / "train_state.safetensors");
    Run b(1, 7);
    b.trainer.load(d);
    CHECK(b.trainer.step() == 3);
    CHECK(bytes_of(d / "train_state.safetensors") == bytes_of(d3 / "train_state.safetensors"));
    CHECK(names_in(d) == std::set<std::string>{"checkpoint.safetensors", "train_state.safetensors"});
    // a staged state of another save (here step 2's) is not the checkpoint's partner: refused, not used
    const fs::path s2 = fresh_dir("finish_s2");
    fs::create_directories(s2);
    {
        std::ofstream(s2 / "state", std::ios::binary) << ts2;
    }
    fs::copy_file(s2 / "state", d / "train_state.safetensors", fs::copy_options::overwrite_existing);
    kill_between_renames(s2 / "state");
    Run c(1, 7);
    const std::string msg = error_of([&] { c.trainer.load(d); });
    CAPTURE(msg);
    CHECK(has(msg, "come from different saves"));
    CHECK(c.trainer.step() == 0);
    for (const auto& x : {d, d3, s2}) fs::remove_all(x);
}

TEST_CASE("save leaves no temporaries, and save and load remove those a killed save left (ours only)") {
    const fs::path d = fresh_dir("tmp");
    Run a;
    a.train(1);
    a.trainer.save(d);
    CHECK(names_in(d) == std::set<std::string>{"checkpoint.safetensors", "train_state.safetensors"});
    const auto plant = [&] {
        touch(d / ".checkpoint.safetensors.tmp.Ab3xYz");
        touch(d / ".train_state.safetensors.tmp.q1w2e3");
        fs::create_directory(d / ".save-7-14.tmp");
        touch(d / ".save-7-14.tmp" / "checkpoint.safetensors");
        // not ours: left alone
        touch(d / "notes.txt");
        touch(d / ".other.safetensors.tmp.abcdef");
        fs::create_directories(d / ".save-mine.tmp");
    };
    const std::set<std::string> after{"checkpoint.safetensors", "train_state.safetensors", "notes.txt",
                                      ".other.safetensors.tmp.abcdef", ".save-mine.tmp"};
    plant();
    a.train(1);
    a.trainer.save(d);
    CHECK(names_in(d) == after);
    plant();
    Run b(1, 7);
    b.trainer.load(d);
    CHECK(names_in(d) == after);
    CHECK(b.trainer.step() == 2);
    fs::remove_all(d);
}

namespace {
// Offset of the first value that the optimiser keeps moments for.
std::size_t first_moment(Run& r) {
    return r.model.params().entries()[r.trainer.optimizer().active_entries().front()].slot.offset + 1;
}
// Saves a good state, plants a non-finite value with `spoil`, and checks that save() throws naming
// the step and `arena` and leaves the saved files byte-identical.
template <class Spoil>
void check_refused(const std::string& name, const std::string& arena, Spoil spoil) {
    CAPTURE(arena);
    const fs::path d = fresh_dir(name);
    Run a;
    a.train(2);
    a.trainer.save(d);
    const std::string ck = bytes_of(d / "checkpoint.safetensors"), ts = bytes_of(d / "train_state.safetensors");
    a.train(1);
    spoil(a);
    const std::string msg = error_of([&] { a.trainer.save(d); });
    CAPTURE(msg);
    CHECK(has(msg, "step 3"));
    CHECK(has(msg, "the " + arena + " arena"));
    CHECK(bytes_of(d / "checkpoint.safetensors") == ck);
    CHECK(bytes_of(d / "train_state.safetensors") == ts);
    CHECK(names_in(d) == std::set<std::string>{"checkpoint.safetensors", "train_state.safetensors"});
    fs::remove_all(d);
}
}  // namespace

TEST_CASE("a non-finite weight, EMA target value or Adam moment is never saved; the old files stay") {
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    check_refused("nan_online", "online", [&](Run& r) { r.model.params().values()[5] = nan; });
    check_refused("nan_target", "target", [&](Run& r) { r.model.target_params().values()[3] = nan; });
    check_refused("nan_exp_avg", "exp_avg", [&](Run& r) {
        const_cast<optim::AdamW<float>&>(r.trainer.optimizer()).exp_avg()[first_moment(r)] = nan;
    });
    check_refused("inf_exp_avg_sq", "exp_avg_sq", [&](Run& r) {
        const_cast<optim::AdamW<float>&>(r.trainer.optimizer()).exp_avg_sq()[first_moment(r)] = inf;
    });
}

TEST_CASE("resume refuses a run configured differently and lists the differences; allow_config_change continues") {
    const fs::path dir = fresh_dir("config");
    {
        Run a;
        a.train(3);
        a.trainer.save(dir);
    }
    // the same configuration resumes
    {
        Run b(1, 77);
        CHECK_NOTHROW(b.trainer.load(dir));
    }
    // another lr and mask ratio: refused, naming both settings and their values
    train::TrainConfig changed = config();
    changed.blr = 2e-2;
    ModelSpec spec = tiny();
    spec.mask_ratio = 0.8;
    {
        LcmaeModel<float> m(spec, 1);
        train::Trainer<float> t(m, changed, 8);
        try {
            t.load(dir);
            FAIL("a changed configuration was accepted");
        } catch (const Error& e) {
            const std::string msg = e.what();
            INFO(msg);
            CHECK(msg.find("2 setting(s)") != std::string::npos);
            CHECK(msg.find("blr 0.01 -> 0.02") != std::string::npos);
            CHECK(msg.find("mask_ratio 0.75 -> 0.80000000000000004") != std::string::npos);
            CHECK(t.step() == 0);  // nothing was restored
        }
    }
    // another loss with the same tensors (cosine -> InfoNCE) is refused too
    {
        ModelSpec s = tiny();
        s.loss = GuidanceLoss::InfoNCE;
        LcmaeModel<float> m(s, 1);
        train::Trainer<float> t(m, config(), 8);
        CHECK_THROWS_WITH_AS(t.load(dir), doctest::Contains("loss 1 -> 2"), Error);
    }
    // an explicit allow continues (the differences go to stderr as a warning)
    {
        changed.allow_config_change = true;
        LcmaeModel<float> m(spec, 1);
        train::Trainer<float> t(m, changed, 8);
        CHECK_NOTHROW(t.load(dir));
        CHECK(t.step() == 3);
    }
    fs::remove_all(dir);
}
