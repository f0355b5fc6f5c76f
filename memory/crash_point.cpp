// TROUPE_TEST_CRASH_AT handling (see crash_point.hpp).
#include "memory/crash_point.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>

namespace troupe {
namespace {

struct CrashSpec {
  std::string point;  // empty: no crash requested
  long arrival = 1;
};

CrashSpec read_spec() {
  CrashSpec spec;
  const char* value = std::getenv("TROUPE_TEST_CRASH_AT");
  if (value == nullptr) return spec;
  spec.point = value;
  if (const auto at = spec.point.find('@'); at != std::string::npos) {
    spec.arrival = std::strtol(spec.point.c_str() + at + 1, nullptr, 10);
    spec.point.resize(at);
  }
  return spec;
}

}  // namespace

void crash_point(const char* name) {
  static const CrashSpec spec = read_spec();
  static std::atomic<long> arrivals{0};
  if (spec.point.empty() || spec.point != name) return;
  if (arrivals.fetch_add(1) + 1 == spec.arrival) ::kill(::getpid(), SIGKILL);
}

}  // namespace troupe
