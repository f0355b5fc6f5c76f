// The CUDA runtime pieces: checked calls, CUDA-event readiness, the stream-ordered caching
// allocator's recordStream rule, pinned memory and the copy stream.
#include <cuda_runtime_api.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "gpu/gpu_test.hpp"
#include "kernels/cuda/debug.hpp"
#include "kernels/cuda/runtime.hpp"

using namespace troupe;
using namespace troupe::cuda;

namespace {

// Holds `stream` busy until release() (or 20 s, so a failing test cannot hang the GPU).
class StreamHold {
 public:
  explicit StreamHold(void* stream) : flag_(alloc_host_flag()) {
    spin_until_flag(stream, flag_, 20000.0);
  }
  ~StreamHold() {
    release();
    cudaDeviceSynchronize();
    free_host_flag(flag_);
  }
  void release() { *flag_ = 1; }

 private:
  volatile int* flag_;
};

void checked_call_names_statement() {
  void* p = nullptr;
  bool threw = false;
  try {
    TROUPE_CUDA_CHECK(cudaMalloc(&p, std::size_t{1} << 60));
  } catch (const std::runtime_error& e) {
    threw = true;
    const std::string what = e.what();
    GPU_CHECK_MSG(what.find("cudaMalloc(&p") != std::string::npos, "%s", what.c_str());
    GPU_CHECK_MSG(what.find("runtime_test.cpp:") != std::string::npos, "%s", what.c_str());
    GPU_CHECK_MSG(what.find("cudaErrorMemoryAllocation") != std::string::npos, "%s", what.c_str());
  }
  GPU_CHECK(threw);
}

void event_readiness_follows_the_stream() {
  void* s = create_stream(0);
  {
    StreamHold hold(s);
    const Readiness r = troupe::cuda::record_completion(cuda_context(0, s, nullptr));
    GPU_CHECK(!r.ready());
    GPU_CHECK(r.describe().find("cuda event") != std::string::npos);
    hold.release();
    host_wait(r);
    GPU_CHECK(r.ready());
  }
  // A host-side event cannot be waited on by the GPU: clear error while it is pending.
  auto manual = std::make_shared<ManualEvent>("test event");
  bool threw = false;
  try {
    stream_wait(s, Readiness::after(manual));
  } catch (const std::logic_error& e) {
    threw = std::string(e.what()).find("test event") != std::string::npos;
  }
  GPU_CHECK(threw);
  manual->set();
  stream_wait(s, Readiness::after(manual));  // ready: nothing to wait for
  destroy_stream(s);
}

// The test: hold stream B with a spin kernel, free the block on stream A, and check that
// it is not reused until B finishes.
void block_used_on_other_stream_waits_for_it() {
  void* a = create_stream(0);
  void* b = create_stream(0);
  {
    CachingDeviceAllocator alloc(0, a);
    const std::size_t bytes = 3 << 20;
    void* p = alloc.allocate(bytes);
    StreamHold hold(b);
    alloc.record_stream(p, b);  // B "uses" p while it is held
    alloc.deallocate(p, bytes, record_on_stream(a, 0));
    GPU_CHECK(alloc.pending_blocks() == 1);
    void* q = alloc.allocate(bytes);
    GPU_CHECK_MSG(q != p, "block reused while stream B may still use it");
    hold.release();
    synchronize_stream(b);
    void* r = alloc.allocate(bytes);
    GPU_CHECK_MSG(r == p, "block not reused after stream B finished");
    GPU_CHECK(alloc.pending_blocks() == 0);
    alloc.deallocate(q, bytes, Readiness::done_on_cpu());
    alloc.deallocate(r, bytes, Readiness::done_on_cpu());
    synchronize_stream(a);
  }
  destroy_stream(a);
  destroy_stream(b);
}

void owner_stream_reuse_is_immediate_and_host_events_wait() {
  void* a = create_stream(0);
  {
    CachingDeviceAllocator alloc(0, a);
    StreamHold hold(a);  // the owner is busy: stream order still makes reuse safe
    void* p = alloc.allocate(1000);
    alloc.deallocate(p, 1000, record_on_stream(a, 0));
    GPU_CHECK(alloc.allocate(1000) == p);
    GPU_CHECK(CachingDeviceAllocator::size_class(1000) == 1024);
    GPU_CHECK(CachingDeviceAllocator::size_class((1 << 20) + 1) == (1 << 20) + (1 << 18));
    auto manual = std::make_shared<ManualEvent>();
    alloc.deallocate(p, 1000, Readiness::after(manual));
    void* q = alloc.allocate(1000);
    GPU_CHECK(q != p);
    manual->set();
    GPU_CHECK(alloc.allocate(1000) == p);
    hold.release();
    synchronize_stream(a);
    alloc.deallocate(p, 1000, Readiness::done_on_cpu());
    alloc.deallocate(q, 1000, Readiness::done_on_cpu());
    GPU_CHECK(alloc.cached_bytes() == 2048);
    GPU_CHECK(!is_device_pointer(&q));
  }
  destroy_stream(a);
}

void pinned_copies_round_trip() {
  PinnedHostAllocator pinned;
  GPU_CHECK(pinned.device().kind == DeviceKind::pinned_host);
  const std::size_t n = 1 << 20;
  auto* src = static_cast<float*>(pinned.allocate(n * 4));
  auto* dst = static_cast<float*>(pinned.allocate(n * 4));
  for (std::size_t i = 0; i < n; ++i) src[i] = static_cast<float>(i) * 0.5f;
  CopyStream copies(0);
  void* a = create_stream(0);
  CachingDeviceAllocator alloc(0, a);
  void* dev = alloc.allocate(n * 4);
  GPU_CHECK(is_device_pointer(dev));
  const Readiness up = copies.to_device(dev, src, n * 4, Readiness::done_on_cpu());
  const Readiness down = copies.to_host(dst, dev, n * 4, up);
  host_wait(down);
  GPU_CHECK(std::memcmp(src, dst, n * 4) == 0);
  alloc.deallocate(dev, n * 4, down);
  pinned.deallocate(src, n * 4, up);
  pinned.deallocate(dst, n * 4, down);
  synchronize_stream(a);
  destroy_stream(a);
}

}  // namespace

int main() {
  return gpu_test::run({
      {"checked CUDA calls name the statement, file and error", checked_call_names_statement},
      {"CUDA event readiness follows the stream", event_readiness_follows_the_stream},
      {"allocator: block used on stream B is not reused until B finishes",
       block_used_on_other_stream_waits_for_it},
      {"allocator: owner-stream reuse is immediate, host events wait",
       owner_stream_reuse_is_immediate_and_host_events_wait},
      {"pinned host memory and the copy stream round-trip", pinned_copies_round_trip},
  });
}
