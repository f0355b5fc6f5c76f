// Checked CUDA and cuBLAS calls: a failure throws std::runtime_error naming the failing statement,
// the file and line, the CUDA error string and the host, so a log line says exactly what broke
// where. Used by the CUDA backend's host code (.cpp, compiled by g++) and its launchers (.cu).
#pragma once

#include <cuda_runtime_api.h>
#include <unistd.h>

#include <stdexcept>
#include <string>

namespace troupe::cuda::detail {

inline std::string host_name() {
  char name[256] = {0};
  if (gethostname(name, sizeof(name) - 1) != 0) return "unknown-host";
  return name;
}

[[noreturn]] inline void throw_cuda_error(const char* what, const std::string& error,
                                          const char* file, int line) {
  throw std::runtime_error(std::string("CUDA error: ") + what + " failed with " + error + " at " +
                           file + ":" + std::to_string(line) + " on " + host_name());
}

}  // namespace troupe::cuda::detail

#define TROUPE_CUDA_CHECK(stmt)                                                            \
  do {                                                                                     \
    const cudaError_t troupe_err_ = (stmt);                                                \
    if (troupe_err_ != cudaSuccess) {                                                      \
      cudaGetLastError(); /* a non-sticky error must not resurface at the next check */    \
      ::troupe::cuda::detail::throw_cuda_error(                                            \
          #stmt, std::string(cudaGetErrorName(troupe_err_)) + " (" +                       \
                     cudaGetErrorString(troupe_err_) + ")",                                \
          __FILE__, __LINE__);                                                             \
    }                                                                                      \
  } while (0)

// After a kernel launch: launch-configuration errors surface here, not at the next sync.
#define TROUPE_CUDA_CHECK_LAUNCH() TROUPE_CUDA_CHECK(cudaGetLastError())

// cuBLAS / cuBLASLt status (an int-like enum; 0 is success in both libraries).
#define TROUPE_CUBLAS_CHECK(stmt)                                                          \
  do {                                                                                     \
    const int troupe_st_ = static_cast<int>(stmt);                                         \
    if (troupe_st_ != 0)                                                                   \
      ::troupe::cuda::detail::throw_cuda_error(#stmt, "cuBLAS status " + std::to_string(troupe_st_), \
                                               __FILE__, __LINE__);                        \
  } while (0)
