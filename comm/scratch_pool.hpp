// ScratchPool: staging buffers that host collectives reuse from one operation to the next.
//
// A reduction receives each peer's contribution into a staging buffer. Allocating those per call
// costs more than the transfer at large sizes: fresh memory is page-faulted in again every time,
// and UCX meets a new address its registration cache has never seen. The pool hands out buffers
// that stay mapped, and takes them back when the operation that used them is gone (the Buffer's
// destructor, from whichever thread drops it).
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

namespace troupe {

class ScratchPool : public std::enable_shared_from_this<ScratchPool> {
 public:
  // Uninitialised bytes: every user overwrites its staging before reading it.
  struct Storage {
    std::unique_ptr<std::byte[]> bytes;
    std::size_t size = 0;
  };

  // Owns its storage until destroyed, then gives it back to the pool (if the pool still exists).
  class Buffer {
   public:
    Buffer(std::shared_ptr<ScratchPool> pool, Storage storage)
        : pool_(std::move(pool)), storage_(std::move(storage)) {}
    Buffer(Buffer&&) = default;
    Buffer& operator=(Buffer&&) = default;
    ~Buffer();
    std::byte* data() { return storage_.bytes.get(); }

   private:
    std::shared_ptr<ScratchPool> pool_;
    Storage storage_;
  };

  // Pools live in shared_ptrs: buffers keep theirs alive.
  static std::shared_ptr<ScratchPool> create() {
    return std::shared_ptr<ScratchPool>(new ScratchPool());
  }
  // A buffer of at least `bytes` bytes, with unspecified contents.
  Buffer acquire(std::size_t bytes);

 private:
  ScratchPool() = default;
  void give_back(Storage storage);

  std::mutex mutex_;
  std::vector<Storage> free_;
};

}  // namespace troupe
