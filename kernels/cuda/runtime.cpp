// CUDA events as Readiness, streams, the caching device allocator, pinned host memory and the copy
// stream (see runtime.hpp). Host code only: compiled by the C++ compiler against the CUDA runtime.
#include "kernels/cuda/runtime.hpp"

#include <cuda_runtime_api.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/check.cuh"

namespace troupe::cuda {
namespace {

cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

// Restores the calling thread's current device when it goes out of scope.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    TROUPE_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) TROUPE_CUDA_CHECK(cudaSetDevice(device));
    changed_ = previous_ != device;
  }
  ~DeviceGuard() {
    if (changed_) cudaSetDevice(previous_);
  }

 private:
  int previous_ = 0;
  bool changed_ = false;
};

const CudaEvent* as_cuda_event(const Readiness& r) {
  return dynamic_cast<const CudaEvent*>(r.event().get());
}

}  // namespace

CudaEvent::CudaEvent(void* stream, int device) : stream_(stream), device_(device) {
  DeviceGuard guard(device);
  cudaEvent_t e = nullptr;
  TROUPE_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  event_ = e;
  const cudaError_t err = cudaEventRecord(e, as_stream(stream));
  if (err != cudaSuccess) {
    cudaEventDestroy(e);
    TROUPE_CUDA_CHECK(err);
  }
}

CudaEvent::~CudaEvent() {
  if (event_) cudaEventDestroy(static_cast<cudaEvent_t>(event_));
}

bool CudaEvent::query() const {
  const cudaError_t err = cudaEventQuery(static_cast<cudaEvent_t>(event_));
  if (err == cudaSuccess) return true;
  if (err == cudaErrorNotReady) {
    cudaGetLastError();  // NotReady is not sticky, but keep the last-error slot clean
    return false;
  }
  TROUPE_CUDA_CHECK(err);  // a failed kernel before the event: report it, never wait forever
  return false;
}

std::string CudaEvent::describe() const {
  return "cuda event on cuda:" + std::to_string(device_) + " stream " +
         std::to_string(reinterpret_cast<std::uintptr_t>(stream_));
}

Readiness record_on_stream(void* stream, int device) {
  return Readiness::after(std::make_shared<const CudaEvent>(stream, device));
}

Readiness record_completion(const ExecContext& ctx) {
  if (ctx.on_cpu()) return Readiness::done_on_cpu();
  return record_on_stream(ctx.stream, ctx.device.index);
}

void stream_wait(void* stream, const Readiness& ready) {
  if (ready.event() == nullptr) return;
  if (const CudaEvent* e = as_cuda_event(ready)) {
    TROUPE_CUDA_CHECK(
        cudaStreamWaitEvent(as_stream(stream), static_cast<cudaEvent_t>(e->event()), 0));
    return;
  }
  if (!ready.ready())
    throw std::logic_error("stream_wait: the GPU cannot wait on '" + ready.describe() +
                           "' (not a CUDA event); wait for it on the host first");
}

void host_wait(const Readiness& ready) {
  if (ready.event() == nullptr) return;
  if (const CudaEvent* e = as_cuda_event(ready)) {
    TROUPE_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(e->event())));
    return;
  }
  if (!ready.ready())
    throw std::logic_error("host_wait: '" + ready.describe() + "' is not a CUDA event");
}

void* create_stream(int device) {
  DeviceGuard guard(device);
  cudaStream_t s = nullptr;
  TROUPE_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return s;
}

void destroy_stream(void* stream) {
  if (stream) cudaStreamDestroy(as_stream(stream));
}

void synchronize_stream(void* stream) {
  TROUPE_CUDA_CHECK(cudaStreamSynchronize(as_stream(stream)));
}

bool is_device_pointer(const void* ptr) {
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, ptr) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return attr.type == cudaMemoryTypeDevice;
}

ExecContext cuda_context(int device, void* stream, Allocator* allocator) {
  ExecContext ctx;
  ctx.device = Device::cuda(device);
  ctx.stream = stream;
  ctx.allocator = allocator;
  return ctx;
}

// ---------------------------------------------------------------------------------------------
// Caching device allocator

struct CachingDeviceAllocator::State {
  struct Live {  // a handed-out block
    std::size_t size;
    std::vector<void*> other_streams;  // recorded with record_stream
  };
  struct Pending {  // freed, waiting for work on other streams
    void* ptr;
    std::size_t size;
    std::vector<Readiness> waits;
  };
  mutable std::mutex mutex;
  std::unordered_map<void*, Live> live;
  std::multimap<std::size_t, void*> pool;  // size class -> block, reusable on the owning stream
  std::vector<Pending> pending;
  std::size_t cached = 0;

  // Moves pending blocks whose every wait has completed into the pool (caller holds the lock).
  void settle() {
    std::erase_if(pending, [&](Pending& p) {
      for (const Readiness& r : p.waits)
        if (!r.ready()) return false;
      pool.emplace(p.size, p.ptr);
      cached += p.size;
      return true;
    });
  }
};

CachingDeviceAllocator::CachingDeviceAllocator(int device, void* owning_stream)
    : device_(device), stream_(owning_stream), state_(std::make_unique<State>()) {}

CachingDeviceAllocator::~CachingDeviceAllocator() {
  release_cached();
  // Pending blocks wait for other streams' work; the owner synchronised before destroying us.
  for (auto& p : state_->pending) cudaFree(p.ptr);
}

std::size_t CachingDeviceAllocator::size_class(std::size_t bytes) {
  constexpr std::size_t small = 512;
  if (bytes < (std::size_t{1} << 20)) return bytes == 0 ? small : (bytes + small - 1) / small * small;
  const std::size_t step = std::bit_floor(bytes) / 4;
  return (bytes + step - 1) / step * step;
}

void* CachingDeviceAllocator::allocate(std::size_t bytes) {
  const std::size_t size = size_class(bytes);
  {
    std::lock_guard lock(state_->mutex);
    state_->settle();
    auto it = state_->pool.find(size);
    if (it != state_->pool.end()) {
      void* ptr = it->second;
      state_->pool.erase(it);
      state_->cached -= size;
      state_->live.emplace(ptr, State::Live{size, {}});
      return ptr;
    }
  }
  DeviceGuard guard(device_);
  void* ptr = nullptr;
  if (cudaMalloc(&ptr, size) != cudaSuccess) {
    cudaGetLastError();
    release_cached();
    if (cudaMalloc(&ptr, size) != cudaSuccess) {
      cudaGetLastError();
      throw std::bad_alloc();
    }
  }
  std::lock_guard lock(state_->mutex);
  state_->live.emplace(ptr, State::Live{size, {}});
  return ptr;
}

void CachingDeviceAllocator::record_stream(void* ptr, void* stream) {
  if (stream == stream_) return;
  std::lock_guard lock(state_->mutex);
  auto it = state_->live.find(ptr);
  if (it == state_->live.end())
    throw std::invalid_argument("CachingDeviceAllocator::record_stream: pointer not allocated here");
  for (void* s : it->second.other_streams)
    if (s == stream) return;
  it->second.other_streams.push_back(stream);
}

void CachingDeviceAllocator::deallocate(void* ptr, std::size_t, const Readiness& last_use) noexcept {
  try {
    std::lock_guard lock(state_->mutex);
    auto it = state_->live.find(ptr);
    if (it == state_->live.end()) return;  // not ours: never free what we did not hand out
    State::Live block = std::move(it->second);
    state_->live.erase(it);
    std::vector<Readiness> waits;
    for (void* s : block.other_streams) waits.push_back(record_on_stream(s, device_));
    const CudaEvent* e = as_cuda_event(last_use);
    const bool owner_ordered = last_use.event() == nullptr || (e && e->stream() == stream_);
    if (!owner_ordered) waits.push_back(last_use);
    if (waits.empty()) {
      state_->pool.emplace(block.size, ptr);
      state_->cached += block.size;
    } else {
      state_->pending.push_back({ptr, block.size, std::move(waits)});
    }
    state_->settle();
  } catch (...) {
    // Event creation failed (the device is in an error state): leaking the block is safe,
    // reusing it under running work is not.
  }
}

std::size_t CachingDeviceAllocator::cached_bytes() const {
  std::lock_guard lock(state_->mutex);
  return state_->cached;
}

std::size_t CachingDeviceAllocator::pending_blocks() const {
  std::lock_guard lock(state_->mutex);
  return state_->pending.size();
}

void CachingDeviceAllocator::release_cached() {
  std::multimap<std::size_t, void*> pool;
  {
    std::lock_guard lock(state_->mutex);
    pool.swap(state_->pool);
    state_->cached = 0;
  }
  for (auto& [size, ptr] : pool) cudaFree(ptr);
}

// ---------------------------------------------------------------------------------------------
// Pinned host memory

struct PinnedHostAllocator::Parked {
  std::mutex mutex;
  std::vector<std::pair<void*, Readiness>> blocks;
  void free_completed() {
    std::vector<void*> done;
    {
      std::lock_guard lock(mutex);
      std::erase_if(blocks, [&](auto& b) {
        if (!b.second.ready()) return false;
        done.push_back(b.first);
        return true;
      });
    }
    for (void* p : done) cudaFreeHost(p);
  }
};

PinnedHostAllocator::PinnedHostAllocator() : parked_(std::make_unique<Parked>()) {}

PinnedHostAllocator::~PinnedHostAllocator() {
  for (auto& b : parked_->blocks) cudaFreeHost(b.first);
}

void* PinnedHostAllocator::allocate(std::size_t bytes) {
  parked_->free_completed();
  void* ptr = nullptr;
  if (cudaHostAlloc(&ptr, bytes == 0 ? 64 : bytes, cudaHostAllocPortable) != cudaSuccess) {
    cudaGetLastError();
    throw std::bad_alloc();
  }
  std::memset(ptr, 0, bytes);  // the Allocator contract: zero-filled, like the CPU allocator
  return ptr;
}

void PinnedHostAllocator::deallocate(void* ptr, std::size_t, const Readiness& last_use) noexcept {
  try {
    if (last_use.ready()) {
      cudaFreeHost(ptr);
    } else {
      std::lock_guard lock(parked_->mutex);
      parked_->blocks.emplace_back(ptr, last_use);
    }
    parked_->free_completed();
  } catch (...) {
  }
}

// ---------------------------------------------------------------------------------------------
// Copy stream

CopyStream::CopyStream(int device) : device_(device), stream_(create_stream(device)) {}

CopyStream::~CopyStream() {
  cudaStreamSynchronize(as_stream(stream_));
  destroy_stream(stream_);
}

Readiness CopyStream::to_device(void* dst, const void* host_src, std::size_t bytes,
                                const Readiness& source_ready) {
  stream_wait(stream_, source_ready);
  TROUPE_CUDA_CHECK(
      cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, as_stream(stream_)));
  return record_on_stream(stream_, device_);
}

Readiness CopyStream::to_host(void* host_dst, const void* src, std::size_t bytes,
                              const Readiness& source_ready) {
  stream_wait(stream_, source_ready);
  TROUPE_CUDA_CHECK(
      cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, as_stream(stream_)));
  return record_on_stream(stream_, device_);
}

}  // namespace troupe::cuda
