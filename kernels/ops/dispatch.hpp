// What every op of the ops layer shares: picking the kernel for a context and a dtype, and the
// argument checks. Each op is the one dispatch point of its family: it checks its tensors, then
// switches on backend() and calls that backend's kernel. A bf16 or CUDA variant is one more enum
// value here and one more case in the op; no model changes.
#pragma once

#include <string>
#include <string_view>

#include "kernels/exec_context.hpp"
#include "memory/tensor.hpp"

namespace troupe::ops::detail {

// The kernels this build has. backend() throws for any other (device, dtype) pair.
enum class Backend { cpu_f32 };

// The kernel for `op` on ctx's device with element type `dtype`; throws std::invalid_argument
// ("no CUDA kernel for linear_forward in this build", "linear_forward: dtype bf16 not supported on
// cpu").
Backend backend(const ExecContext& ctx, std::string_view op, DType dtype);

// Checks that `t` is defined, has `dtype`, lives on ctx's device, is contiguous and (when `shape`
// is given) has that shape; throws std::invalid_argument "op: name is …, expected …".
void check(const ExecContext& ctx, std::string_view op, std::string_view name, const Tensor& t,
           DType dtype);
void check(const ExecContext& ctx, std::string_view op, std::string_view name, const Tensor& t,
           DType dtype, const Shape& shape);
// The same for a tensor that may be undefined (an absent bias, a skipped gradient).
void check_optional(const ExecContext& ctx, std::string_view op, std::string_view name,
                    const Tensor& t, DType dtype, const Shape& shape);
// `t` has dim() == rank (else std::invalid_argument naming the op and the tensor).
void check_rank(std::string_view op, std::string_view name, const Tensor& t, std::int64_t rank);
// Intra-op threads a CPU kernel of `ctx` uses: ctx.cpu_threads, or when that is 0 the process's
// setting (set_cpu_intra_op_threads in ops/threads.hpp).
int cpu_threads(const ExecContext& ctx);
[[noreturn]] void fail(std::string_view op, const std::string& message);

template <class T>
T* optional_data(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace troupe::ops::detail
