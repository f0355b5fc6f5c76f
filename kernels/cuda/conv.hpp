// CUDA twins of kernels/cpu/conv.hpp, fp32 NCHW, declared without CUDA or cuDNN headers (`stream` is a
// cudaStream_t).
//
// Convolution goes through cuDNN (conv_cudnn.cpp), built when the CMake option TROUPE_CUDNN is on;
// without it conv2d_available() is false and the conv2d functions throw. cuDNN is told to use
// plain fp32 arithmetic (CUDNN_FMA_MATH, never TF32) and deterministic algorithms only, so the
// results are reductions of length C·K·K (forward, dW) or OC·K·K (dx) within the fp32 bound.
//
// Max-pooling is a kernel of ours (conv.cu), built always: cuDNN's pooling returns no argmax and
// leaves the choice among tied maxima unspecified, while the CPU contract records argmax (the first
// maximum in row-major order) for the backward. Forward and backward match the CPU bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "kernels/cpu/conv.hpp"

namespace troupe::cuda {

// Whether this build has cuDNN (TROUPE_CUDNN).
bool conv2d_available();

// A cuDNN handle with its workspace (grown on demand, with a stream-ordered allocation) and the
// algorithms chosen per shape. One per stream at a time.
class Dnn {
 public:
  explicit Dnn(int device);
  ~Dnn();
  Dnn(const Dnn&) = delete;
  Dnn& operator=(const Dnn&) = delete;
  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// y [N, OC, OH, OW] (overwritten); bias may be null. Shape errors throw std::invalid_argument, as
// cpu::conv2d_forward does; no workspace argument (cuDNN's lives in the Dnn).
void conv2d_forward(Dnn& dnn, const cpu::Conv2dShape& s, const float* x, const float* w,
                    const float* bias, float* y, void* stream);
// dx overwritten; dw, dbias accumulated (+=); each skipped when null.
void conv2d_backward(Dnn& dnn, const cpu::Conv2dShape& s, const float* x, const float* w,
                     const float* dy, float* dx, float* dw, float* dbias, void* stream);

// cpu::maxpool2d_forward / _backward on the device (same shape checks, std::invalid_argument). The
// device cannot throw for an argmax entry outside x without a host synchronisation: the backward
// skips such an entry.
void maxpool2d_forward(const float* x, float* y, std::int32_t* argmax, std::int64_t batch,
                       std::int64_t channels, std::int64_t height, std::int64_t width,
                       std::int64_t window, void* stream);
void maxpool2d_backward(const float* dy, const std::int32_t* argmax, float* dx, std::int64_t batch,
                        std::int64_t channels, std::int64_t height, std::int64_t width,
                        std::int64_t window, void* stream);

}  // namespace troupe::cuda
