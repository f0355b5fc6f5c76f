// Allocators and the storage they hand out. A Storage is one allocation, shared by every tensor
// viewing it; it returns its bytes to its allocator when the last view goes away.
//
// The interface is what the CUDA backend plugs into: a pinned-host allocator (page-locked memory
// for asynchronous copies and ZeRO-Offload) and a caching CUDA allocator (reuses freed blocks per
// stream instead of calling cudaFree) implement the same two calls.
#pragma once

#include <cstddef>
#include <memory>

#include "memory/device.hpp"

namespace troupe {

class Allocator {
 public:
  virtual ~Allocator() = default;
  // Returns memory for `bytes` bytes (zero bytes gives a valid, unique, non-null pointer) or
  // throws std::bad_alloc.
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void deallocate(void* ptr, std::size_t bytes) noexcept = 0;
  virtual Device device() const = 0;
};

// Host memory aligned to 64 bytes (a cache line, and an AVX-512 vector), zero-filled so that a
// fresh gradient buffer or optimizer state needs no separate clear.
class CpuAllocator final : public Allocator {
 public:
  static constexpr std::size_t alignment = 64;
  void* allocate(std::size_t bytes) override;
  void deallocate(void* ptr, std::size_t bytes) noexcept override;
  Device device() const override { return Device::cpu(); }
};

// The process-wide CPU allocator.
Allocator& cpu_allocator();

class Storage {
 public:
  Storage(Allocator& allocator, std::size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return allocator_.device(); }

 private:
  Allocator& allocator_;
  std::size_t bytes_;
  void* data_;
};

}  // namespace troupe
