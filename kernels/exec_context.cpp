// The CPU execution context and completion records (see exec_context.hpp). The CUDA twin of
// record_completion lives in kernels/cuda/ and is reached through the ops layer's dispatch.
#include "kernels/exec_context.hpp"

#include <stdexcept>

namespace troupe {

ExecContext cpu_context(int threads) {
  if (threads < 0)
    throw std::invalid_argument("cpu_context: threads = " + std::to_string(threads) +
                                ", must be >= 0");
  ExecContext ctx;
  ctx.cpu_threads = threads;
  return ctx;
}

Readiness record_completion(const ExecContext& ctx) {
  if (ctx.on_cpu()) return Readiness::done_on_cpu();
  throw std::logic_error("record_completion: no completion backend for " + to_string(ctx.device) +
                         " in this build");
}

}  // namespace troupe
