// lcmae/data/all.hpp - everything of the data target in one include, for applications (the
// library's own headers include exactly what they use).
#pragma once

#include "lcmae/data/cifar.hpp"
#include "lcmae/data/dataset.hpp"
#include "lcmae/data/idx.hpp"
#include "lcmae/data/image_folder.hpp"
#include "lcmae/data/loader.hpp"
#include "lcmae/data/transforms.hpp"
#include "lcmae/data/views.hpp"
#include "lcmae/policies/crop.hpp"
