// ExecContext: where and how a kernel runs. Every op in the ops layer (kernels/ops/) takes one, so
// a model or an actor says "run this on that context" and never names a backend.
//
// The backend objects are opaque (void*) so that code outside kernels/ never includes CUDA
// headers: on a CUDA context `stream` is a cudaStream_t, `blas_handle` a cublasLtHandle_t and
// `workspace` device memory for it; on the CPU they are null and a kernel has finished when its
// call returns. Each actor that computes owns one context (one stream), which is what lets two
// micro-batches' kernels run concurrently on one GPU and what orders a producer's kernels before
// a consumer's: the consumer's stream waits on the producer's event (memory/readiness.hpp).
#pragma once

#include <cstddef>

#include "memory/allocator.hpp"
#include "memory/device.hpp"
#include "memory/readiness.hpp"

namespace troupe {

struct ExecContext {
  Device device = Device::cpu();
  void* stream = nullptr;           // cudaStream_t; null on the CPU
  void* blas_handle = nullptr;      // cublasLtHandle_t; null on the CPU (OpenBLAS keeps no handle)
  void* workspace = nullptr;        // BLAS workspace on `device`
  std::size_t workspace_bytes = 0;  //   and its size
  Allocator* allocator = nullptr;   // where ops allocate their outputs; null = cpu_allocator()
  // Threads a CPU kernel outside the GEMMs may use (kernels/cpu/intra_op_pool.hpp); 0 means the
  // process's setting, ops::set_cpu_intra_op_threads (kernels/ops/threads.hpp), which the runtime
  // sets: 1 inside actors (the actors are the parallelism), all cores in the sequential executor
  // and in single-layer benchmarks. Models keep 0, so that they never decide it.
  int cpu_threads = 0;

  bool on_cpu() const { return device.is_host(); }
  Allocator& output_allocator() const { return allocator ? *allocator : cpu_allocator(); }
};

// The CPU context: host memory from cpu_allocator(), `threads` intra-op threads (0: the process's
// setting).
ExecContext cpu_context(int threads = 0);

// Readiness of everything enqueued on `ctx` so far: ready at once on the CPU; on a CUDA context
// an event recorded on its stream now. Producers attach it to the handles they send.
Readiness record_completion(const ExecContext& ctx);

}  // namespace troupe
