// CUDA twins of kernels/cpu/conv.hpp, fp32 NCHW, declared without CUDA or cuDNN headers (`stream`
// is a cudaStream_t).
//
// Convolution goes through cuDNN (conv_cudnn.cpp), built when the CMake option TROUPE_CUDNN is on;
// without it conv2d_available() is false and the conv2d functions throw. cuDNN is told to use
// plain fp32 arithmetic (CUDNN_FMA_MATH, never TF32) and deterministic algorithms only, so the
// results are reductions of length C·K·K (forward, dW) or OC·K·K (dx) within the fp32 bound.
//
// Max-pooling is a kernel of ours (conv.cu), built always: cuDNN's pooling returns no argmax and
// leaves the choice among tied maxima unspecified, while the CPU contract records argmax (the first
// maximum in row-major order) for the backward. Forward and backward match the CPU bit for bit.
//
// bf16 (the overloads taking a DType): every tensor of the call is bf16 (x, w, bias, y, dy, dx, dw,
// dbias). The convolutions go through cuDNN with bf16 tensors and an fp32 compute type (cuDNN's
// PSEUDO_BFLOAT16 configuration: products and sums in fp32, one rounding to bf16 on the store),
// tensor-core math allowed (the inputs are bf16 already, so nothing is converted to TF32), and
// again deterministic algorithms only; where cuDNN lists none for a shape the call throws
// std::runtime_error("... no deterministic ... algorithm ..."). cuDNN's bias helpers are not used
// for bf16: the bias add (y = bf16(y + bias)) and dbias (+= the fp32 sum of dy over N·OH·OW in a
// fixed order, rounded once) are kernels of ours in conv.cu. dw accumulates as in fp32 (beta = 1:
// the old bf16 value plus the fp32 gradient, rounded once). Max-pooling in bf16 compares the bf16
// values and copies them, so it is bit for bit the CPU's on the same (bf16-representable) values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "kernels/cpu/conv.hpp"
#include "memory/dtype.hpp"

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

// The dtype overloads (f32 or bf16; std::invalid_argument otherwise): see the top of this file.
void conv2d_forward(Dnn& dnn, DType dtype, const cpu::Conv2dShape& s, const void* x, const void* w,
                    const void* bias, void* y, void* stream);
void conv2d_backward(Dnn& dnn, DType dtype, const cpu::Conv2dShape& s, const void* x, const void* w,
                     const void* dy, void* dx, void* dw, void* dbias, void* stream);
void maxpool2d_forward(DType dtype, const void* x, void* y, std::int32_t* argmax,
                       std::int64_t batch, std::int64_t channels, std::int64_t height,
                       std::int64_t width, std::int64_t window, void* stream);
void maxpool2d_backward(DType dtype, const void* dy, const std::int32_t* argmax, void* dx,
                        std::int64_t batch, std::int64_t channels, std::int64_t height,
                        std::int64_t width, std::int64_t window, void* stream);

namespace detail {
// bf16 helpers of the cuDNN path (conv.cu): y[n, oc, :] = bf16(y + bias[oc]) over `pixels` = OH·OW
// per plane; dbias[oc] = bf16(dbias[oc] + Σ_{n, p} dy[n, oc, p]), the sum in fp32, one block per
// channel (a fixed order: deterministic).
void conv_bias_add_bf16(const void* bias, void* y, std::int64_t batch, std::int64_t channels,
                        std::int64_t pixels, void* stream);
void conv_bias_grad_bf16(const void* dy, void* dbias, std::int64_t batch, std::int64_t channels,
                         std::int64_t pixels, void* stream);
}  // namespace detail

}  // namespace troupe::cuda
