// cuBLASLt GEMMs (see gemm.hpp). Host code only.
//
// Row-major to cuBLASLt's column-major: a row-major X[r, c] with row stride ld is the column-major
// Xᵀ[c, r] with the same ld, so C = op(A)·op(B) is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ: B goes first.
#include "kernels/cuda/gemm.hpp"

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <map>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "kernels/cuda/check.cuh"

namespace troupe::cuda {
namespace {

cudaDataType_t cuda_type(DType t, const char* what) {
  if (t == DType::f32) return CUDA_R_32F;
  if (t == DType::bf16) return CUDA_R_16BF;
  throw std::invalid_argument(std::string("cuda::gemm: ") + what + " dtype " +
                              std::string(dtype_name(t)) + " not supported (f32 or bf16)");
}

int alignment_of(const void* p) {
  const auto v = reinterpret_cast<std::uintptr_t>(p);
  int a = 256;
  while (a > 1 && v % a != 0) a /= 2;
  return a;
}

// Everything a matmul plan depends on besides the pointers.
using PlanKey = std::tuple<int, int, std::int64_t, std::int64_t, std::int64_t, int, int,
                           std::int64_t, std::int64_t, std::int64_t, int, int, int, int,
                           std::int64_t, std::int64_t, std::int64_t, std::int64_t>;

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool has_algo = false;
};

}  // namespace

struct Blas::Impl {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
  std::map<PlanKey, Plan> plans;

  ~Impl() {
    for (auto& [key, p] : plans) {
      cublasLtMatrixLayoutDestroy(p.a);
      cublasLtMatrixLayoutDestroy(p.b);
      cublasLtMatrixLayoutDestroy(p.c);
      cublasLtMatmulDescDestroy(p.desc);
    }
    if (workspace) cudaFree(workspace);
    if (handle) cublasLtDestroy(handle);
  }
};

Blas::Blas(int device, std::size_t workspace_bytes)
    : device_(device), impl_(std::make_unique<Impl>()) {
  int previous = 0;
  TROUPE_CUDA_CHECK(cudaGetDevice(&previous));
  TROUPE_CUDA_CHECK(cudaSetDevice(device));
  TROUPE_CUBLAS_CHECK(cublasLtCreate(&impl_->handle));
  TROUPE_CUDA_CHECK(cudaMalloc(&impl_->workspace, workspace_bytes));
  impl_->workspace_bytes = workspace_bytes;
  TROUPE_CUDA_CHECK(cudaSetDevice(previous));
}

Blas::~Blas() = default;

void gemm(Blas& blas, void* stream, DType in, DType out, bool trans_a, bool trans_b, std::int64_t m,
          std::int64_t n, std::int64_t k, float alpha, const void* a, std::int64_t lda,
          const void* b, std::int64_t ldb, float beta, void* c, std::int64_t ldc) {
  gemm_strided_batched(blas, stream, in, out, trans_a, trans_b, m, n, k, alpha, a, lda, 0, b, ldb,
                       0, beta, c, ldc, 0, 1);
}

void gemm_strided_batched(Blas& blas, void* stream, DType in, DType out, bool trans_a, bool trans_b,
                          std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                          const void* a, std::int64_t lda, std::int64_t stride_a, const void* b,
                          std::int64_t ldb, std::int64_t stride_b, float beta, void* c,
                          std::int64_t ldc, std::int64_t stride_c, std::int64_t batch) {
  const cudaDataType_t tin = cuda_type(in, "input");
  const cudaDataType_t tout = cuda_type(out, "output");
  if (in == DType::f32 && out != DType::f32)
    throw std::invalid_argument("cuda::gemm: f32 inputs need an f32 output");
  if (m < 0 || n < 0 || k < 0)
    throw std::invalid_argument("cuda::gemm: negative size m=" + std::to_string(m) +
                                " n=" + std::to_string(n) + " k=" + std::to_string(k));
  if (batch < 0) throw std::invalid_argument("cuda::gemm: negative batch " + std::to_string(batch));
  if (m == 0 || n == 0 || batch == 0) return;
  if (batch == 1) stride_a = stride_b = stride_c = 0;  // one plan for every unbatched call
  // A batched operand is only as aligned as its stride keeps every matrix after the first.
  const std::size_t es_in = in == DType::f32 ? 4 : 2, es_out = out == DType::f32 ? 4 : 2;
  auto aligned = [](const void* p, std::int64_t stride_bytes) {
    return std::min(alignment_of(p),
                    alignment_of(reinterpret_cast<const void*>(
                        static_cast<std::uintptr_t>(stride_bytes == 0 ? 256 : stride_bytes))));
  };
  const int align_a = aligned(a, stride_a * es_in), align_b = aligned(b, stride_b * es_in),
            align_c = aligned(c, stride_c * es_out);
  Blas::Impl& impl = blas.impl();
  const PlanKey key{static_cast<int>(in),
                    static_cast<int>(out),
                    m,
                    n,
                    k,
                    trans_a,
                    trans_b,
                    lda,
                    ldb,
                    ldc,
                    align_a,
                    align_b,
                    align_c,
                    beta == 0.0f,
                    batch,
                    stride_a,
                    stride_b,
                    stride_c};
  auto it = impl.plans.find(key);
  if (it == impl.plans.end()) {
    Plan p;
    TROUPE_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    // Column-major view: first operand is B (M = n), second is A (N = m).
    const cublasOperation_t op_first = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_second = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    TROUPE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA,
                                                       &op_first, sizeof(op_first)));
    TROUPE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB,
                                                       &op_second, sizeof(op_second)));
    // Stored shapes (column-major rows x cols): B is [n,k] or, transposed, [k,n]; A likewise.
    TROUPE_CUBLAS_CHECK(
        cublasLtMatrixLayoutCreate(&p.a, tin, trans_b ? k : n, trans_b ? n : k, ldb));
    TROUPE_CUBLAS_CHECK(
        cublasLtMatrixLayoutCreate(&p.b, tin, trans_a ? m : k, trans_a ? k : m, lda));
    TROUPE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, tout, n, m, ldc));
    if (batch > 1) {
      const std::int32_t count = static_cast<std::int32_t>(batch);
      // The column-major view swaps the operands: layout a holds B, layout b holds A.
      const std::pair<cublasLtMatrixLayout_t, std::int64_t> strided[] = {
          {p.a, stride_b}, {p.b, stride_a}, {p.c, stride_c}};
      for (const auto& [layout, stride] : strided) {
        TROUPE_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
            layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
        TROUPE_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
            layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
      }
    }
    if (k > 0) {
      cublasLtMatmulPreference_t pref = nullptr;
      TROUPE_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
      const std::uint64_t ws = impl.workspace_bytes;
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                           sizeof(ws));
      const std::uint32_t al_a = align_b, al_b = align_a, al_c = align_c;
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a,
                                           sizeof(al_a));
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b,
                                           sizeof(al_b));
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c,
                                           sizeof(al_c));
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c,
                                           sizeof(al_c));
      cublasLtMatmulHeuristicResult_t result{};
      int found = 0;
      const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(impl.handle, p.desc, p.a, p.b, p.c,
                                                               p.c, pref, 1, &result, &found);
      cublasLtMatmulPreferenceDestroy(pref);
      if (st != CUBLAS_STATUS_SUCCESS || found == 0)
        throw std::runtime_error(
            "cuda::gemm: cuBLASLt found no algorithm for m=" + std::to_string(m) +
            " n=" + std::to_string(n) + " k=" + std::to_string(k) + " (status " +
            std::to_string(static_cast<int>(st)) + ")");
      p.algo = result.algo;
      p.has_algo = true;
    }
    it = impl.plans.emplace(key, p).first;
  }
  const Plan& p = it->second;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (k == 0) {
    // cuBLASLt needs k ≥ 1; C = beta·C with alpha·0 is a scale (or a clear).
    if (beta != 0.0f && beta != 1.0f)
      throw std::invalid_argument("cuda::gemm: k = 0 with beta other than 0 or 1");
    if (beta == 0.0f)
      for (std::int64_t i = 0; i < batch; ++i)
        TROUPE_CUDA_CHECK(cudaMemset2DAsync(static_cast<char*>(c) + i * stride_c * es_out,
                                            ldc * es_out, 0, n * es_out, m, s));
    return;
  }
  TROUPE_CUBLAS_CHECK(cublasLtMatmul(impl.handle, p.desc, &alpha, b, p.a, a, p.b, &beta, c, p.c, c,
                                     p.c, &p.algo, impl.workspace, impl.workspace_bytes, s));
}

// ---------------------------------------------------------------------------------------------

struct GroupedGemm::Impl {
  int device = 0;
  std::vector<cudaStream_t> streams;  // empty when running on the caller's stream
  std::vector<std::unique_ptr<Blas>> blas;
  cudaEvent_t fork = nullptr;
  std::vector<cudaEvent_t> joins;

  // Helper streams start after what `stream` enqueued so far; returns the stream of call i.
  void begin(cudaStream_t stream) {
    if (streams.empty()) return;
    TROUPE_CUDA_CHECK(cudaEventRecord(fork, stream));
    for (cudaStream_t h : streams) TROUPE_CUDA_CHECK(cudaStreamWaitEvent(h, fork, 0));
  }
  void end(cudaStream_t stream) {
    for (std::size_t i = 0; i < streams.size(); ++i) {
      TROUPE_CUDA_CHECK(cudaEventRecord(joins[i], streams[i]));
      TROUPE_CUDA_CHECK(cudaStreamWaitEvent(stream, joins[i], 0));
    }
  }
  cudaStream_t stream_of(std::int64_t i, cudaStream_t caller) const {
    return streams.empty() ? caller : streams[static_cast<std::size_t>(i) % streams.size()];
  }
  Blas& blas_of(std::int64_t i) {
    return *blas[streams.empty() ? 0 : static_cast<std::size_t>(i) % streams.size()];
  }
};

GroupedGemm::GroupedGemm(int device, int streams) : impl_(std::make_unique<Impl>()) {
  if (streams < 1)
    throw std::invalid_argument("GroupedGemm: streams = " + std::to_string(streams) +
                                ", needs at least 1");
  impl_->device = device;
  int previous = 0;
  TROUPE_CUDA_CHECK(cudaGetDevice(&previous));
  TROUPE_CUDA_CHECK(cudaSetDevice(device));
  if (streams > 1) {
    TROUPE_CUDA_CHECK(cudaEventCreateWithFlags(&impl_->fork, cudaEventDisableTiming));
    for (int i = 0; i < streams; ++i) {
      cudaStream_t s = nullptr;
      TROUPE_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
      impl_->streams.push_back(s);
      cudaEvent_t e = nullptr;
      TROUPE_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
      impl_->joins.push_back(e);
    }
  }
  for (int i = 0; i < streams; ++i) impl_->blas.push_back(std::make_unique<Blas>(device));
  TROUPE_CUDA_CHECK(cudaSetDevice(previous));
}

GroupedGemm::~GroupedGemm() {
  for (cudaStream_t s : impl_->streams) {
    cudaStreamSynchronize(s);
    cudaStreamDestroy(s);
  }
  for (cudaEvent_t e : impl_->joins) cudaEventDestroy(e);
  if (impl_->fork) cudaEventDestroy(impl_->fork);
}

int GroupedGemm::streams() const {
  return static_cast<int>(impl_->blas.size());
}

void GroupedGemm::forward(void* stream, DType dtype, const void* x, const std::int64_t* offsets,
                          std::int64_t groups, const void* w, void* y, std::int64_t in,
                          std::int64_t out) {
  const std::size_t es = dtype_size(dtype);
  const cudaStream_t caller = static_cast<cudaStream_t>(stream);
  impl_->begin(caller);
  std::int64_t issued = 0;
  for (std::int64_t g = 0; g < groups; ++g) {
    const std::int64_t rows = offsets[g + 1] - offsets[g];
    if (rows == 0) continue;
    const auto* xg = static_cast<const char*>(x) + offsets[g] * in * es;
    const auto* wg = static_cast<const char*>(w) + g * out * in * es;
    auto* yg = static_cast<char*>(y) + offsets[g] * out * es;
    gemm(impl_->blas_of(issued), impl_->stream_of(issued, caller), dtype, dtype, false, true, rows,
         out, in, 1.0f, xg, in, wg, in, 0.0f, yg, out);
    ++issued;
  }
  impl_->end(caller);
}

void GroupedGemm::backward(void* stream, DType dtype, const void* x, const std::int64_t* offsets,
                           std::int64_t groups, const void* w, const void* dy, void* dx, void* dw,
                           std::int64_t in, std::int64_t out, bool accumulate) {
  const std::size_t es = dtype_size(dtype);
  const cudaStream_t caller = static_cast<cudaStream_t>(stream);
  impl_->begin(caller);
  // Each group's dx and dw GEMMs go to the same helper stream, one group after another: two
  // independent GEMMs per group keep every helper stream busy.
  for (std::int64_t g = 0; g < groups; ++g) {
    const std::int64_t rows = offsets[g + 1] - offsets[g];
    const cudaStream_t s = impl_->stream_of(g, caller);
    Blas& blas = impl_->blas_of(g);
    auto* dwg = static_cast<char*>(dw) + g * out * in * es;
    if (rows == 0) {
      if (!accumulate) TROUPE_CUDA_CHECK(cudaMemsetAsync(dwg, 0, out * in * es, s));
      continue;
    }
    const auto* xg = static_cast<const char*>(x) + offsets[g] * in * es;
    const auto* wg = static_cast<const char*>(w) + g * out * in * es;
    const auto* dyg = static_cast<const char*>(dy) + offsets[g] * out * es;
    if (dx) {
      auto* dxg = static_cast<char*>(dx) + offsets[g] * in * es;
      gemm(blas, s, dtype, dtype, false, false, rows, in, out, 1.0f, dyg, out, wg, in, 0.0f, dxg,
           in);
    }
    gemm(blas, s, dtype, dtype, true, false, out, in, rows, 1.0f, dyg, out, xg, in,
         accumulate ? 1.0f : 0.0f, dwg, in);
  }
  impl_->end(caller);
}

}  // namespace troupe::cuda
