// The 64-byte aligned CPU allocator and Storage's lifetime.
#include "memory/allocator.hpp"

#include <bit>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace troupe {
namespace {

// Blocks given back while their last use was still running, in the order they were given back.
struct PendingBlock {
  void* ptr;
  std::size_t size;
  Readiness last_use;
};

// Moves the pending blocks whose use has completed out of `pending` (caller holds the lock).
std::vector<PendingBlock> take_completed(std::vector<PendingBlock>& pending) {
  std::vector<PendingBlock> done;
  std::erase_if(pending, [&](PendingBlock& b) {
    if (!b.last_use.ready()) return false;
    done.push_back(std::move(b));
    return true;
  });
  return done;
}

}  // namespace

std::string to_string(const Device& device) {
  switch (device.kind) {
    case DeviceKind::cpu:
      return "cpu";
    case DeviceKind::pinned_host:
      return "pinned_host";
    case DeviceKind::cuda:
      return "cuda:" + std::to_string(device.index);
  }
  return "unknown";
}

struct CpuAllocator::Parked {
  std::mutex mutex;
  std::vector<PendingBlock> blocks;

  void free_completed() {
    std::vector<PendingBlock> done;
    {
      std::lock_guard lock(mutex);
      if (blocks.empty()) return;
      done = take_completed(blocks);
    }
    for (auto& b : done) std::free(b.ptr);
  }
};

CpuAllocator::CpuAllocator() = default;
CpuAllocator::~CpuAllocator() = default;

void* CpuAllocator::allocate(std::size_t bytes) {
  if (parked_) parked_->free_completed();
  // aligned_alloc needs a size that is a multiple of the alignment.
  const std::size_t rounded = (bytes + alignment - 1) / alignment * alignment;
  void* ptr = std::aligned_alloc(alignment, rounded == 0 ? alignment : rounded);
  if (ptr == nullptr) throw std::bad_alloc();
  return ptr;
}

void CpuAllocator::deallocate(void* ptr, std::size_t bytes, const Readiness& last_use) noexcept {
  if (last_use.ready()) {
    std::free(ptr);
  } else {
    try {
      if (!parked_) parked_ = std::make_unique<Parked>();
      std::lock_guard lock(parked_->mutex);
      parked_->blocks.push_back({ptr, bytes, last_use});
    } catch (...) {
      // No memory to remember the block: leaking it is safe, freeing it under a running use is not.
    }
  }
  if (parked_) parked_->free_completed();
}

struct CachingCpuAllocator::Cache {
  std::size_t limit;
  mutable std::mutex mutex;
  std::unordered_map<std::size_t, std::vector<void*>> free_blocks;  // size class → blocks
  std::vector<PendingBlock> pending;  // given back before their last use completed
  std::size_t cached = 0;
  CpuAllocator system;

  // Moves pending blocks whose use has completed into the pool (caller holds the lock); returns
  // the ones that no longer fit under the limit, to be freed after the lock is released.
  std::vector<PendingBlock> settle_pending() {
    std::vector<PendingBlock> overflow;
    if (pending.empty()) return overflow;
    for (auto& b : take_completed(pending)) {
      if (cached + b.size <= limit) {
        free_blocks[b.size].push_back(b.ptr);
        cached += b.size;
      } else {
        overflow.push_back(std::move(b));
      }
    }
    return overflow;
  }
};

CachingCpuAllocator::CachingCpuAllocator(std::size_t cache_limit_bytes)
    : cache_(std::make_unique<Cache>()) {
  cache_->limit = cache_limit_bytes;
}

CachingCpuAllocator::~CachingCpuAllocator() {
  release_cached();
}

std::size_t CachingCpuAllocator::size_class(std::size_t bytes) {
  constexpr std::size_t line = CpuAllocator::alignment;
  if (bytes <= 4096) return bytes == 0 ? line : (bytes + line - 1) / line * line;
  // Four classes per octave: 2^n · {1, 1.25, 1.5, 1.75}.
  const std::size_t top = std::bit_floor(bytes);
  const std::size_t step = top / 4;
  return (bytes + step - 1) / step * step;
}

void* CachingCpuAllocator::allocate(std::size_t bytes) {
  const std::size_t size = size_class(bytes);
  void* reused = nullptr;
  std::vector<PendingBlock> overflow;
  {
    // Only bookkeeping under the lock: other actors allocate concurrently.
    std::lock_guard lock(cache_->mutex);
    overflow = cache_->settle_pending();
    auto it = cache_->free_blocks.find(size);
    if (it != cache_->free_blocks.end() && !it->second.empty()) {
      reused = it->second.back();
      it->second.pop_back();
      cache_->cached -= size;
    }
  }
  for (auto& b : overflow) cache_->system.deallocate(b.ptr, b.size, Readiness::done_on_cpu());
  if (reused == nullptr) return cache_->system.allocate(size);
  return reused;
}

void CachingCpuAllocator::deallocate(void* ptr, std::size_t bytes,
                                     const Readiness& last_use) noexcept {
  const std::size_t size = size_class(bytes);
  std::vector<PendingBlock> overflow;
  bool kept = false;
  {
    std::lock_guard lock(cache_->mutex);
    try {
      overflow = cache_->settle_pending();
      if (!last_use.ready()) {
        cache_->pending.push_back({ptr, size, last_use});
        kept = true;
      } else if (cache_->cached + size <= cache_->limit) {
        cache_->free_blocks[size].push_back(ptr);
        cache_->cached += size;
        kept = true;
      }
    } catch (...) {  // no memory for the bookkeeping: hand the block to the system allocator
    }
  }
  for (auto& b : overflow) cache_->system.deallocate(b.ptr, b.size, Readiness::done_on_cpu());
  if (!kept) cache_->system.deallocate(ptr, size, last_use);
}

std::size_t CachingCpuAllocator::cached_bytes() const {
  std::lock_guard lock(cache_->mutex);
  return cache_->cached;
}

void CachingCpuAllocator::release_cached() {
  std::unordered_map<std::size_t, std::vector<void*>> blocks;
  {
    std::lock_guard lock(cache_->mutex);
    for (auto& b : cache_->settle_pending())
      cache_->system.deallocate(b.ptr, b.size, Readiness::done_on_cpu());
    blocks.swap(cache_->free_blocks);
    cache_->cached = 0;
  }
  for (auto& [size, list] : blocks)
    for (void* ptr : list) cache_->system.deallocate(ptr, size, Readiness::done_on_cpu());
}

Allocator& cpu_allocator() {
  // Never destroyed: tensors in static objects may outlive any destruction order we could pick.
  static CachingCpuAllocator* instance = new CachingCpuAllocator();
  return *instance;
}

Storage::Storage(Allocator& allocator, std::size_t bytes)
    : allocator_(allocator), bytes_(bytes), data_(allocator.allocate(bytes)) {}

Storage::~Storage() {
  allocator_.deallocate(data_, bytes_, last_use_);
}

}  // namespace troupe
