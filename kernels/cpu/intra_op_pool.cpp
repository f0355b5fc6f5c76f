// The intra-op thread pool (see intra_op_pool.hpp): persistent workers woken per call, chunk i of
// a call always runs [n·i/t, n·(i+1)/t) so the split depends only on n and the thread count.
#include "kernels/cpu/intra_op_pool.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace troupe::cpu {
namespace {

thread_local bool t_in_chunk = false;

// Marks the calling thread as inside a chunk for its scope, so nested calls run inline.
struct InChunk {
  bool outer = t_in_chunk;
  InChunk() { t_in_chunk = true; }
  ~InChunk() { t_in_chunk = outer; }
  InChunk(const InChunk&) = delete;
  InChunk& operator=(const InChunk&) = delete;
};

class Pool {
 public:
  ~Pool() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread& t : workers_) t.join();
  }

  // Runs chunks 1..chunks−1 on workers and chunk 0 here. False if the pool is busy (another
  // thread's call is in flight), in which case the caller runs the loop itself.
  bool run(int chunks, const std::function<void(int)>& chunk) {
    std::unique_lock busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    ensure_workers(chunks - 1);
    {
      std::lock_guard lock(mutex_);
      chunk_ = &chunk;
      chunks_ = chunks;
      pending_ = chunks - 1;
      error_ = nullptr;
      ++generation_;
    }
    wake_.notify_all();
    std::exception_ptr error;
    try {
      chunk(0);
    } catch (...) {
      error = std::current_exception();
    }
    std::unique_lock lock(mutex_);
    done_.wait(lock, [&] { return pending_ == 0; });
    chunk_ = nullptr;
    if (!error) error = error_;
    lock.unlock();
    if (error) std::rethrow_exception(error);
    return true;
  }

 private:
  void ensure_workers(int count) {
    while (static_cast<int>(workers_.size()) < count) {
      const int index = static_cast<int>(workers_.size()) + 1;
      workers_.emplace_back([this, index] { work(index); });
    }
  }

  void work(int index) {
    t_in_chunk = true;
    std::uint64_t seen = 0;
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      if (index >= chunks_) continue;
      const std::function<void(int)>* chunk = chunk_;
      lock.unlock();
      std::exception_ptr error;
      try {
        (*chunk)(index);
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      if (error && !error_) error_ = error;
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::mutex busy_;  // held for a whole call: one call at a time
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* chunk_ = nullptr;
  int chunks_ = 0, pending_ = 0;
  std::uint64_t generation_ = 0;
  std::exception_ptr error_;
  bool stop_ = false;
};

Pool& pool() {
  static Pool p;
  return p;
}

std::atomic<int> g_threads{1};

}  // namespace

void set_intra_op_threads(int threads) {
  if (threads < 1)
    throw std::invalid_argument("set_intra_op_threads: threads = " + std::to_string(threads) +
                                ", must be >= 1");
  g_threads.store(threads, std::memory_order_relaxed);
}

int intra_op_threads() {
  return g_threads.load(std::memory_order_relaxed);
}

void parallel_for(std::int64_t n, std::int64_t grain, int threads,
                  const std::function<void(std::int64_t, std::int64_t)>& body) {
  if (n <= 0) return;
  const std::int64_t by_grain = std::max<std::int64_t>(n / std::max<std::int64_t>(grain, 1), 1);
  const int chunks = static_cast<int>(std::min<std::int64_t>(std::max(threads, 1), by_grain));
  if (chunks > 1 && !t_in_chunk) {
    const std::function<void(int)> chunk = [&](int i) {
      const InChunk in_chunk;
      body(n * i / chunks, n * (i + 1) / chunks);
    };
    if (pool().run(chunks, chunk)) return;
  }
  body(0, n);
}

}  // namespace troupe::cpu
