// Tensors, views, the aligned allocator and TensorHandle sharing.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "memory/tensor.hpp"
#include "memory/tensor_handle.hpp"

using namespace troupe;

TEST_CASE("CPU allocations are 64-byte aligned; zeros is zero-filled") {
  for (std::int64_t n : {0, 1, 3, 17, 1000}) {
    Tensor t = Tensor::empty({n}, DType::f32);
    CHECK(reinterpret_cast<std::uintptr_t>(t.raw_data()) % 64 == 0);
    Tensor z = Tensor::zeros({n}, DType::f32);
    CHECK(reinterpret_cast<std::uintptr_t>(z.raw_data()) % 64 == 0);
    for (float v : z.to_vector()) CHECK(v == 0.0f);
  }
}

TEST_CASE("empty is NaN-filled in poison builds, zeros is zero even on reused memory") {
  // Dirty a block, give it back to the caching allocator, and take the same size class again:
  // without poisoning, empty would show the old contents; zeros must not.
  for (DType dtype : {DType::f32, DType::f16, DType::bf16, DType::i32}) {
    {
      Tensor dirty = Tensor::empty({257}, dtype);
      std::memset(dirty.raw_data(), 0x3C, dirty.nbytes());
    }
    Tensor z = Tensor::zeros({257}, dtype);
    const auto* zb = static_cast<const unsigned char*>(z.raw_data());
    for (std::size_t i = 0; i < z.nbytes(); ++i) REQUIRE(zb[i] == 0);
  }
  if (!Tensor::empty_is_poisoned()) {
    WARN(
        "Tensor::empty is not poisoned in this build (TROUPE_POISON_EMPTY is set for Debug and "
        "TROUPE_SANITIZE builds); skipping the NaN check");
    return;
  }
  for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
    Tensor t = Tensor::empty({1, 129}, dtype);
    for (float v : t.to_vector()) CHECK(std::isnan(v));
  }
  Tensor ints = Tensor::empty({5}, DType::i32);
  for (std::int64_t i = 0; i < 5; ++i) CHECK(ints.data<std::int32_t>()[i] == -1);
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

TEST_CASE("the caching CPU allocator reuses freed blocks within its limit, without clearing them") {
  // Size classes: multiples of 64 up to 4 KiB, then four per power of two.
  CHECK(CachingCpuAllocator::size_class(0) == 64);
  CHECK(CachingCpuAllocator::size_class(65) == 128);
  CHECK(CachingCpuAllocator::size_class(4096) == 4096);
  CHECK(CachingCpuAllocator::size_class(4097) == 5120);  // 4096 · 1.25
  CHECK(CachingCpuAllocator::size_class(1 << 20) == (1 << 20));
  CHECK(CachingCpuAllocator::size_class((1 << 20) + 1) == 1310720);  // 2^20 · 1.25

  CachingCpuAllocator allocator(1 << 20);
  auto* a = static_cast<unsigned char*>(allocator.allocate(10000));
  CHECK(reinterpret_cast<std::uintptr_t>(a) % 64 == 0);
  a[0] = 7;
  a[9999] = 9;
  allocator.deallocate(a, 10000, Readiness::done_on_cpu());
  CHECK(allocator.cached_bytes() == CachingCpuAllocator::size_class(10000));
  // A request of a nearby size in the same class gets the same block back, as it was left:
  // clearing is Tensor::zeros's job, not the allocator's.
  auto* b = static_cast<unsigned char*>(allocator.allocate(10100));
  CHECK(b == a);
  CHECK(b[0] == 7);
  CHECK(b[9999] == 9);
  CHECK(allocator.cached_bytes() == 0);
  allocator.deallocate(b, 10100, Readiness::done_on_cpu());

  // Beyond the cache limit a freed block goes back to the system.
  void* big = allocator.allocate(2 << 20);
  allocator.deallocate(big, 2 << 20, Readiness::done_on_cpu());
  CHECK(allocator.cached_bytes() == CachingCpuAllocator::size_class(10000));
  allocator.release_cached();
  CHECK(allocator.cached_bytes() == 0);
}

TEST_CASE("a block returns to the caching allocator's pool only once its last use has completed") {
  // The stream-ordered rule: a block freed while a kernel (here a ManualEvent standing in for a
  // CUDA event) may still use it must not be handed out again until that use completes.
  CachingCpuAllocator allocator(1 << 20);
  void* a = allocator.allocate(8192);
  auto use = std::make_shared<ManualEvent>("pending kernel");
  allocator.deallocate(a, 8192, Readiness::after(use));
  CHECK(allocator.cached_bytes() == 0);  // pending, not in the pool
  void* b = allocator.allocate(8192);
  CHECK(b != a);
  use->set();
  allocator.deallocate(b, 8192, Readiness::done_on_cpu());
  // Both are in the pool now; the next two requests get both blocks back.
  CHECK(allocator.cached_bytes() == 2 * CachingCpuAllocator::size_class(8192));
  void* c = allocator.allocate(8192);
  void* d = allocator.allocate(8192);
  CHECK(((c == a && d == b) || (c == b && d == a)));
  allocator.deallocate(c, 8192, Readiness::done_on_cpu());
  allocator.deallocate(d, 8192, Readiness::done_on_cpu());
  allocator.release_cached();
}

TEST_CASE("a storage hands the readiness of its last recorded use back to its allocator") {
  CachingCpuAllocator allocator(1 << 20);
  auto use = std::make_shared<ManualEvent>();
  void* first = nullptr;
  {
    Storage storage(allocator, 4096);
    first = storage.data();
    storage.record_use(Readiness::after(use));
  }
  void* other = allocator.allocate(4096);
  CHECK(other != first);
  use->set();
  allocator.deallocate(other, 4096, Readiness::done_on_cpu());
  CHECK(allocator.cached_bytes() == 2 * CachingCpuAllocator::size_class(4096));
  allocator.release_cached();
}

namespace {
// Host memory that says it is on a GPU: stands in for device memory on machines without one.
class PretendDeviceAllocator final : public Allocator {
 public:
  void* allocate(std::size_t bytes) override { return inner_.allocate(bytes); }
  void deallocate(void* ptr, std::size_t bytes, const Readiness& last_use) noexcept override {
    inner_.deallocate(ptr, bytes, last_use);
  }
  Device device() const override { return Device::cuda(0); }

 private:
  CpuAllocator inner_;
};
}  // namespace

TEST_CASE("host access to a device tensor is a clear error, not a crash") {
  PretendDeviceAllocator device;
  Tensor t = Tensor::empty({2, 3}, DType::f32, device);
  Tensor host = Tensor::zeros({2, 3});
  CHECK(t.device() == Device::cuda(0));
  CHECK_THROWS_WITH(t.data<float>(), Catch::Contains("lives on cuda:0"));
  CHECK_THROWS_WITH(t.to_vector(), Catch::Contains("lives on cuda:0"));
  CHECK_THROWS_WITH(host.copy_from(t), Catch::Contains("lives on cuda:0"));
  CHECK_THROWS_WITH(t.copy_from(host), Catch::Contains("lives on cuda:0"));
  CHECK_THROWS_WITH(t.clone(), Catch::Contains("lives on cuda:0"));
  CHECK_THROWS_AS(Tensor::zeros({2}, DType::f32, device), std::logic_error);
}
