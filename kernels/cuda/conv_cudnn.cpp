// conv2d forward and backward through cuDNN (see conv.hpp). Host code only. Compiled in every CUDA
// build; the cuDNN calls only when TROUPE_HAVE_CUDNN is defined (CMake option TROUPE_CUDNN),
// otherwise the functions throw and conv2d_available() says false.
//
// It uses cuDNN's classic convolution API (cudnnConvolutionForward and friends): still in cuDNN 9,
// marked deprecated there in favour of the graph API but without warnings unless asked for, and
// ample for a correctness twin. Algorithms: the fastest deterministic one cuDNN's heuristics list
// that runs in fp32 FMA math (no TF32), chosen once per shape. bf16: bf16 tensors with an fp32
// convolution compute type (PSEUDO_BFLOAT16), tensor-core math allowed, deterministic algorithms
// only; the bias add and dbias are conv.cu's kernels (see conv.hpp).
#include "kernels/cuda/conv.hpp"

#include <stdexcept>
#include <string>

#include "kernels/cuda/check.cuh"

#if TROUPE_HAVE_CUDNN
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <map>
#include <tuple>
#endif

namespace troupe::cuda {

#if TROUPE_HAVE_CUDNN

#define TROUPE_CUDNN_CHECK(stmt)                                                                 \
  do {                                                                                           \
    const cudnnStatus_t troupe_st_ = (stmt);                                                     \
    if (troupe_st_ != CUDNN_STATUS_SUCCESS)                                                      \
      ::troupe::cuda::detail::throw_cuda_error(#stmt, cudnnGetErrorString(troupe_st_), __FILE__, \
                                               __LINE__);                                        \
  } while (0)

namespace {

using ShapeKey = std::tuple<std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                            std::int64_t, std::int64_t, int>;

// Descriptors and chosen algorithms of one convolution shape.
struct ConvPlan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, bias = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnConvolutionFwdAlgo_t forward{};
  cudnnConvolutionBwdDataAlgo_t backward_data{};
  cudnnConvolutionBwdFilterAlgo_t backward_filter{};
  std::size_t forward_bytes = 0, backward_data_bytes = 0, backward_filter_bytes = 0;
};

int to_int(std::int64_t v, const char* what) {
  if (v > 0x7fffffff)
    throw std::invalid_argument(std::string("cuda::conv2d: ") + what + " = " + std::to_string(v) +
                                " exceeds cuDNN's int range");
  return static_cast<int>(v);
}

// The first (fastest by cuDNN's heuristics) deterministic algorithm that succeeded: plain fp32
// math for fp32 tensors; for bf16 tensors tensor-core math too, but never one that converts.
template <class Perf>
const Perf& pick(const Perf* results, int count, const char* which, bool bf16) {
  for (int i = 0; i < count; ++i)
    if (results[i].status == CUDNN_STATUS_SUCCESS &&
        results[i].determinism == CUDNN_DETERMINISTIC &&
        results[i].mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION &&
        (bf16 || results[i].mathType != CUDNN_TENSOR_OP_MATH))
      return results[i];
  throw std::runtime_error(std::string("cuda::conv2d: cuDNN lists no deterministic ") +
                           (bf16 ? "bf16" : "fp32") + " " + which + " algorithm for this shape");
}

}  // namespace

struct Dnn::Impl {
  int device = 0;
  cudnnHandle_t handle = nullptr;
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
  cudaStream_t workspace_stream = nullptr;
  std::map<ShapeKey, ConvPlan> plans;

  ~Impl() {
    for (auto& [key, p] : plans) {
      cudnnDestroyTensorDescriptor(p.x);
      cudnnDestroyTensorDescriptor(p.y);
      cudnnDestroyTensorDescriptor(p.bias);
      cudnnDestroyFilterDescriptor(p.w);
      cudnnDestroyConvolutionDescriptor(p.conv);
    }
    if (workspace) cudaFree(workspace);  // waits for its last use, whatever stream that was on
    if (handle) cudnnDestroy(handle);
  }

  // At least `bytes` of workspace usable on `stream`, in stream order: a smaller buffer is freed
  // on the stream that last used it and a new one allocated on this one.
  void* reserve(std::size_t bytes, cudaStream_t stream) {
    if (bytes <= workspace_bytes) {
      if (workspace_stream != stream && workspace) {
        cudaEvent_t done = nullptr;
        TROUPE_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
        TROUPE_CUDA_CHECK(cudaEventRecord(done, workspace_stream));
        TROUPE_CUDA_CHECK(cudaStreamWaitEvent(stream, done, 0));
        TROUPE_CUDA_CHECK(cudaEventDestroy(done));
        workspace_stream = stream;
      }
      return workspace;
    }
    if (workspace) TROUPE_CUDA_CHECK(cudaFreeAsync(workspace, workspace_stream));
    workspace = nullptr;
    workspace_bytes = 0;
    TROUPE_CUDA_CHECK(cudaMallocAsync(&workspace, bytes, stream));
    workspace_bytes = bytes;
    workspace_stream = stream;
    return workspace;
  }

  ConvPlan& plan(const cpu::Conv2dShape& s, DType dtype) {
    const ShapeKey key{s.batch,        s.in_channels, s.height,  s.width,
                       s.out_channels, s.kernel,      s.padding, static_cast<int>(dtype)};
    const bool bf16 = dtype == DType::bf16;
    const cudnnDataType_t data = bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    auto it = plans.find(key);
    if (it != plans.end()) return it->second;
    ConvPlan p;
    const int n = to_int(s.batch, "batch"), c = to_int(s.in_channels, "in_channels");
    const int h = to_int(s.height, "height"), w = to_int(s.width, "width");
    const int oc = to_int(s.out_channels, "out_channels"), k = to_int(s.kernel, "kernel");
    const int pad = to_int(s.padding, "padding");
    TROUPE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.x));
    TROUPE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.y));
    TROUPE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.bias));
    TROUPE_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p.w));
    TROUPE_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p.conv));
    TROUPE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.x, CUDNN_TENSOR_NCHW, data, n, c, h, w));
    TROUPE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.y, CUDNN_TENSOR_NCHW, data, n, oc,
                                                  to_int(s.out_height(), "out_height"),
                                                  to_int(s.out_width(), "out_width")));
    TROUPE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.bias, CUDNN_TENSOR_NCHW, data, 1, oc, 1, 1));
    TROUPE_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p.w, data, CUDNN_TENSOR_NCHW, oc, c, k, k));
    // The CPU computes a cross-correlation (no kernel flip), stride 1, no dilation; the compute
    // type is fp32 for either tensor type.
    TROUPE_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p.conv, pad, pad, 1, 1, 1, 1,
                                                       CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    TROUPE_CUDNN_CHECK(
        cudnnSetConvolutionMathType(p.conv, bf16 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
    constexpr int kMax = 16;
    int found = 0;
    cudnnConvolutionFwdAlgoPerf_t fwd[kMax];
    TROUPE_CUDNN_CHECK(
        cudnnGetConvolutionForwardAlgorithm_v7(handle, p.x, p.w, p.conv, p.y, kMax, &found, fwd));
    const auto& f = pick(fwd, found, "forward", bf16);
    p.forward = f.algo;
    p.forward_bytes = f.memory;
    cudnnConvolutionBwdDataAlgoPerf_t bwd_data[kMax];
    TROUPE_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, p.w, p.y, p.conv, p.x,
                                                                   kMax, &found, bwd_data));
    const auto& bd = pick(bwd_data, found, "backward-data", bf16);
    p.backward_data = bd.algo;
    p.backward_data_bytes = bd.memory;
    cudnnConvolutionBwdFilterAlgoPerf_t bwd_filter[kMax];
    TROUPE_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle, p.x, p.y, p.conv, p.w,
                                                                     kMax, &found, bwd_filter));
    const auto& bf = pick(bwd_filter, found, "backward-filter", bf16);
    p.backward_filter = bf.algo;
    p.backward_filter_bytes = bf.memory;
    return plans.emplace(key, p).first->second;
  }
};

bool conv2d_available() {
  return true;
}

Dnn::Dnn(int device) : impl_(std::make_unique<Impl>()) {
  impl_->device = device;
  int previous = 0;
  TROUPE_CUDA_CHECK(cudaGetDevice(&previous));
  TROUPE_CUDA_CHECK(cudaSetDevice(device));
  const cudnnStatus_t created = cudnnCreate(&impl_->handle);
  TROUPE_CUDA_CHECK(cudaSetDevice(previous));
  TROUPE_CUDNN_CHECK(created);
}

Dnn::~Dnn() = default;

#else  // no cuDNN

struct Dnn::Impl {};

bool conv2d_available() {
  return false;
}

Dnn::Dnn(int) {
  throw std::runtime_error(
      "cuda::Dnn: this build has no cuDNN (configure with -DTROUPE_CUDNN=ON where cuDNN is "
      "installed)");
}

Dnn::~Dnn() = default;

#endif

namespace {

void check_dtype(const char* function, DType dtype) {
  if (dtype != DType::f32 && dtype != DType::bf16)
    throw std::invalid_argument(std::string(function) + ": dtype " +
                                std::string(dtype_name(dtype)) + " not supported (f32 or bf16)");
}

// cpu::conv2d_*'s shape conditions.
void check_conv_shape(const char* function, const cpu::Conv2dShape& s) {
  auto at_least = [&](const char* name, std::int64_t value, std::int64_t minimum) {
    if (value < minimum)
      throw std::invalid_argument(std::string(function) + ": " + name + " = " +
                                  std::to_string(value) +
                                  ", must be >= " + std::to_string(minimum));
  };
  at_least("batch", s.batch, 0);
  at_least("in_channels", s.in_channels, 1);
  at_least("height", s.height, 1);
  at_least("width", s.width, 1);
  at_least("out_channels", s.out_channels, 1);
  at_least("kernel", s.kernel, 1);
  at_least("padding", s.padding, 0);
  if (s.out_height() < 1 || s.out_width() < 1)
    throw std::invalid_argument(std::string(function) + ": kernel = " + std::to_string(s.kernel) +
                                " exceeds the padded input " +
                                std::to_string(s.height + 2 * s.padding) + " x " +
                                std::to_string(s.width + 2 * s.padding));
}

}  // namespace

void conv2d_forward(Dnn& dnn, const cpu::Conv2dShape& s, const float* x, const float* w,
                    const float* bias, float* y, void* stream) {
  conv2d_forward(dnn, DType::f32, s, x, w, bias, y, stream);
}

void conv2d_backward(Dnn& dnn, const cpu::Conv2dShape& s, const float* x, const float* w,
                     const float* dy, float* dx, float* dw, float* dbias, void* stream) {
  conv2d_backward(dnn, DType::f32, s, x, w, dy, dx, dw, dbias, stream);
}

void conv2d_forward([[maybe_unused]] Dnn& dnn, DType dtype, const cpu::Conv2dShape& s,
                    [[maybe_unused]] const void* x, [[maybe_unused]] const void* w,
                    [[maybe_unused]] const void* bias, [[maybe_unused]] void* y,
                    [[maybe_unused]] void* stream) {
  check_dtype("cuda::conv2d_forward", dtype);
  check_conv_shape("cuda::conv2d_forward", s);
  if (s.batch == 0) return;
#if TROUPE_HAVE_CUDNN
  Dnn::Impl& impl = dnn.impl();
  const auto st = static_cast<cudaStream_t>(stream);
  TROUPE_CUDNN_CHECK(cudnnSetStream(impl.handle, st));
  ConvPlan& p = impl.plan(s, dtype);
  void* ws = impl.reserve(p.forward_bytes, st);
  const float one = 1.0f, zero = 0.0f;
  TROUPE_CUDNN_CHECK(cudnnConvolutionForward(impl.handle, &one, p.x, x, p.w, w, p.conv, p.forward,
                                             ws, p.forward_bytes, &zero, p.y, y));
  if (bias && dtype == DType::bf16)
    detail::conv_bias_add_bf16(bias, y, s.batch, s.out_channels, s.out_height() * s.out_width(),
                               stream);
  else if (bias)
    TROUPE_CUDNN_CHECK(cudnnAddTensor(impl.handle, &one, p.bias, bias, &one, p.y, y));
#else
  throw std::runtime_error("cuda::conv2d_forward: this build has no cuDNN (TROUPE_CUDNN=OFF)");
#endif
}

void conv2d_backward([[maybe_unused]] Dnn& dnn, DType dtype, const cpu::Conv2dShape& s,
                     [[maybe_unused]] const void* x, [[maybe_unused]] const void* w,
                     [[maybe_unused]] const void* dy, [[maybe_unused]] void* dx,
                     [[maybe_unused]] void* dw, [[maybe_unused]] void* dbias,
                     [[maybe_unused]] void* stream) {
  check_dtype("cuda::conv2d_backward", dtype);
  check_conv_shape("cuda::conv2d_backward", s);
  if (s.batch == 0) return;
#if TROUPE_HAVE_CUDNN
  Dnn::Impl& impl = dnn.impl();
  const auto st = static_cast<cudaStream_t>(stream);
  TROUPE_CUDNN_CHECK(cudnnSetStream(impl.handle, st));
  ConvPlan& p = impl.plan(s, dtype);
  const float one = 1.0f, zero = 0.0f;
  if (dx) {
    void* ws = impl.reserve(p.backward_data_bytes, st);
    TROUPE_CUDNN_CHECK(cudnnConvolutionBackwardData(impl.handle, &one, p.w, w, p.y, dy, p.conv,
                                                    p.backward_data, ws, p.backward_data_bytes,
                                                    &zero, p.x, dx));
  }
  if (dw) {
    void* ws = impl.reserve(p.backward_filter_bytes, st);
    TROUPE_CUDNN_CHECK(cudnnConvolutionBackwardFilter(impl.handle, &one, p.x, x, p.y, dy, p.conv,
                                                      p.backward_filter, ws,
                                                      p.backward_filter_bytes, &one, p.w, dw));
  }
  if (dbias && dtype == DType::bf16)
    detail::conv_bias_grad_bf16(dy, dbias, s.batch, s.out_channels, s.out_height() * s.out_width(),
                                stream);
  else if (dbias)
    TROUPE_CUDNN_CHECK(
        cudnnConvolutionBackwardBias(impl.handle, &one, p.y, dy, &one, p.bias, dbias));
#else
  throw std::runtime_error("cuda::conv2d_backward: this build has no cuDNN (TROUPE_CUDNN=OFF)");
#endif
}

}  // namespace troupe::cuda
