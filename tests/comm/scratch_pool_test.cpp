// ScratchPool (comm/scratch_pool.hpp): buffers come back to the pool and are reused best-fit.
#include <catch2/catch.hpp>

#include <thread>

#include "comm/scratch_pool.hpp"

using namespace troupe;

TEST_CASE("a given-back buffer is reused, the smallest one that fits first") {
  auto pool = ScratchPool::create();
  std::byte* big = nullptr;
  std::byte* small = nullptr;
  {
    auto a = pool->acquire(1 << 20);
    auto b = pool->acquire(1 << 10);
    big = a.data();
    small = b.data();
    CHECK(big != small);
  }  // both go back to the pool
  auto fits_small = pool->acquire(100);
  CHECK(fits_small.data() == small);
  auto fits_big = pool->acquire(1 << 19);
  CHECK(fits_big.data() == big);
  auto fresh = pool->acquire(1 << 10);  // none free: a new buffer
  CHECK(fresh.data() != small);
  CHECK(fresh.data() != big);
}

TEST_CASE("a buffer given back from another thread is reused, and buffers keep their pool alive") {
  auto pool = ScratchPool::create();
  auto buffer = pool->acquire(64);
  std::byte* first = buffer.data();
  std::thread([b = std::move(buffer)]() mutable { auto dropped = std::move(b); }).join();
  CHECK(pool->acquire(64).data() == first);

  // A plan may outlive its communicator: its buffers then hold the pool, which goes with the last.
  auto orphan = pool->acquire(64);
  std::weak_ptr<ScratchPool> watch = pool;
  pool.reset();
  CHECK_FALSE(watch.expired());
  { auto dropped = std::move(orphan); }
  CHECK(watch.expired());
}

TEST_CASE("a full pool keeps its largest buffers") {
  auto pool = ScratchPool::create();
  {
    std::vector<ScratchPool::Buffer> small;
    for (int i = 0; i < 40; ++i) small.push_back(pool->acquire(16));
  }  // fills the pool with small buffers
  std::byte* big = nullptr;
  {
    auto b = pool->acquire(1 << 20);
    big = b.data();
  }
  CHECK(pool->acquire(1 << 20).data() == big);  // kept, in place of a small one
}
