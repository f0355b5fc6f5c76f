// CPU embedding lookup and its scatter-add backward (see embedding.hpp).
#include "kernels/cpu/embedding.hpp"

#include <cstring>
#include <stdexcept>
#include <string>

namespace troupe::cpu {
namespace {

[[noreturn]] void throw_bad_id(const char* function, std::int64_t i, std::int32_t id,
                               const std::string& allowed) {
  throw std::out_of_range(std::string(function) + ": ids[" + std::to_string(i) +
                          "] = " + std::to_string(id) + " is outside " + allowed);
}

}  // namespace

void embedding_forward(const std::int32_t* ids, const float* table, float* out, std::int64_t count,
                       std::int64_t vocab, std::int64_t dim) {
  // All ids are checked before the first copy, so a bad batch leaves out untouched.
  for (std::int64_t i = 0; i < count; ++i) {
    if (ids[i] < 0 || ids[i] >= vocab) {
      throw_bad_id("embedding_forward", i, ids[i], "[0, vocab = " + std::to_string(vocab) + ")");
    }
  }
  const auto row_bytes = static_cast<std::size_t>(dim) * sizeof(float);
  for (std::int64_t i = 0; i < count; ++i) {
    std::memcpy(out + i * dim, table + static_cast<std::int64_t>(ids[i]) * dim, row_bytes);
  }
}

void embedding_backward(const std::int32_t* ids, const float* dout, float* dtable,
                        std::int64_t count, std::int64_t dim) {
  for (std::int64_t i = 0; i < count; ++i) {
    if (ids[i] < 0) throw_bad_id("embedding_backward", i, ids[i], "[0, vocab)");
  }
  for (std::int64_t i = 0; i < count; ++i) {
    float* row = dtable + static_cast<std::int64_t>(ids[i]) * dim;
    const float* d = dout + i * dim;
    for (std::int64_t c = 0; c < dim; ++c) row[c] += d[c];
  }
}

}  // namespace troupe::cpu
