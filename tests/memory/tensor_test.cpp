// Tensors, views, the aligned allocator and TensorHandle sharing.
#include <catch2/catch.hpp>

#include <cstdint>

#include "memory/tensor.hpp"
#include "memory/tensor_handle.hpp"

using namespace troupe;

TEST_CASE("CPU allocations are 64-byte aligned and zeroed") {
  for (std::int64_t n : {0, 1, 3, 17, 1000}) {
    Tensor t = Tensor::empty({n}, DType::f32);
    CHECK(reinterpret_cast<std::uintptr_t>(t.raw_data()) % 64 == 0);
    for (float v : t.to_vector()) CHECK(v == 0.0f);
  }
}

TEST_CASE("views share storage and slices offset into it") {
  Tensor t = Tensor::from_vector({0, 1, 2, 3, 4, 5}, {3, 2});
  Tensor flat = t.view({6});
  flat.data<float>()[5] = 50.0f;
  CHECK(t.to_vector()[5] == 50.0f);
  Tensor rows = t.slice_rows(1, 3);
  CHECK(rows.shape() == Shape{2, 2});
  CHECK(rows.to_vector() == std::vector<float>{2, 3, 4, 50});
  CHECK(rows.storage() == t.storage());
  CHECK_THROWS_AS(t.view({4}), std::invalid_argument);
  CHECK_THROWS_AS(t.slice_rows(2, 4), std::out_of_range);
  CHECK_THROWS_AS(t.data<std::int32_t>(), std::logic_error);
}

TEST_CASE("clone is deep and copy_from checks shapes") {
  Tensor a = Tensor::from_vector({1, 2, 3}, {3});
  Tensor b = a.clone();
  b.data<float>()[0] = 9.0f;
  CHECK(a.to_vector()[0] == 1.0f);
  CHECK_THROWS_AS(b.copy_from(Tensor::zeros({4})), std::invalid_argument);
}

TEST_CASE("TensorHandle copies share one tensor and are born ready on the CPU") {
  TensorHandle h(Tensor::from_vector({1, 2}, {2}));
  TensorHandle copy = h;
  CHECK(h.ready());
  CHECK(copy.use_count() == 2);
  CHECK(&copy.tensor() == &h.tensor());
  CHECK(h.bytes() == 8);
  CHECK_FALSE(TensorHandle().valid());
}
