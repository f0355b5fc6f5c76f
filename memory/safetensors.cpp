// safetensors encoding and decoding (format summary in safetensors.hpp).
#include "memory/safetensors.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "memory/file_util.hpp"

namespace troupe {

// Tensor bytes go to disk exactly as they sit in memory, which is only the format's byte order on
// a little-endian host.
static_assert(std::endian::native == std::endian::little,
              "safetensors I/O assumes a little-endian host");

namespace {

using ordered_json = nlohmann::ordered_json;

constexpr const char* metadata_key = "__metadata__";
constexpr std::size_t header_length_bytes = 8;
constexpr std::size_t header_alignment = 8;

constexpr std::array<std::pair<DType, const char*>, 5> dtype_names = {{
    {DType::f32, "F32"},
    {DType::f16, "F16"},
    {DType::bf16, "BF16"},
    {DType::i32, "I32"},
    {DType::i64, "I64"},
}};

const char* safetensors_dtype_name(DType dtype) {
  for (const auto& [d, name] : dtype_names)
    if (d == dtype) return name;
  throw std::invalid_argument("save_safetensors: dtype " + std::string(dtype_name(dtype)) +
                              " has no safetensors name");
}

bool parse_safetensors_dtype(const std::string& name, DType& out) {
  for (const auto& [d, n] : dtype_names) {
    if (name == n) {
      out = d;
      return true;
    }
  }
  return false;
}

// Loader errors all start with the file, so a message from a batch of shards says which one.
class LoadError {
 public:
  explicit LoadError(const std::string& path) : prefix_("load_safetensors('" + path + "'): ") {}
  [[noreturn]] void invalid(const std::string& what) const {
    throw std::invalid_argument(prefix_ + what);
  }
  [[noreturn]] void out_of_range(const std::string& what) const {
    throw std::out_of_range(prefix_ + what);
  }
  [[noreturn]] void io(const std::string& what) const { throw std::runtime_error(prefix_ + what); }

 private:
  std::string prefix_;
};

// A JSON value that must be a non-negative integer, as a u64.
std::uint64_t as_count(const ordered_json& value, const std::string& what, const LoadError& err) {
  if (!value.is_number_integer() || (!value.is_number_unsigned() && value.get<std::int64_t>() < 0))
    err.invalid(what + " must be a non-negative integer, got " + value.dump());
  return value.get<std::uint64_t>();
}

struct HeaderEntry {
  std::string name;
  DType dtype;
  Shape shape;
  std::uint64_t begin;
  std::uint64_t end;
};

HeaderEntry parse_entry(const std::string& name, const ordered_json& info, std::uint64_t data_bytes,
                        const LoadError& err) {
  const std::string where = "tensor '" + name + "'";
  if (!info.is_object()) err.invalid(where + ": entry must be a JSON object, got " + info.dump());
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!info.contains(key)) err.invalid(where + ": missing \"" + key + "\"");

  HeaderEntry entry{name, DType::f32, {}, 0, 0};
  const auto& dtype = info["dtype"];
  if (!dtype.is_string() || !parse_safetensors_dtype(dtype.get<std::string>(), entry.dtype))
    err.invalid(where + ": unknown dtype " + dtype.dump() + " (allowed: F32, F16, BF16, I32, I64)");

  const auto& shape = info["shape"];
  if (!shape.is_array()) err.invalid(where + ": shape must be an array, got " + shape.dump());
  for (const auto& extent : shape) {
    std::uint64_t e = as_count(extent, where + ": shape extent", err);
    if (e > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      err.invalid(where + ": shape extent " + extent.dump() + " is too large");
    entry.shape.push_back(static_cast<std::int64_t>(e));
  }

  const auto& offsets = info["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    err.invalid(where + ": data_offsets must be [begin, end], got " + offsets.dump());
  entry.begin = as_count(offsets[0], where + ": data_offsets begin", err);
  entry.end = as_count(offsets[1], where + ": data_offsets end", err);
  if (entry.end < entry.begin)
    err.invalid(where + ": data_offsets " + offsets.dump() + " end before they begin");
  if (entry.end > data_bytes)
    err.out_of_range(where + ": data_offsets " + offsets.dump() + " reach past the " +
                     std::to_string(data_bytes) + "-byte data section (truncated file?)");

  // The byte count is bounded by the data section, so a shape needing more is rejected before
  // its element count can overflow.
  const std::uint64_t elem = dtype_size(entry.dtype);
  std::uint64_t numel = 1;
  if (std::find(entry.shape.begin(), entry.shape.end(), 0) != entry.shape.end()) numel = 0;
  for (std::int64_t e : entry.shape) {
    if (numel == 0) break;
    if (numel > data_bytes / elem / static_cast<std::uint64_t>(e))
      err.invalid(where + ": shape " + shape_string(entry.shape) + " holds more bytes than the " +
                  std::to_string(data_bytes) + "-byte data section");
    numel *= static_cast<std::uint64_t>(e);
  }
  if (numel * elem != entry.end - entry.begin)
    err.invalid(where + ": shape " + shape_string(entry.shape) + " of " + dtype.get<std::string>() +
                " needs " + std::to_string(numel * elem) + " bytes but data_offsets " +
                offsets.dump() + " give " + std::to_string(entry.end - entry.begin));
  return entry;
}

std::string byte_range(std::uint64_t begin, std::uint64_t end) {
  std::string out = "[";
  out += std::to_string(begin);
  out += ", ";
  out += std::to_string(end);
  out += ")";
  return out;
}

// The parsed JSON header of an open file and where its data section lies.
struct RawHeader {
  ordered_json json;
  std::uint64_t data_start = 0;
  std::uint64_t data_bytes = 0;
};

RawHeader read_header(std::ifstream& in, const std::string& path, const LoadError& err) {
  if (!in) err.io("cannot open the file");
  std::error_code ec;
  const std::uint64_t file_bytes = std::filesystem::file_size(path, ec);
  if (ec) err.io("cannot read the file size: " + ec.message());

  if (file_bytes < header_length_bytes)
    err.invalid("truncated: " + std::to_string(file_bytes) +
                " bytes, shorter than the 8-byte header length");
  std::array<unsigned char, header_length_bytes> length{};
  in.read(reinterpret_cast<char*>(length.data()), length.size());
  std::uint64_t header_bytes = 0;
  for (std::size_t i = 0; i < length.size(); ++i)
    header_bytes |= static_cast<std::uint64_t>(length[i]) << (8 * i);
  if (header_bytes > file_bytes - header_length_bytes)
    err.invalid("truncated: the header length is " + std::to_string(header_bytes) +
                " bytes but only " + std::to_string(file_bytes - header_length_bytes) +
                " bytes follow it");
  RawHeader out;
  out.data_start = header_length_bytes + header_bytes;
  out.data_bytes = file_bytes - out.data_start;

  std::string text(header_bytes, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (!in) err.io("reading the " + std::to_string(header_bytes) + "-byte header failed");
  try {
    out.json = ordered_json::parse(text);
  } catch (const ordered_json::parse_error& e) {
    err.invalid(std::string("bad header: not valid JSON (") + e.what() + ")");
  }
  if (!out.json.is_object())
    err.invalid("bad header: expected a JSON object, got " + out.json.dump());
  return out;
}

SafetensorsMetadata parse_metadata(const ordered_json& info, const LoadError& err) {
  if (!info.is_object()) err.invalid("bad header: __metadata__ must be an object");
  SafetensorsMetadata out;
  for (const auto& [key, value] : info.items()) {
    if (!value.is_string())
      err.invalid("bad header: __metadata__ value of '" + key + "' must be a string, got " +
                  value.dump());
    out[key] = value.get<std::string>();
  }
  return out;
}

}  // namespace

const Tensor& SafetensorsFile::at(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  throw std::out_of_range("SafetensorsFile::at: no tensor named '" + name + "'");
}

std::string safetensors_header(const NamedTensors& tensors, const SafetensorsMetadata& metadata) {
  ordered_json header = ordered_json::object();
  if (!metadata.empty()) {
    ordered_json meta = ordered_json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header[metadata_key] = std::move(meta);
  }
  std::set<std::string> names;
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    const std::string where = "save_safetensors: tensor '" + name + "'";
    if (name.empty())
      throw std::invalid_argument("save_safetensors: tensor names must not be empty");
    if (name == metadata_key)
      throw std::invalid_argument(where + ": the name is reserved for the file's metadata");
    if (!names.insert(name).second) throw std::invalid_argument(where + ": name appears twice");
    if (!tensor.defined()) throw std::invalid_argument(where + " is undefined");
    if (!tensor.device().is_host())
      throw std::invalid_argument(where + " lives on " + to_string(tensor.device()) +
                                  "; copy it to host memory first");
    if (!tensor.desc().is_contiguous())
      throw std::invalid_argument(where + " is not contiguous; clone a contiguous copy first");
    const std::uint64_t end = offset + tensor.nbytes();
    header[name] = {{"dtype", safetensors_dtype_name(tensor.dtype())},
                    {"shape", tensor.shape()},
                    {"data_offsets", {offset, end}}};
    offset = end;
  }

  std::string text = header.dump();
  text.append((header_alignment - text.size() % header_alignment) % header_alignment, ' ');
  std::string out(header_length_bytes, '\0');
  for (std::size_t i = 0; i < header_length_bytes; ++i)
    out[i] = static_cast<char>((static_cast<std::uint64_t>(text.size()) >> (8 * i)) & 0xff);
  return out + text;
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const SafetensorsMetadata& metadata,
                      const std::function<void()>& before_rename) {
  const std::string header = safetensors_header(tensors, metadata);
  write_atomically(
      path,
      [&](std::ostream& out) {
        out.write(header.data(), static_cast<std::streamsize>(header.size()));
        for (const auto& [name, tensor] : tensors)
          out.write(static_cast<const char*>(tensor.raw_data()),
                    static_cast<std::streamsize>(tensor.nbytes()));
      },
      before_rename);
}

SafetensorsFile load_safetensors(const std::string& path) {
  const LoadError err(path);
  std::ifstream in(path, std::ios::binary);
  const RawHeader header = read_header(in, path, err);
  const std::uint64_t data_start = header.data_start;
  const std::uint64_t data_bytes = header.data_bytes;

  SafetensorsFile file;
  std::vector<HeaderEntry> entries;
  for (const auto& [name, info] : header.json.items()) {
    if (name == metadata_key) {
      file.metadata = parse_metadata(info, err);
      continue;
    }
    entries.push_back(parse_entry(name, info, data_bytes, err));
  }

  // Stable, so zero-byte tensors sharing an offset keep their header order.
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::uint64_t expected = 0;
  const HeaderEntry* previous = nullptr;
  for (const auto& entry : entries) {
    const std::string range = byte_range(entry.begin, entry.end);
    if (entry.begin < expected)
      err.invalid("tensor '" + entry.name + "' bytes " + range + " overlap tensor '" +
                  previous->name + "', which ends at " + std::to_string(expected));
    if (entry.begin > expected)
      err.invalid("tensor '" + entry.name + "' bytes " + range + " leave a gap: the data before " +
                  "it ends at " + std::to_string(expected));
    expected = entry.end;
    previous = &entry;
  }
  if (expected != data_bytes)
    err.invalid("the tensors cover " + std::to_string(expected) + " bytes of the " +
                std::to_string(data_bytes) + "-byte data section; the rest belongs to no tensor");

  for (const auto& entry : entries) {
    Tensor tensor = Tensor::empty(entry.shape, entry.dtype);
    in.seekg(static_cast<std::streamoff>(data_start + entry.begin));
    in.read(static_cast<char*>(tensor.raw_data()), static_cast<std::streamsize>(tensor.nbytes()));
    if (!in) err.io("reading the data of tensor '" + entry.name + "' failed");
    file.tensors.emplace_back(entry.name, std::move(tensor));
  }
  return file;
}

SafetensorsMetadata load_safetensors_metadata(const std::string& path) {
  const LoadError err(path);
  std::ifstream in(path, std::ios::binary);
  const RawHeader header = read_header(in, path, err);
  const auto it = header.json.find(metadata_key);
  return it == header.json.end() ? SafetensorsMetadata{} : parse_metadata(*it, err);
}

}  // namespace troupe
