// Tensor descriptors, views and copies.
#include "memory/tensor.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <type_traits>

namespace troupe {

std::int64_t shape_numel(const Shape& shape) {
  return std::accumulate(shape.begin(), shape.end(), std::int64_t{1}, std::multiplies<>());
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  std::int64_t stride = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  return strides;
}

std::string shape_string(const Shape& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

Tensor::Tensor(TensorDesc desc, std::shared_ptr<Storage> storage)
    : desc_(std::move(desc)), storage_(std::move(storage)) {}

Tensor Tensor::empty(const Shape& shape, DType dtype, Allocator& allocator) {
  for (auto extent : shape)
    if (extent < 0)
      throw std::invalid_argument("Tensor: negative extent in shape " + shape_string(shape));
  TensorDesc desc{shape, contiguous_strides(shape), dtype, allocator.device(), 0};
  auto storage = std::make_shared<Storage>(
      allocator, static_cast<std::size_t>(shape_numel(shape)) * dtype_size(dtype));
  Tensor t(std::move(desc), std::move(storage));
  if (empty_is_poisoned() && t.device().is_host()) std::memset(t.raw_data(), 0xFF, t.nbytes());
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Allocator& allocator) {
  Tensor t = empty(shape, dtype, allocator);
  if (!t.device().is_host())
    throw std::logic_error("Tensor::zeros: no fill for " + to_string(t.device()) +
                           " in this build");
  std::memset(t.raw_data(), 0, t.nbytes());
  return t;
}

bool Tensor::empty_is_poisoned() {
#ifdef TROUPE_POISON_EMPTY
  return true;
#else
  return false;
#endif
}

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape) {
  if (static_cast<std::int64_t>(values.size()) != shape_numel(shape))
    throw std::invalid_argument("Tensor::from_vector: " + std::to_string(values.size()) +
                                " values do not fill shape " + shape_string(shape));
  Tensor t = empty(shape);
  std::copy(values.begin(), values.end(), t.data<float>());
  return t;
}

std::int64_t Tensor::size(std::int64_t axis) const {
  if (axis < 0) axis += dim();
  if (axis < 0 || axis >= dim())
    throw std::out_of_range("Tensor::size: axis out of range for shape " + shape_string(shape()));
  return desc_.shape[static_cast<std::size_t>(axis)];
}

void* Tensor::raw_data() const {
  if (!storage_) return nullptr;
  return static_cast<char*>(storage_->data()) +
         desc_.offset * static_cast<std::int64_t>(dtype_size(desc_.dtype));
}

namespace {
template <class T>
constexpr bool matches(DType d) {
  if constexpr (std::is_same_v<T, float>) return d == DType::f32;
  if constexpr (std::is_same_v<T, std::uint16_t>) return d == DType::f16 || d == DType::bf16;
  if constexpr (std::is_same_v<T, std::int32_t>) return d == DType::i32;
  if constexpr (std::is_same_v<T, std::int64_t>) return d == DType::i64;
  return false;
}
}  // namespace

namespace {
// Host code may touch only host bytes: a device tensor read or written here is a clear error, not a
// crash (copies to and from a GPU go through the CUDA backend's copy stream).
void require_host(const TensorDesc& d, const char* function) {
  if (!d.device.is_host())
    throw std::logic_error(std::string(function) + ": the tensor lives on " + to_string(d.device) +
                           ", not in host memory; copy it to the host first");
}
}  // namespace

template <class T>
T* Tensor::data() const {
  if (!matches<std::remove_const_t<T>>(desc_.dtype))
    throw std::logic_error("Tensor::data: element type does not match dtype " +
                           std::string(dtype_name(desc_.dtype)));
  require_host(desc_, "Tensor::data");
  if (!desc_.is_contiguous()) throw std::logic_error("Tensor::data: tensor is not contiguous");
  return static_cast<T*>(raw_data());
}

template float* Tensor::data<float>() const;
template const float* Tensor::data<const float>() const;
template std::uint16_t* Tensor::data<std::uint16_t>() const;
template std::int32_t* Tensor::data<std::int32_t>() const;
template std::int64_t* Tensor::data<std::int64_t>() const;

Tensor Tensor::view(const Shape& shape) const {
  if (!desc_.is_contiguous()) throw std::logic_error("Tensor::view: tensor is not contiguous");
  if (shape_numel(shape) != numel())
    throw std::invalid_argument("Tensor::view: cannot view " + shape_string(this->shape()) +
                                " as " + shape_string(shape));
  TensorDesc d = desc_;
  d.shape = shape;
  d.strides = contiguous_strides(shape);
  return Tensor(std::move(d), storage_);
}

Tensor Tensor::slice_rows(std::int64_t begin, std::int64_t end) const {
  if (dim() < 1 || begin < 0 || end < begin || end > desc_.shape[0])
    throw std::out_of_range("Tensor::slice_rows: [" + std::to_string(begin) + ", " +
                            std::to_string(end) + ") out of range for shape " +
                            shape_string(shape()));
  TensorDesc d = desc_;
  d.shape[0] = end - begin;
  d.offset += begin * desc_.strides[0];
  return Tensor(std::move(d), storage_);
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype());
  out.copy_from(*this);
  return out;
}

void Tensor::copy_from(const Tensor& other) {
  if (other.shape() != shape() || other.dtype() != dtype())
    throw std::invalid_argument("Tensor::copy_from: " + shape_string(other.shape()) + " " +
                                std::string(dtype_name(other.dtype())) + " into " +
                                shape_string(shape()) + " " + std::string(dtype_name(dtype())));
  require_host(desc_, "Tensor::copy_from");
  require_host(other.desc_, "Tensor::copy_from");
  if (!desc_.is_contiguous() || !other.desc_.is_contiguous())
    throw std::logic_error("Tensor::copy_from: both tensors must be contiguous");
  if (nbytes() > 0) std::memmove(raw_data(), other.raw_data(), nbytes());
}

void Tensor::fill(float value) {
  float* p = data<float>();
  std::fill(p, p + numel(), value);
}

std::vector<float> Tensor::to_vector() const {
  require_host(desc_, "Tensor::to_vector");
  if (!desc_.is_contiguous()) throw std::logic_error("Tensor::to_vector: tensor is not contiguous");
  std::vector<float> out(static_cast<std::size_t>(numel()));
  convert(raw_data(), dtype(), out.data(), DType::f32, out.size());
  return out;
}

}  // namespace troupe
