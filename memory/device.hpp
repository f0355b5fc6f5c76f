// Where a tensor's bytes live. CPU memory is the reference backend and the embedded default;
// pinned host memory and CUDA device memory get their allocators with the CUDA backend.
#pragma once

#include <string>

namespace troupe {

enum class DeviceKind { cpu, pinned_host, cuda };

struct Device {
  DeviceKind kind = DeviceKind::cpu;
  int index = 0;  // CUDA ordinal; 0 for host memory

  static Device cpu() { return {DeviceKind::cpu, 0}; }
  static Device cuda(int ordinal) { return {DeviceKind::cuda, ordinal}; }
  bool is_host() const { return kind != DeviceKind::cuda; }
  friend bool operator==(const Device&, const Device&) = default;
};

std::string to_string(const Device& device);

}  // namespace troupe
