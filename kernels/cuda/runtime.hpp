// The CUDA backend's runtime pieces behind memory/'s interfaces, declared without CUDA headers
// (streams and events are opaque void*): a Readiness backed by a cudaEvent_t, the CUDA twin of
// record_completion, a stream-ordered caching device allocator with PyTorch's recordStream rule,
// pinned host memory, and host<->device copies on a dedicated copy stream.
//
// Nothing here synchronises the host with the device except where a comment says so: a consumer
// on another stream waits with cudaStreamWaitEvent (stream_wait), and the allocator asks events
// with cudaEventQuery, which never blocks.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "kernels/exec_context.hpp"
#include "memory/allocator.hpp"
#include "memory/readiness.hpp"

namespace troupe::cuda {

// A cudaEvent_t recorded on a stream; query() is cudaEventQuery (never blocks). The event is
// destroyed with the last Readiness that holds it.
class CudaEvent final : public ReadinessEvent {
 public:
  // Records a new event on `stream` (device `device`) now.
  CudaEvent(void* stream, int device);
  ~CudaEvent() override;
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;

  bool query() const override;
  std::string describe() const override;
  void* event() const { return event_; }    // cudaEvent_t
  void* stream() const { return stream_; }  // the stream it was recorded on
  int device() const { return device_; }

 private:
  void* event_ = nullptr;
  void* stream_ = nullptr;
  int device_ = 0;
};

// Readiness of everything enqueued on `stream` so far (one event recorded now).
Readiness record_on_stream(void* stream, int device);
// The CUDA twin of troupe::record_completion: an event on ctx.stream. Throws for a CPU context.
Readiness record_completion(const ExecContext& ctx);
// Makes `stream` wait for `ready` without blocking the host: cudaStreamWaitEvent for a CudaEvent,
// nothing for data born ready. Any other event kind (a ManualEvent completed by host code) cannot
// be waited on by the GPU: if it is not ready yet this throws std::logic_error, naming it.
void stream_wait(void* stream, const Readiness& ready);
// Blocks the calling host thread until `ready` (cudaEventSynchronize). For tools and tests only.
void host_wait(const Readiness& ready);

// Streams (non-blocking with respect to the legacy default stream).
void* create_stream(int device);
void destroy_stream(void* stream);
void synchronize_stream(void* stream);

// A stream-ordered caching allocator for one device and one owning stream (PyTorch's scheme):
//   - a freed block is reusable at once by later work on the owning stream (stream order makes
//     that safe), when its last_use is ready or is an event on the owning stream;
//   - a block also used on other streams is marked with record_stream(ptr, stream); when it is
//     freed an event is recorded on each such stream, and the block joins the pool only after
//     every one of those events (and a last_use on another stream or a host event) has completed.
// Sizes are rounded to classes (512 B below 1 MiB, four per octave above), blocks are never split.
// cudaMalloc / cudaFree run outside the lock; only bookkeeping and cudaEventQuery run under it.
class CachingDeviceAllocator final : public Allocator {
 public:
  CachingDeviceAllocator(int device, void* owning_stream);
  ~CachingDeviceAllocator() override;  // frees cached blocks (the owner must have synchronised)
  CachingDeviceAllocator(const CachingDeviceAllocator&) = delete;
  CachingDeviceAllocator& operator=(const CachingDeviceAllocator&) = delete;

  // Throws std::bad_alloc when cudaMalloc fails even after the cache was returned to the driver.
  void* allocate(std::size_t bytes) override;
  void deallocate(void* ptr, std::size_t bytes, const Readiness& last_use) noexcept override;
  Device device() const override { return Device::cuda(device_); }

  // Marks that `stream` (not the owning one) uses the block at `ptr` (PyTorch's recordStream).
  void record_stream(void* ptr, void* stream);
  static std::size_t size_class(std::size_t bytes);
  std::size_t cached_bytes() const;   // in the pool, ready for reuse
  std::size_t pending_blocks() const;  // freed but waiting for another stream's work
  void release_cached();               // cudaFree every pooled block

 private:
  struct State;
  int device_;
  void* stream_;
  std::unique_ptr<State> state_;
};

// Page-locked host memory (cudaHostAlloc), needed for truly asynchronous copies. A block whose
// last use has not completed is parked and freed by a later call once it has.
class PinnedHostAllocator final : public Allocator {
 public:
  PinnedHostAllocator();
  ~PinnedHostAllocator() override;
  void* allocate(std::size_t bytes) override;
  void deallocate(void* ptr, std::size_t bytes, const Readiness& last_use) noexcept override;
  Device device() const override { return {DeviceKind::pinned_host, 0}; }

 private:
  struct Parked;
  std::unique_ptr<Parked> parked_;
};

// Host<->device copies on a copy stream of their own, so transfers overlap compute. Each copy
// first waits (on the GPU) for `source_ready`, and returns the readiness of its destination.
class CopyStream {
 public:
  explicit CopyStream(int device);
  ~CopyStream();
  CopyStream(const CopyStream&) = delete;
  CopyStream& operator=(const CopyStream&) = delete;

  Readiness to_device(void* dst, const void* host_src, std::size_t bytes,
                      const Readiness& source_ready);
  Readiness to_host(void* host_dst, const void* src, std::size_t bytes,
                    const Readiness& source_ready);
  void* stream() const { return stream_; }

 private:
  int device_;
  void* stream_;
};

// A CUDA ExecContext on `stream` (blas_handle / workspace left null: kernels/cuda/gemm.hpp's
// Blas owns those).
ExecContext cuda_context(int device, void* stream, Allocator* allocator);

// True when `ptr` is device memory (not host-accessible); lets host code refuse to read it with a
// clear message instead of crashing.
bool is_device_pointer(const void* ptr);

}  // namespace troupe::cuda
