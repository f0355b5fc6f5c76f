// CIFAR-10 binary batches → ImageDataset.
#include "data/cifar10_reader.hpp"

#include <stdexcept>

#include "data/file_io.hpp"

namespace troupe {

namespace {
constexpr std::size_t kImageBytes = 3 * 32 * 32;
constexpr std::size_t kRecordBytes = 1 + kImageBytes;
constexpr int kClasses = 10;
}  // namespace

ImageDataset load_cifar10_files(const std::vector<std::string>& paths) {
  if (paths.empty()) throw std::invalid_argument("load_cifar10_files: no files given");
  std::vector<std::uint8_t> pixels;
  std::vector<std::int32_t> labels;
  for (const auto& path : paths) {
    if (!file_exists(path))
      throw std::runtime_error(path +
                               ": no such file (CIFAR-10 cannot be downloaded here: copy "
                               "the binary version's *.bin files into that directory)");
    const std::vector<std::uint8_t> bytes = read_file_bytes(path);
    if (bytes.empty() || bytes.size() % kRecordBytes != 0)
      throw std::runtime_error(path + ": " + std::to_string(bytes.size()) +
                               " bytes is not a positive multiple of the 3073-byte CIFAR-10 "
                               "record (truncated or not a CIFAR-10 binary batch)");
    const std::size_t records = bytes.size() / kRecordBytes;
    pixels.reserve(pixels.size() + records * kImageBytes);
    for (std::size_t r = 0; r < records; ++r) {
      const std::uint8_t* record = bytes.data() + r * kRecordBytes;
      if (record[0] >= kClasses)
        throw std::runtime_error(path + ": record " + std::to_string(r) + " has label " +
                                 std::to_string(record[0]) + ", outside [0, 10)");
      labels.push_back(record[0]);
      pixels.insert(pixels.end(), record + 1, record + kRecordBytes);
    }
  }
  return ImageDataset(std::move(pixels), std::move(labels), 3, 32, 32, kClasses,
                      cifar10_normalization());
}

ImageDataset load_cifar10(const std::string& dir, DataSplit split) {
  std::vector<std::string> paths;
  if (split == DataSplit::train) {
    for (int i = 1; i <= 5; ++i) paths.push_back(dir + "/data_batch_" + std::to_string(i) + ".bin");
  } else {
    paths.push_back(dir + "/test_batch.bin");
  }
  return load_cifar10_files(paths);
}

}  // namespace troupe
