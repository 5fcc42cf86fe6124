// show_views: writes a PNG grid of LC-MAE view pairs for a few Fashion-MNIST images, so a person
// can see the augmentations. Columns are images; rows are the source image, view u (online:
// simple resized crop + flip) and view v (target: crop + flip + colour jitter + one of grayscale /
// solarize / blur). Tiles are enlarged with nearest-neighbour sampling so pixels stay visible.
//
//   show_views out.png [count=8] [image_size=28] [epoch=0] [data_dir=/usr/share/datasets/fashion-mnist]
#include <cstdio>
#include <cstdlib>
#include <string>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "lcmae/data/idx.hpp"
#include "lcmae/data/loader.hpp"

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s out.png [count=8] [image_size=28] [epoch=0] [data_dir]\n", argv[0]);
        return 2;
    }
    try {
        const std::string out = argv[1];
        const int count = argc > 2 ? std::atoi(argv[2]) : 8;
        const int size = argc > 3 ? std::atoi(argv[3]) : 28;
        const std::uint64_t epoch = argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 0;
        const std::string dir = argc > 5 ? argv[5] : lcmae::data::kFashionMnistDir;
        LCMAE_CHECK(count > 0 && count <= 256, "count must be in [1, 256], got " << count);

        auto ds = lcmae::data::load_fashion_mnist(true, dir);
        lcmae::data::LoaderConfig cfg;
        cfg.batch = 1;
        cfg.image_size = size;
        cfg.channels = 1;
        cfg.threads = 1;
        lcmae::data::Loader<lcmae::crop::SimpleResized> loader(ds, cfg);

        const int scale = std::max(1, 112 / size), tile = size * scale, gap = 4;
        cv::Mat grid(3 * tile + 4 * gap, count * tile + (count + 1) * gap, CV_8UC1, cv::Scalar(255));
        auto put = [&](const cv::Mat& img, int row, int col) {
            cv::Mat gray = img.channels() == 3 ? lcmae::data::to_gray(img) : img, big;
            cv::resize(gray, big, cv::Size(tile, tile), 0, 0, cv::INTER_NEAREST);
            big.copyTo(grid(cv::Rect(gap + col * (tile + gap), gap + row * (tile + gap), tile, tile)));
        };
        for (int i = 0; i < count; ++i) {
            cv::Mat u, v;
            loader.make_views(i, epoch, u, v);
            put(lcmae::data::resize_shorter(ds->image(static_cast<std::size_t>(i)), size), 0, i);
            put(u, 1, i);
            put(v, 2, i);
        }
        LCMAE_CHECK(cv::imwrite(out, grid), "cannot write " << out);
        std::printf("wrote %s: %d images; rows: source, view u (online), view v (target)\n", out.c_str(), count);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}
