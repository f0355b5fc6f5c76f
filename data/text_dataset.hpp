// Character-level text data for a language model: the text (from a file, or from a command such as
// `bible -f "Gen1:1-Rev22:21"`), a vocabulary of the bytes that occur in it, the text encoded as
// token ids, a contiguous train / validation split, and (input, next-token target) windows.
//
// Characters are bytes: the KJV text is ASCII, and a byte vocabulary needs no decoder state. The
// vocabulary is sorted by byte value, so the same text always gives the same ids.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "data/dataset.hpp"

namespace troupe {

// The King James Bible, Genesis 1:1 to Revelation 22:21, one verse per line (Debian's bible-kjv).
inline constexpr std::string_view kKjvCommand = "bible -f \"Gen1:1-Rev22:21\"";

std::string read_text_file(const std::string& path);  // gzip-compressed or plain
// Standard output of `command` run by /bin/sh. Throws std::runtime_error when it cannot start,
// exits with a non-zero status, or prints nothing.
std::string read_command_output(const std::string& command);
// data.path of a kjv_text config: a text file, or when empty the output of kKjvCommand.
std::string load_kjv_text(const std::string& path);

class CharVocab {
 public:
  // The distinct bytes of `text`, sorted. Throws std::invalid_argument for empty text.
  static CharVocab from_text(std::string_view text);
  // A vocabulary saved as its characters (strictly increasing bytes, e.g. from chars()).
  explicit CharVocab(std::string chars);

  std::int64_t size() const { return static_cast<std::int64_t>(chars_.size()); }
  const std::string& chars() const { return chars_; }

  // Throws std::invalid_argument for a character outside the vocabulary.
  std::int32_t encode(char c) const;
  std::vector<std::int32_t> encode(std::string_view text) const;
  // Throws std::out_of_range for an id outside [0, size()).
  std::string decode(std::span<const std::int32_t> ids) const;

 private:
  std::string chars_;
  std::int32_t ids_[256];  // byte → id, −1 when absent
};

struct TokenSplit {
  std::vector<std::int32_t> train;
  std::vector<std::int32_t> validation;
};

// Validation is the *last* floor(n · validation_fraction) tokens, contiguous, and train the rest:
// a random split of overlapping windows would put the same text on both sides (for the KJV, the
// last 5% is most of Revelation; the split is by position, not by book). validation_fraction in
// [0, 1); throws std::invalid_argument otherwise.
TokenSplit split_tokens(std::span<const std::int32_t> tokens, double validation_fraction);

// Training samples over a token sequence: sample i is the window starting at i · stride, inputs
// tokens[s, s + seq_len) and targets tokens[s + 1, s + seq_len + 1). With stride = seq_len (the
// default) the windows tile the text, so one epoch predicts every token once; a smaller stride
// overlaps them.
class TokenWindows final : public Dataset {
 public:
  // Throws std::invalid_argument when seq_len or stride < 1, or the tokens do not hold one window
  // (seq_len + 1 tokens).
  TokenWindows(std::vector<std::int32_t> tokens, std::int64_t seq_len, std::int64_t stride = 0);

  std::int64_t size() const override { return windows_; }
  std::int64_t seq_len() const { return seq_len_; }
  std::int64_t stride() const { return stride_; }
  const std::vector<std::int32_t>& tokens() const { return tokens_; }

  // inputs i32 [n, seq_len], targets i32 [n, seq_len].
  void gather(std::span<const std::int64_t> indices, Tensor& inputs,
              Tensor& targets) const override;

 private:
  std::vector<std::int32_t> tokens_;
  std::int64_t seq_len_;
  std::int64_t stride_;
  std::int64_t windows_;
};

}  // namespace troupe
