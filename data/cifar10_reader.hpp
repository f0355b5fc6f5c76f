// Reader for CIFAR-10's binary version (cifar-10-batches-bin): each file is a sequence of 3073-byte
// records, one label byte (0..9) then 3072 pixel bytes: the 1024 red values of the 32×32 image in
// row-major order, then green, then blue, which is exactly the CHW layout troupe's models take.
// The standard files hold 10,000 records each; any whole number of records is accepted.
#pragma once

#include <string>
#include <vector>

#include "data/image_dataset.hpp"

namespace troupe {

// The records of every file, in order, as 3 × 32 × 32 images normalised with
// cifar10_normalization(). Throws std::runtime_error naming the file when its length is not a
// positive multiple of 3073 or a label exceeds 9.
ImageDataset load_cifar10_files(const std::vector<std::string>& paths);

// train: data_batch_1.bin … data_batch_5.bin, test: test_batch.bin, all in `dir`.
ImageDataset load_cifar10(const std::string& dir, DataSplit split);

}  // namespace troupe
