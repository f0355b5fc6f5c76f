// Ops for the matrix-product family: the dense linear layer and the grouped linear layer the
// experts use (kernels/cpu/gemm.hpp has the math). Row-major; parameter gradients accumulate
// (`+=`) so micro-batches add into one buffer, activation gradients are overwritten (`=`).
// An undefined Tensor is an absent optional argument.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/exec_context.hpp"
#include "memory/tensor.hpp"

namespace troupe::ops {

// Threads the CPU GEMM library may use inside one GEMM. The actor runtime runs several GEMMs at
// once on different actors, so `troupe train` sets 1 unless the user chose OPENBLAS_NUM_THREADS.
void set_cpu_gemm_threads(int threads);

// y [rows, out] = x [rows, in] · wᵀ + bias; w [out, in] (PyTorch's Linear layout), bias [out].
void linear_forward(const ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& bias,
                    const Tensor& y);
// dx = dy · w (overwritten; skipped when undefined), dw += dyᵀ · x, dbias += Σ_rows dy (skipped
// when undefined).
void linear_backward(const ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor& dy,
                     const Tensor& dx, const Tensor& dw, const Tensor& dbias);

// Rows [offsets[g], offsets[g+1]) of x [n, in] go through group g's w[g] ([out, in]) and bias[g]:
// w [groups, out, in], bias [groups, out] (or undefined), y [n, out]; offsets (host, groups + 1
// entries) run from 0 to n. Groups with no rows leave their gradients untouched.
void grouped_linear_forward(const ExecContext& ctx, const Tensor& x,
                            std::span<const std::int64_t> offsets, const Tensor& w,
                            const Tensor& bias, const Tensor& y);
void grouped_linear_backward(const ExecContext& ctx, const Tensor& x,
                             std::span<const std::int64_t> offsets, const Tensor& w,
                             const Tensor& dy, const Tensor& dx, const Tensor& dw,
                             const Tensor& dbias);

}  // namespace troupe::ops
