// ScratchPool: best-fit reuse of the buffers given back, with a bound on what it keeps.
#include "comm/scratch_pool.hpp"

#include <algorithm>

namespace troupe {

namespace {
// Enough for the staging of several collectives in flight on a group of a few ranks; beyond it
// the smallest buffers are released.
constexpr std::size_t max_free_buffers = 32;
}  // namespace

ScratchPool::Buffer::~Buffer() {
  if (pool_ && storage_.bytes) pool_->give_back(std::move(storage_));
}

ScratchPool::Buffer ScratchPool::acquire(std::size_t bytes) {
  Storage storage;
  {
    std::lock_guard lock(mutex_);
    auto best = free_.end();
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (it->size >= bytes && (best == free_.end() || it->size < best->size)) best = it;
    }
    if (best != free_.end()) {
      storage = std::move(*best);
      free_.erase(best);
    }
  }
  if (storage.size < bytes) {
    // Never zero-size, so that data() is a valid address even for empty chunks.
    storage.size = std::max<std::size_t>(bytes, 1);
    storage.bytes.reset(new std::byte[storage.size]);
  }
  return Buffer(shared_from_this(), std::move(storage));
}

void ScratchPool::give_back(Storage storage) {
  std::lock_guard lock(mutex_);
  if (free_.size() < max_free_buffers) {
    free_.push_back(std::move(storage));
    return;
  }
  // Full: keep the larger buffers, which serve every request the smaller ones could (a pool full
  // of small buffers would make every large operation allocate afresh).
  auto smallest =
      std::min_element(free_.begin(), free_.end(),
                       [](const Storage& a, const Storage& b) { return a.size < b.size; });
  if (smallest->size < storage.size) *smallest = std::move(storage);
}

}  // namespace troupe
