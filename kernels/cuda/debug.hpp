// Test and benchmark helpers on the device, declared without CUDA headers.
#pragma once

namespace troupe::cuda {

// Enqueues one kernel on `stream` that spins until *flag (mapped pinned host memory, written by the
// host) becomes non-zero, or `timeout_ms` passes (so a broken test cannot hang the GPU). Holds a
// stream busy for exactly as long as a test wants.
void spin_until_flag(void* stream, const volatile int* flag, double timeout_ms);

// Page-locked host int visible to kernels (cudaHostAllocMapped), zero-initialised; free with
// free_host_flag.
volatile int* alloc_host_flag();
void free_host_flag(volatile int* flag);

}  // namespace troupe::cuda
