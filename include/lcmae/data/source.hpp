// lcmae/data/source.hpp - what the programs' `--data` argument names: a dataset, its train and
// test splits, its normalisation and the input geometry the main job's models use for it.
//
//   fashion-mnist     Debian's dataset-fashion-mnist (IDX files; the folder is a separate option)
//   cifar10:DIR       the CIFAR-10 binary batches in DIR (data_batch_1..5.bin, test_batch.bin)
//   DIR               a folder of images. With DIR/train (and DIR/test) it is the torchvision
//                     ImageFolder layout per split: DIR/train/<class>/<image>; without, every class
//                     sub-folder of DIR (or every image, unlabelled) is training data and there is
//                     no test split.
//
// `lcmae pretrain` trains on the train split; `lcmae eval` fits on the train split and scores the
// test split, so a labelled folder for eval needs DIR/train and DIR/test with the same classes.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "lcmae/core/error.hpp"
#include "lcmae/data/cifar.hpp"
#include "lcmae/data/dataset.hpp"
#include "lcmae/data/idx.hpp"
#include "lcmae/data/image_folder.hpp"
#include "lcmae/data/transforms.hpp"

namespace lcmae::data {

class DataSource {
public:
    enum class Kind { FashionMnist, Cifar10, Folder };

    /// Parses a `--data` value; `fashion_dir` is where the Fashion-MNIST IDX files are. Only the
    /// form is checked here; missing files are reported when a split is opened.
    static DataSource parse(const std::string& spec, const std::string& fashion_dir = kFashionMnistDir) {
        DataSource s;
        s.spec_ = spec;
        if (spec == "fashion-mnist") {
            s.kind_ = Kind::FashionMnist;
            s.dir_ = fashion_dir;
        } else if (spec.rfind("cifar10:", 0) == 0) {
            LCMAE_CHECK(spec.size() > 8, "--data cifar10:DIR needs the folder of the CIFAR-10 binary batches, got '" << spec << "'");
            s.kind_ = Kind::Cifar10;
            s.dir_ = spec.substr(8);
        } else {
            LCMAE_CHECK(!spec.empty(), "--data is empty (expected fashion-mnist, cifar10:DIR or a folder of images)");
            s.kind_ = Kind::Folder;
            s.dir_ = spec;
        }
        return s;
    }

    Kind kind() const { return kind_; }
    const std::string& spec() const { return spec_; }
    const std::string& dir() const { return dir_; }

    /// The per-channel statistics images are normalised with (ImageNet's for folders, as MAE).
    Normalization normalization() const {
        switch (kind_) {
            case Kind::FashionMnist: return Normalization::fashion_mnist();
            case Kind::Cifar10: return Normalization::cifar10();
            default: return Normalization::imagenet();
        }
    }
    /// The main job's input geometry for this data: 28 px gray for Fashion-MNIST, 32 px RGB else.
    int image_size() const { return kind_ == Kind::FashionMnist ? 28 : 32; }
    int channels() const { return kind_ == Kind::FashionMnist ? 1 : 3; }

    /// A folder with DIR/train: the split layout.
    bool folder_has_splits() const { return kind_ == Kind::Folder && std::filesystem::is_directory(std::filesystem::path(dir_) / "train"); }

    /// The training split (train = true) or the test split; null when the data has no test split
    /// (a folder without DIR/test). A split-layout folder's test classes must equal its train
    /// classes, or labels would mean different things in the two.
    std::shared_ptr<const Dataset> open(bool train, ImageFolderOptions folder_options = {}) const {
        namespace fs = std::filesystem;
        switch (kind_) {
            case Kind::FashionMnist: return load_fashion_mnist(train, dir_);
            case Kind::Cifar10: return load_cifar10(dir_, train);
            case Kind::Folder: break;
        }
        if (!folder_has_splits()) {
            if (!train) return nullptr;
            return std::make_shared<ImageFolder>(dir_, folder_options);
        }
        const fs::path split = fs::path(dir_) / (train ? "train" : "test");
        if (!train && !fs::is_directory(split)) return nullptr;
        auto ds = std::make_shared<ImageFolder>(split.string(), folder_options);
        if (!train) {
            const ImageFolder tr((fs::path(dir_) / "train").string(), folder_options);
            LCMAE_CHECK(tr.classes() == ds->classes(),
                        "image folder " << dir_ << ": the classes of test/ (" << join(ds->classes()) << ") differ from those of train/ ("
                                        << join(tr.classes()) << "); both splits need the same class sub-folders");
        }
        return ds;
    }

private:
    static std::string join(const std::vector<std::string>& v) {
        std::string out;
        for (std::size_t i = 0; i < v.size() && i < 12; ++i) out += (i ? ", " : "") + v[i];
        if (v.size() > 12) out += ", ... (" + std::to_string(v.size()) + " in all)";
        return out.empty() ? "none: unlabelled" : out;
    }

    Kind kind_ = Kind::FashionMnist;
    std::string spec_, dir_;
};

}  // namespace lcmae::data
