// The intra-op thread pool of the non-GEMM CPU kernels (permute, combine, activations, gating).
//
// parallel_for splits [0, n) into contiguous chunks, one per thread, by a fixed rule. A kernel
// hands it loops whose iterations write disjoint outputs with arithmetic that does not depend on
// the chunk, so its results are bit-identical for any thread count. The pool's size is the
// process's intra-op setting (set_intra_op_threads), which the runtime sets through the ops layer:
// 1 inside actors (the actors are the parallelism), all cores in the sequential executor and
// benchmarks.
#pragma once

#include <cstdint>
#include <functional>

namespace troupe::cpu {

// Threads parallel_for uses from now on (≥ 1); the pool starts its workers on first use.
void set_intra_op_threads(int threads);
int intra_op_threads();

// Runs body(begin, end) over [0, n) on up to `threads` threads (the caller is one of them); chunks
// smaller than `grain` iterations are not worth a thread's wake-up, so fewer threads run then.
// Returns when every chunk is done; rethrows the first exception a chunk threw. Calls from inside
// a chunk, or while another call holds the pool, run inline on the calling thread.
void parallel_for(std::int64_t n, std::int64_t grain, int threads,
                  const std::function<void(std::int64_t, std::int64_t)>& body);

}  // namespace troupe::cpu
