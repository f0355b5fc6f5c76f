// The intra-op thread setting (see threads.hpp), forwarded to the CPU pool.
#include "kernels/ops/threads.hpp"

#include "kernels/cpu/intra_op_pool.hpp"

namespace troupe::ops {

void set_cpu_intra_op_threads(int threads) {
  cpu::set_intra_op_threads(threads);
}

int cpu_intra_op_threads() {
  return cpu::intra_op_threads();
}

}  // namespace troupe::ops
