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
#include "memory/readiness.hpp"

namespace troupe {

class Allocator {
 public:
  virtual ~Allocator() = default;
  // Returns memory for `bytes` bytes (zero bytes gives a valid, unique, non-null pointer) or
  // throws std::bad_alloc. The contents are unspecified: clearing is Tensor::zeros's job, so the
  // many buffers a kernel overwrites completely cost no memset.
  virtual void* allocate(std::size_t bytes) = 0;
  // Gives the block back. `last_use` is the readiness of the last work that touched it (a kernel
  // still running on a stream, a transfer in flight): the block may be handed out again only once
  // that has completed. This is the stream-ordered rule a CUDA caching allocator follows; on the
  // CPU every use has completed by the time the last view goes away, so reuse is immediate.
  virtual void deallocate(void* ptr, std::size_t bytes, const Readiness& last_use) noexcept = 0;
  virtual Device device() const = 0;
};

// Host memory aligned to 64 bytes (a cache line, and an AVX-512 vector), not cleared.
class CpuAllocator final : public Allocator {
 public:
  static constexpr std::size_t alignment = 64;
  void* allocate(std::size_t bytes) override;
  // Frees at once when `last_use` is ready; otherwise the block is parked and freed by a later
  // call once its use has completed.
  void deallocate(void* ptr, std::size_t bytes, const Readiness& last_use) noexcept override;
  Device device() const override { return Device::cpu(); }
  CpuAllocator();
  ~CpuAllocator() override;

 private:
  struct Parked;
  std::unique_ptr<Parked> parked_;
};

// A CpuAllocator that keeps freed blocks and hands them out again (the host twin of a CUDA
// caching allocator). Training allocates the same activation sizes every micro-batch; fresh
// multi-megabyte blocks come from the kernel as untouched pages, and faulting them in cost more
// than the expert GEMMs' share of an MoE layer on the CPU (measured: bench/moe_layer_bench). Sizes
// are rounded up to one of four classes per power of two (at most 25% slack) so that blocks are
// reused across the slightly different row counts routing produces. A reused block keeps whatever
// its last user wrote (Tensor::empty poisons it in Debug and sanitizer builds). Blocks beyond
// `cache_limit_bytes` of cached memory go straight back to the system.
class CachingCpuAllocator final : public Allocator {
 public:
  explicit CachingCpuAllocator(std::size_t cache_limit_bytes = std::size_t{2} << 30);
  ~CachingCpuAllocator() override;
  CachingCpuAllocator(const CachingCpuAllocator&) = delete;
  CachingCpuAllocator& operator=(const CachingCpuAllocator&) = delete;

  void* allocate(std::size_t bytes) override;
  // A block whose `last_use` has not completed waits on a pending list and joins the pool once
  // it has (checked on every allocate and deallocate).
  void deallocate(void* ptr, std::size_t bytes, const Readiness& last_use) noexcept override;
  Device device() const override { return Device::cpu(); }

  // The size class a request of `bytes` is served from (a multiple of 64).
  static std::size_t size_class(std::size_t bytes);
  std::size_t cached_bytes() const;
  // Returns every cached block to the system.
  void release_cached();

 private:
  struct Cache;
  std::unique_ptr<Cache> cache_;
};

// The process-wide CPU allocator (a CachingCpuAllocator).
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
  // Records the readiness of the newest work that reads or writes these bytes (PyTorch's
  // recordStream): the allocator gets it back with the block and does not reuse the block before
  // it has completed. Call it from the one thread that owns the storage.
  void record_use(Readiness use) { last_use_ = std::move(use); }

 private:
  Allocator& allocator_;
  std::size_t bytes_;
  void* data_;
  Readiness last_use_ = Readiness::done_on_cpu();
};

}  // namespace troupe
