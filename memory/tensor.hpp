// Tensor = descriptor (shape, strides, dtype, device, element offset) + shared storage.
//
// The descriptor is a small value separate from the bytes (ggml's split): views (slices, reshapes)
// make new descriptors over the same Storage and never copy. Kernels take raw pointers and sizes;
// Tensor's job is ownership and bookkeeping, and checked access for the code that calls kernels.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "memory/allocator.hpp"
#include "memory/dtype.hpp"

namespace troupe {

using Shape = std::vector<std::int64_t>;

std::int64_t shape_numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);
std::string shape_string(const Shape& shape);

struct TensorDesc {
  Shape shape;
  Shape strides;  // in elements
  DType dtype = DType::f32;
  Device device = Device::cpu();
  std::int64_t offset = 0;  // in elements, from the start of the storage

  std::int64_t numel() const { return shape_numel(shape); }
  std::int64_t dim() const { return static_cast<std::int64_t>(shape.size()); }
  bool is_contiguous() const { return strides == contiguous_strides(shape); }
};

class Tensor {
 public:
  Tensor() = default;
  Tensor(TensorDesc desc, std::shared_ptr<Storage> storage);

  // A new contiguous tensor whose contents are unspecified: for outputs a kernel overwrites
  // completely (that is the point, no clearing pass). In Debug and sanitizer builds
  // (TROUPE_POISON_EMPTY) host memory is filled with 0xFF bytes, a NaN in every float dtype (and
  // −1 in the integer ones), so code that reads before writing shows up in the tests.
  static Tensor empty(const Shape& shape, DType dtype = DType::f32,
                      Allocator& allocator = cpu_allocator());
  // A new contiguous zero-filled tensor: for anything accumulated into (`+=` gradients, optimizer
  // state, scatter-add outputs).
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32,
                      Allocator& allocator = cpu_allocator());
  // Whether this build poisons Tensor::empty (see above).
  static bool empty_is_poisoned();
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape);

  bool defined() const { return storage_ != nullptr; }
  const TensorDesc& desc() const { return desc_; }
  const Shape& shape() const { return desc_.shape; }
  std::int64_t size(std::int64_t axis) const;
  std::int64_t numel() const { return desc_.numel(); }
  std::int64_t dim() const { return desc_.dim(); }
  DType dtype() const { return desc_.dtype; }
  Device device() const { return desc_.device; }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype()); }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  void* raw_data() const;
  // Typed access; throws std::logic_error when T does not match the dtype or the tensor is not
  // contiguous host memory (kernels index contiguous memory).
  template <class T>
  T* data() const;

  // Views sharing storage.
  Tensor view(const Shape& shape) const;                          // contiguous reshape
  Tensor slice_rows(std::int64_t begin, std::int64_t end) const;  // rows of the first axis

  Tensor clone() const;                  // contiguous deep copy
  void copy_from(const Tensor& other);   // same shape and dtype
  void fill(float value);                // f32 only
  std::vector<float> to_vector() const;  // any float dtype, converted to f32

 private:
  TensorDesc desc_;
  std::shared_ptr<Storage> storage_;
};

}  // namespace troupe
