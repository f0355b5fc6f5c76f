// Softmax cross-entropy on the GPU (see loss.hpp). One block per row: the row max, exp(x − max)
// (evaluated in double and rounded once, as the router and the activations do), the sum, and
// the division, as in cpu::softmax_forward; the sum is a block tree (detail::block_sum), so probs
// agree with the CPU within the reduction bound. The row's loss is read off the argmax entry, as
// on the CPU (max − logit[target] − log p[argmax], in double), and a second one-block kernel sums
// the rows in a fixed order. bf16 logits are widened to fp32 on load (exactly), so the arithmetic
// is the fp32 path's; bf16 dlogits are the fp32 values rounded once.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/cuda/element_access.cuh"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/loss.hpp"
#include "kernels/cuda/reduce.cuh"

namespace troupe::cuda {
namespace {

constexpr int kRowThreads = 256;
constexpr int kSumThreads = 1024;


__device__ float exp_f(float x) {
  return static_cast<float>(exp(static_cast<double>(x)));
}

template <class T>
__global__ void cross_entropy_forward_kernel(const T* logits, const std::int32_t* targets,
                                             float* probs, double* row_loss, std::int64_t rows,
                                             std::int64_t classes) {
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* x = logits + r * classes;
    float* p = probs + r * classes;
    float row_max = -INFINITY;
    float top_value = -INFINITY;
    std::int64_t top = -1;
    for (std::int64_t c = threadIdx.x; c < classes; c += blockDim.x) {
      row_max = fmaxf(row_max, load(x, c));
      if (top < 0 || load(x, c) > top_value)
        top_value = load(x, c), top = c;  // first maximum of this thread
    }
    row_max = detail::block_max(row_max);
    top = detail::block_argmax(top_value, top);
    float total = 0.0f;
    for (std::int64_t c = threadIdx.x; c < classes; c += blockDim.x) {
      const float e = exp_f(__fsub_rn(load(x, c), row_max));
      p[c] = e;
      total = __fadd_rn(total, e);
    }
    total = detail::block_sum(total);
    for (std::int64_t c = threadIdx.x; c < classes; c += blockDim.x) p[c] = __fdiv_rn(p[c], total);
    if (threadIdx.x == 0) {
      const std::int32_t t = targets[r];
      // p[top] = fl(1 / total), recomputed here rather than read back from another thread's store.
      const float p_top = __fdiv_rn(exp_f(__fsub_rn(load(x, top), row_max)), total);
      row_loss[r] = t < 0 || t >= classes ? __longlong_as_double(0x7ff8000000000000LL)
                                          : __dsub_rn(__dsub_rn(static_cast<double>(load(x, top)),
                                                                static_cast<double>(load(x, t))),
                                                      log(static_cast<double>(p_top)));
    }
  }
}

__global__ void mean_kernel(const double* row_loss, std::int64_t rows, float* loss) {
  double sum = 0.0;
  for (std::int64_t r = threadIdx.x; r < rows; r += blockDim.x) sum = __dadd_rn(sum, row_loss[r]);
  sum = detail::block_sum(sum);
  if (threadIdx.x == 0)
    *loss = rows == 0 ? 0.0f : static_cast<float>(sum / static_cast<double>(rows));
}

template <class T>
__global__ void cross_entropy_backward_kernel(const float* probs, const std::int32_t* targets,
                                              T* dlogits, std::int64_t rows, std::int64_t classes,
                                              float scale) {
  const std::int64_t n = rows * classes;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / classes, c = i % classes;
    const std::int32_t t = targets[r];
    const float v = __fmul_rn(probs[i], scale);
    store(dlogits, i,
          t < 0 || t >= classes ? __int_as_float(0x7fc00000)
          : c == t              ? __fsub_rn(v, scale)
                                : v);
  }
}

template <class T>
__global__ void count_correct_kernel(const T* logits, const std::int32_t* targets,
                                     std::int64_t rows, std::int64_t classes,
                                     unsigned long long* correct) {
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* x = logits + r * classes;
    float top_value = -INFINITY;
    std::int64_t top = -1;
    for (std::int64_t c = threadIdx.x; c < classes; c += blockDim.x) {
      const float v = load(x, c);
      if (top < 0 || v > top_value) top_value = v, top = c;
    }
    top = detail::block_argmax(top_value, top);
    if (threadIdx.x == 0 && top == targets[r]) atomicAdd(correct, 1ull);
  }
}

cudaStream_t as_stream(void* s) {
  return static_cast<cudaStream_t>(s);
}

unsigned row_blocks(std::int64_t rows) {
  return static_cast<unsigned>(rows < 65535 * 16 ? rows : 65535 * 16);
}

void check_dtype(const char* function, DType dtype) {
  if (dtype != DType::f32 && dtype != DType::bf16)
    throw std::invalid_argument(std::string(function) + ": dtype " +
                                std::string(dtype_name(dtype)) + " not supported (f32 or bf16)");
}

// Calls f with a null pointer of the element type `dtype` names.
template <class F>
void with_type(DType dtype, F&& f) {
  if (dtype == DType::bf16)
    f(static_cast<__nv_bfloat16*>(nullptr));
  else
    f(static_cast<float*>(nullptr));
}

void check(const char* function, std::int64_t rows, std::int64_t classes) {
  if (rows < 0 || classes < 1)
    throw std::invalid_argument(std::string(function) + ": rows = " + std::to_string(rows) +
                                ", classes = " + std::to_string(classes) +
                                " (rows ≥ 0 and classes ≥ 1)");
}

}  // namespace

std::size_t cross_entropy_workspace_bytes(std::int64_t rows) {
  return static_cast<std::size_t>(rows > 0 ? rows : 1) * sizeof(double);
}

void cross_entropy_forward(const float* logits, const std::int32_t* targets, float* probs,
                           float* loss, std::int64_t rows, std::int64_t classes, void* workspace,
                           void* stream) {
  cross_entropy_forward(DType::f32, logits, targets, probs, loss, rows, classes, workspace, stream);
}

void cross_entropy_backward(const float* probs, const std::int32_t* targets, float* dlogits,
                            std::int64_t rows, std::int64_t classes, float scale, void* stream) {
  cross_entropy_backward(DType::f32, probs, targets, dlogits, rows, classes, scale, stream);
}

void count_correct(const float* logits, const std::int32_t* targets, std::int64_t rows,
                   std::int64_t classes, std::int64_t* correct, void* stream) {
  count_correct(DType::f32, logits, targets, rows, classes, correct, stream);
}

void cross_entropy_forward(DType dtype, const void* logits, const std::int32_t* targets,
                           float* probs, float* loss, std::int64_t rows, std::int64_t classes,
                           void* workspace, void* stream) {
  check("cuda::cross_entropy_forward", rows, classes);
  check_dtype("cuda::cross_entropy_forward", dtype);
  auto* row_loss = static_cast<double*>(workspace);
  if (rows > 0) {
    with_type(dtype, [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      cross_entropy_forward_kernel<<<row_blocks(rows), kRowThreads, 0, as_stream(stream)>>>(
          static_cast<const T*>(logits), targets, probs, row_loss, rows, classes);
    });
    TROUPE_CUDA_CHECK_LAUNCH();
  }
  mean_kernel<<<1, kSumThreads, 0, as_stream(stream)>>>(row_loss, rows, loss);
  TROUPE_CUDA_CHECK_LAUNCH();
}

void cross_entropy_backward(DType dtype, const float* probs, const std::int32_t* targets,
                            void* dlogits, std::int64_t rows, std::int64_t classes, float scale,
                            void* stream) {
  check("cuda::cross_entropy_backward", rows, classes);
  check_dtype("cuda::cross_entropy_backward", dtype);
  const std::int64_t n = rows * classes;
  if (n == 0) return;
  const std::int64_t blocks = (n + kRowThreads - 1) / kRowThreads;
  with_type(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    cross_entropy_backward_kernel<<<static_cast<unsigned>(blocks < 65535 * 32 ? blocks
                                                                              : 65535 * 32),
                                    kRowThreads, 0, as_stream(stream)>>>(
        probs, targets, static_cast<T*>(dlogits), rows, classes, scale);
  });
  TROUPE_CUDA_CHECK_LAUNCH();
}

void count_correct(DType dtype, const void* logits, const std::int32_t* targets, std::int64_t rows,
                   std::int64_t classes, std::int64_t* correct, void* stream) {
  check("cuda::count_correct", rows, classes);
  check_dtype("cuda::count_correct", dtype);
  static_assert(sizeof(std::int64_t) == sizeof(unsigned long long));
  TROUPE_CUDA_CHECK(cudaMemsetAsync(correct, 0, sizeof(std::int64_t), as_stream(stream)));
  if (rows == 0) return;
  with_type(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    count_correct_kernel<<<row_blocks(rows), kRowThreads, 0, as_stream(stream)>>>(
        static_cast<const T*>(logits), targets, rows, classes,
        reinterpret_cast<unsigned long long*>(correct));
  });
  TROUPE_CUDA_CHECK_LAUNCH();
}

}  // namespace troupe::cuda
