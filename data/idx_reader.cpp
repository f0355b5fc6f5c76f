// IDX (MNIST-format) parsing and the Fashion-MNIST loader.
#include "data/idx_reader.hpp"

#include <cstdio>
#include <stdexcept>

#include "data/file_io.hpp"

namespace troupe {

namespace {

std::uint32_t big_endian_u32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

std::string hex32(std::uint32_t value) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "0x%08X", value);
  return buffer;
}

// "<dir>/<name>.gz" if present, else "<dir>/<name>".
std::string find_idx_file(const std::string& dir, const std::string& name) {
  const std::string gz = dir + "/" + name + ".gz";
  if (file_exists(gz)) return gz;
  const std::string plain = dir + "/" + name;
  if (file_exists(plain)) return plain;
  throw std::runtime_error("Fashion-MNIST: neither " + gz + " nor " + plain +
                           " exists; install the dataset with tools/setup.sh (Debian package "
                           "dataset-fashion-mnist) or point data.path at a directory holding it");
}

}  // namespace

IdxArray parse_idx(const std::vector<std::uint8_t>& bytes, int expected_dims,
                   const std::string& path) {
  const std::uint32_t expected_magic = 0x00000800u | static_cast<std::uint32_t>(expected_dims);
  if (bytes.size() < 4)
    throw std::runtime_error(path + ": truncated IDX file (" + std::to_string(bytes.size()) +
                             " bytes, no room for the magic number)");
  const std::uint32_t magic = big_endian_u32(bytes.data());
  if (magic != expected_magic)
    throw std::runtime_error(path + ": bad IDX magic number " + hex32(magic) + ", expected " +
                             hex32(expected_magic) + " (unsigned bytes, " +
                             std::to_string(expected_dims) + " dimension" +
                             (expected_dims == 1 ? "" : "s") + ")");
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(expected_dims);
  if (bytes.size() < header)
    throw std::runtime_error(path + ": truncated IDX header (" + std::to_string(bytes.size()) +
                             " bytes, the header needs " + std::to_string(header) + ")");
  IdxArray out;
  std::uint64_t count = 1;
  for (int d = 0; d < expected_dims; ++d) {
    const std::uint32_t extent = big_endian_u32(bytes.data() + 4 + 4 * d);
    out.dims.push_back(extent);
    count *= extent;
  }
  const std::uint64_t available = bytes.size() - header;
  if (available != count)
    throw std::runtime_error(path +
                             (available < count ? ": truncated IDX data: "
                                                : ": IDX data longer than its header says: ") +
                             "the header promises " + std::to_string(count) +
                             " values, the file holds " + std::to_string(available));
  out.values.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return out;
}

IdxArray read_idx(const std::string& path, int expected_dims) {
  return parse_idx(read_file_bytes(path), expected_dims, path);
}

ImageDataset load_idx_dataset(const std::string& images_path, const std::string& labels_path,
                              std::int64_t num_classes, const ImageNormalization& normalization) {
  IdxArray images = read_idx(images_path, 3);
  IdxArray labels = read_idx(labels_path, 1);
  if (images.dims[0] != labels.dims[0])
    throw std::runtime_error(images_path + " holds " + std::to_string(images.dims[0]) +
                             " images but " + labels_path + " holds " +
                             std::to_string(labels.dims[0]) + " labels");
  std::vector<std::int32_t> label_values(labels.values.begin(), labels.values.end());
  for (std::size_t i = 0; i < label_values.size(); ++i)
    if (label_values[i] >= num_classes)
      throw std::runtime_error(labels_path + ": label " + std::to_string(label_values[i]) +
                               " of item " + std::to_string(i) + " is outside [0, " +
                               std::to_string(num_classes) + ")");
  return ImageDataset(std::move(images.values), std::move(label_values), 1, images.dims[1],
                      images.dims[2], num_classes, normalization);
}

ImageDataset load_fashion_mnist(const std::string& dir, DataSplit split) {
  const std::string prefix = split == DataSplit::train ? "train" : "t10k";
  const std::string images = find_idx_file(dir, prefix + "-images-idx3-ubyte");
  const std::string labels = find_idx_file(dir, prefix + "-labels-idx1-ubyte");
  return load_idx_dataset(images, labels, 10, fashion_mnist_normalization());
}

}  // namespace troupe
