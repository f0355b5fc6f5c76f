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

void* CpuAllocator::allocate(std::size_t bytes) {
  // aligned_alloc needs a size that is a multiple of the alignment.
  const std::size_t rounded = (bytes + alignment - 1) / alignment * alignment;
  void* ptr = std::aligned_alloc(alignment, rounded == 0 ? alignment : rounded);
  if (ptr == nullptr) throw std::bad_alloc();
  std::memset(ptr, 0, rounded == 0 ? alignment : rounded);
  return ptr;
}

void CpuAllocator::deallocate(void* ptr, std::size_t) noexcept {
  std::free(ptr);
}

struct CachingCpuAllocator::Cache {
  std::size_t limit;
  mutable std::mutex mutex;
  std::unordered_map<std::size_t, std::vector<void*>> free_blocks;  // size class → blocks
  std::size_t cached = 0;
  CpuAllocator system;
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
  {
    std::lock_guard lock(cache_->mutex);
    auto it = cache_->free_blocks.find(size);
    if (it != cache_->free_blocks.end() && !it->second.empty()) {
      void* ptr = it->second.back();
      it->second.pop_back();
      cache_->cached -= size;
      std::memset(ptr, 0, size);
      return ptr;
    }
  }
  return cache_->system.allocate(size);
}

void CachingCpuAllocator::deallocate(void* ptr, std::size_t bytes) noexcept {
  const std::size_t size = size_class(bytes);
  {
    std::lock_guard lock(cache_->mutex);
    if (cache_->cached + size <= cache_->limit) {
      try {
        cache_->free_blocks[size].push_back(ptr);
        cache_->cached += size;
        return;
      } catch (...) {  // no memory for the bookkeeping: free the block instead
      }
    }
  }
  cache_->system.deallocate(ptr, size);
}

std::size_t CachingCpuAllocator::cached_bytes() const {
  std::lock_guard lock(cache_->mutex);
  return cache_->cached;
}

void CachingCpuAllocator::release_cached() {
  std::lock_guard lock(cache_->mutex);
  for (auto& [size, blocks] : cache_->free_blocks)
    for (void* ptr : blocks) cache_->system.deallocate(ptr, size);
  cache_->free_blocks.clear();
  cache_->cached = 0;
}

Allocator& cpu_allocator() {
  // Never destroyed: tensors in static objects may outlive any destruction order we could pick.
  static CachingCpuAllocator* instance = new CachingCpuAllocator();
  return *instance;
}

Storage::Storage(Allocator& allocator, std::size_t bytes)
    : allocator_(allocator), bytes_(bytes), data_(allocator.allocate(bytes)) {}

Storage::~Storage() {
  allocator_.deallocate(data_, bytes_);
}

}  // namespace troupe
