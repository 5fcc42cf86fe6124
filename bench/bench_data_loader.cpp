// Loader throughput (issue 4): images/s of LC-MAE pairs (u and v per image) on Fashion-MNIST and on
// a folder of JPEG images that the benchmark generates in a temporary directory, at 32 px and
// 224 px, with 1 and 2 worker threads. Time is wall-clock (the work happens in the workers); the
// consumer only takes batches, so this is the rate the loader can sustain.
//
//   bench_data_loader [--benchmark_filter=...]   (env LCMAE_BENCH_JPEGS: number of JPEGs, default 512)
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <unistd.h>

#include "lcmae/data/idx.hpp"
#include "lcmae/data/image_folder.hpp"
#include "lcmae/data/loader.hpp"

namespace {
using namespace lcmae;
using namespace lcmae::data;

std::shared_ptr<const Dataset> fashion_mnist() {
    static std::shared_ptr<const Dataset> ds = load_fashion_mnist(true);
    return ds;
}

/// A folder of 500x375 JPEGs (ImageNet's typical size) in 10 classes: smooth gradients plus a few
/// shapes and noise, so they compress and decode like photographs rather than flat colour.
struct JpegFolder {
    std::filesystem::path root;
    std::shared_ptr<const Dataset> ds;
    JpegFolder() {
        const char* env = std::getenv("LCMAE_BENCH_JPEGS");
        const int n = env ? std::atoi(env) : 512;
        root = std::filesystem::temp_directory_path() / ("lcmae_bench_jpeg_" + std::to_string(::getpid()));
        Rng rng(7, 0);
        for (int i = 0; i < n; ++i) {
            const auto dir = root / ("class_" + std::to_string(i % 10));
            std::filesystem::create_directories(dir);
            cv::Mat img(375, 500, CV_8UC3);
            const double a = rng.uniform(0, 255), b = rng.uniform(0, 255), c = rng.uniform(0, 255);
            for (int y = 0; y < img.rows; ++y)
                for (int x = 0; x < img.cols; ++x)
                    img.at<cv::Vec3b>(y, x) = cv::Vec3b(cv::saturate_cast<uchar>(a + 0.3 * x - 0.2 * y),
                                                        cv::saturate_cast<uchar>(b + 0.4 * y),
                                                        cv::saturate_cast<uchar>(c - 0.25 * x));
            for (int s = 0; s < 12; ++s)
                cv::circle(img, {int(rng.below(500)), int(rng.below(375))}, 10 + int(rng.below(60)),
                           cv::Scalar(double(rng.below(256)), double(rng.below(256)), double(rng.below(256))), -1);
            cv::Mat noise(img.size(), CV_8UC3);
            cv::randn(noise, 0, 12);
            img += noise;
            cv::imwrite((dir / ("img_" + std::to_string(i) + ".jpg")).string(), img, {cv::IMWRITE_JPEG_QUALITY, 90});
        }
        ds = std::make_shared<ImageFolder>(root.string());
    }
    ~JpegFolder() {
        std::error_code ec;
        std::filesystem::remove_all(root, ec);
    }
};
JpegFolder& jpeg_folder() {
    static JpegFolder f;
    return f;
}

// Args: dataset (0 Fashion-MNIST, 1 JPEG folder), image size, threads, reduced JPEG decoding.
void BM_LoaderPair(benchmark::State& state) {
    cv::setNumThreads(1);
    std::shared_ptr<const Dataset> ds = state.range(0) == 0 ? fashion_mnist() : jpeg_folder().ds;
    LoaderConfig cfg;
    cfg.image_size = static_cast<int>(state.range(1));
    cfg.threads = static_cast<int>(state.range(2));
    cfg.batch = 64;
    cfg.channels = state.range(0) == 0 ? 1 : 3;
    cfg.views = Views::Pair;
    cfg.reduced_decode = state.range(3) != 0;
    Loader<crop::SimpleResized> loader(ds, cfg);
    std::uint64_t epoch = 0;
    loader.start_epoch(epoch);
    std::int64_t images = 0;
    for (auto _ : state) {
        const Batch* b = loader.next();
        if (b == nullptr) {
            loader.start_epoch(++epoch);
            b = loader.next();
        }
        benchmark::DoNotOptimize(b->view1[0]);
        images += b->size;
    }
    state.SetItemsProcessed(images);
    state.SetLabel(std::string(state.range(0) == 0 ? "fashion-mnist" : "jpeg-500x375") + " " +
                   std::to_string(cfg.image_size) + "px pair, " + std::to_string(cfg.threads) + " thread(s)" +
                   (state.range(0) == 1 && !cfg.reduced_decode ? ", full decode" : ""));
}
BENCHMARK(BM_LoaderPair)
    ->ArgNames({"jpeg", "px", "threads", "reduced"})
    ->ArgsProduct({{0, 1}, {32, 224}, {1, 2}, {1}})
    ->ArgsProduct({{1}, {32}, {1, 2}, {0}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);

// One sample's pair, no loader: what one core spends per image (Fashion-MNIST).
void BM_PairOneSample(benchmark::State& state) {
    cv::setNumThreads(1);
    LoaderConfig cfg;
    cfg.image_size = static_cast<int>(state.range(0));
    cfg.batch = 1;
    cfg.threads = 1;
    cfg.channels = 1;
    Loader<crop::SimpleResized> loader(fashion_mnist(), cfg);
    std::vector<float> a(loader.sample_floats()), b(loader.sample_floats());
    std::int64_t i = 0;
    for (auto _ : state) {
        loader.make_sample(i % 60000, 0, a.data(), b.data());
        ++i;
    }
    state.SetItemsProcessed(i);
}
BENCHMARK(BM_PairOneSample)->Arg(28)->Arg(32)->Arg(224)->Unit(benchmark::kMicrosecond);
}  // namespace

BENCHMARK_MAIN();
