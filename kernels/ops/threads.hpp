// The process-wide intra-op thread count of the non-GEMM CPU kernels, set by the runtime through
// the ops layer so that nothing above kernels/ names the CPU backend.
#pragma once

namespace troupe::ops {

// Threads the non-GEMM CPU kernels use on contexts that leave cpu_threads at 0 (≥ 1; default 1).
// Results do not depend on it. The GEMMs' threads are set_cpu_gemm_threads (ops/gemm.hpp).
void set_cpu_intra_op_threads(int threads);
int cpu_intra_op_threads();

}  // namespace troupe::ops
