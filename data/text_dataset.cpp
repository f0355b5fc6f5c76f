// Character-level text: reading, vocabulary, split, windows.
#include "data/text_dataset.hpp"

#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "data/file_io.hpp"

namespace troupe {

std::string read_text_file(const std::string& path) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path);
  return std::string(bytes.begin(), bytes.end());
}

std::string read_command_output(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run `" + command + "`: " + std::strerror(errno));
  std::string out;
  char buffer[1 << 16];
  std::size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, got);
  const int status = pclose(pipe);
  if (status == -1) throw std::runtime_error("`" + command + "`: " + std::strerror(errno));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error("`" + command + "` failed (" +
                             (WIFEXITED(status)
                                  ? "exit status " + std::to_string(WEXITSTATUS(status))
                                  : std::string("killed by a signal")) +
                             "; exit status 127 means the command was not found)");
  if (out.empty()) throw std::runtime_error("`" + command + "` printed nothing");
  return out;
}

std::string load_kjv_text(const std::string& path) {
  if (!path.empty()) return read_text_file(path);
  try {
    return read_command_output(std::string(kKjvCommand));
  } catch (const std::runtime_error& error) {
    throw std::runtime_error(std::string(error.what()) +
                             "; install the KJV text with tools/setup.sh (Debian packages "
                             "bible-kjv, bible-kjv-text) or set data.path to a text file");
  }
}

CharVocab CharVocab::from_text(std::string_view text) {
  if (text.empty()) throw std::invalid_argument("CharVocab::from_text: the text is empty");
  bool present[256] = {};
  for (char c : text) present[static_cast<unsigned char>(c)] = true;
  std::string chars;
  for (int b = 0; b < 256; ++b)
    if (present[b]) chars.push_back(static_cast<char>(b));
  return CharVocab(std::move(chars));
}

CharVocab::CharVocab(std::string chars) : chars_(std::move(chars)) {
  if (chars_.empty()) throw std::invalid_argument("CharVocab: no characters");
  std::fill(std::begin(ids_), std::end(ids_), -1);
  for (std::size_t i = 0; i < chars_.size(); ++i) {
    const auto byte = static_cast<unsigned char>(chars_[i]);
    if (i > 0 && byte <= static_cast<unsigned char>(chars_[i - 1]))
      throw std::invalid_argument("CharVocab: characters must be strictly increasing bytes; byte " +
                                  std::to_string(byte) + " at position " + std::to_string(i) +
                                  " is not");
    ids_[byte] = static_cast<std::int32_t>(i);
  }
}

std::int32_t CharVocab::encode(char c) const {
  const std::int32_t id = ids_[static_cast<unsigned char>(c)];
  if (id < 0)
    throw std::invalid_argument(
        "CharVocab::encode: byte " + std::to_string(static_cast<unsigned char>(c)) +
        " is not in the vocabulary of " + std::to_string(size()) + " characters");
  return id;
}

std::vector<std::int32_t> CharVocab::encode(std::string_view text) const {
  std::vector<std::int32_t> ids;
  ids.reserve(text.size());
  for (char c : text) ids.push_back(encode(c));
  return ids;
}

std::string CharVocab::decode(std::span<const std::int32_t> ids) const {
  std::string text;
  text.reserve(ids.size());
  for (std::int32_t id : ids) {
    if (id < 0 || id >= size())
      throw std::out_of_range("CharVocab::decode: id " + std::to_string(id) + " is outside [0, " +
                              std::to_string(size()) + ")");
    text.push_back(chars_[static_cast<std::size_t>(id)]);
  }
  return text;
}

TokenSplit split_tokens(std::span<const std::int32_t> tokens, double validation_fraction) {
  if (!(validation_fraction >= 0.0 && validation_fraction < 1.0))
    throw std::invalid_argument("split_tokens: validation_fraction must be in [0, 1), got " +
                                std::to_string(validation_fraction));
  const auto n = tokens.size();
  const auto validation = static_cast<std::size_t>(static_cast<double>(n) * validation_fraction);
  TokenSplit out;
  out.train.assign(tokens.begin(), tokens.end() - static_cast<std::ptrdiff_t>(validation));
  out.validation.assign(tokens.end() - static_cast<std::ptrdiff_t>(validation), tokens.end());
  return out;
}

TokenWindows::TokenWindows(std::vector<std::int32_t> tokens, std::int64_t seq_len,
                           std::int64_t stride)
    : tokens_(std::move(tokens)), seq_len_(seq_len), stride_(stride == 0 ? seq_len : stride) {
  if (seq_len < 1)
    throw std::invalid_argument("TokenWindows: seq_len must be >= 1, got " +
                                std::to_string(seq_len));
  if (stride_ < 1)
    throw std::invalid_argument("TokenWindows: stride must be >= 1 (0 = seq_len), got " +
                                std::to_string(stride));
  const auto n = static_cast<std::int64_t>(tokens_.size());
  if (n < seq_len + 1)
    throw std::invalid_argument(
        "TokenWindows: " + std::to_string(n) +
        " tokens do not hold one window of seq_len + 1 = " + std::to_string(seq_len + 1));
  // Window starts s = i · stride with s + seq_len + 1 <= n.
  windows_ = (n - seq_len - 1) / stride_ + 1;
}

void TokenWindows::gather(std::span<const std::int64_t> indices, Tensor& inputs,
                          Tensor& targets) const {
  check_indices("TokenWindows::gather", indices, windows_);
  const auto n = static_cast<std::int64_t>(indices.size());
  inputs = Tensor::empty({n, seq_len_}, DType::i32);
  targets = Tensor::empty({n, seq_len_}, DType::i32);
  std::int32_t* x = inputs.data<std::int32_t>();
  std::int32_t* y = targets.data<std::int32_t>();
  const auto len = static_cast<std::size_t>(seq_len_);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int32_t* start = tokens_.data() + indices[static_cast<std::size_t>(i)] * stride_;
    std::copy(start, start + len, x + static_cast<std::size_t>(i) * len);
    std::copy(start + 1, start + len + 1, y + static_cast<std::size_t>(i) * len);
  }
}

}  // namespace troupe
