// The 64-byte aligned CPU allocator and Storage's lifetime.
#include "memory/allocator.hpp"

#include <cstdlib>
#include <cstring>
#include <new>

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

Allocator& cpu_allocator() {
  static CpuAllocator instance;
  return instance;
}

Storage::Storage(Allocator& allocator, std::size_t bytes)
    : allocator_(allocator), bytes_(bytes), data_(allocator.allocate(bytes)) {}

Storage::~Storage() {
  allocator_.deallocate(data_, bytes_);
}

}  // namespace troupe
