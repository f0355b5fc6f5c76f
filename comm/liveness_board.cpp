// The liveness board: one Watcher per registered rank, all on the rendezvous server's thread.
#include "comm/liveness_board.hpp"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <stdexcept>
#include <utility>

#include "comm/silence_timer.hpp"

namespace troupe {

namespace {

template <class Int>
bool parse_whole(const std::string& text, Int& out) {
  const char* end = text.data() + text.size();
  const auto [stop, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && stop == end;
}

}  // namespace

// One rank's watch connection: answers its heartbeats, records its leave, and declares it lost
// when the connection closes first or stays silent past the rank's timeout. Handlers hold it alive.
class LivenessBoard::Watcher : public std::enable_shared_from_this<Watcher> {
 public:
  Watcher(LivenessBoard& board, wire::tcp::socket socket, int rank,
          std::chrono::milliseconds timeout)
      : board_(board),
        socket_(std::move(socket)),
        rank_(rank),
        silence_(socket_.get_executor(), timeout) {}

  // Tells the rank why it cannot register, then closes.
  void refuse(const std::string& why) {
    finished_ = true;
    writer_.send(socket_, wire::encode('e', "", why),
                 [self = shared_from_this()](boost::system::error_code) { self->close(); });
  }

  void start(const std::vector<std::pair<int, std::string>>& already_lost) {
    send(wire::encode('a'));
    for (const auto& [rank, reason] : already_lost) tell_lost(rank, reason);
    read_next();
    silence_.start([self = shared_from_this()] {
      self->lose(fmt::format("rank {} lost: no heartbeat for {} (the process is stopped or wedged)",
                             self->rank_, wire::seconds_text(self->silence_.timeout())));
    });
  }

  void tell_lost(int rank, const std::string& reason) {
    send(wire::encode('d', std::to_string(rank), reason));
  }

 private:
  // A failed write needs no handling of its own: the connection's read fails too.
  void send(std::string frame) {
    writer_.send(socket_, std::move(frame),
                 [self = shared_from_this()](boost::system::error_code) {});
  }

  void read_next() {
    reader_.read(socket_, [self = shared_from_this()](boost::system::error_code ec,
                                                      wire::Frame frame) {
      if (ec) {
        self->lose(fmt::format(
            "rank {} lost: its connection to the master closed without a leave ({}; the process "
            "died)",
            self->rank_, ec.message()));
        return;
      }
      self->on_frame(frame);
    });
  }

  void on_frame(const wire::Frame& frame) {
    if (frame.op == 'h') {
      silence_.heard();
      send(wire::encode('h'));
    } else if (frame.op == 'l' && !finished_) {
      finished_ = true;
      silence_.stop();
      board_.left(rank_);
      send(wire::encode('l'));
    } else if (!finished_) {
      lose(
          fmt::format("rank {} lost: it sent an unknown watch message (op {:d})", rank_, frame.op));
      return;
    }
    read_next();  // after a leave, until the rank closes the connection
  }

  void lose(const std::string& reason) {
    if (finished_) return;  // it left, or was already declared lost
    close();
    board_.lost(rank_, reason);
  }

  void close() {
    finished_ = true;
    silence_.stop();
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

  LivenessBoard& board_;
  wire::tcp::socket socket_;
  int rank_;
  SilenceTimer silence_;
  wire::FrameReader reader_;
  wire::FrameWriter writer_;
  bool finished_ = false;  // left or lost: nothing more to report
};

void LivenessBoard::watch(wire::tcp::socket socket, const wire::Frame& request) {
  int rank = -1;
  long long timeout_ms = 0;
  const bool parsed = parse_whole(request.key, rank) && rank >= 0 &&
                      parse_whole(request.value, timeout_ms) && timeout_ms > 0;
  const std::chrono::milliseconds timeout(parsed ? timeout_ms : 1);
  auto watcher = std::make_shared<Watcher>(*this, std::move(socket), rank, timeout);
  if (!parsed) {
    watcher->refuse(fmt::format(
        "malformed watch request (rank '{}', timeout '{}' ms): expected a rank >= 0 and a "
        "timeout > 0",
        request.key, request.value));
    return;
  }
  std::string refusal;
  std::vector<std::pair<int, std::string>> already_lost;
  {
    const std::lock_guard lock(mutex_);
    Entry& entry = ranks_[rank];
    if (entry.watcher) {
      refusal = fmt::format("rank {} is already watched from another connection", rank);
    } else if (entry.state == State::lost) {
      refusal = fmt::format("rank {} was already declared lost ({})", rank, entry.reason);
    } else {
      entry = Entry{State::watching, "", watcher};
      for (const auto& [other, e] : ranks_) {
        if (e.state == State::lost) already_lost.emplace_back(other, e.reason);
      }
    }
  }
  if (!refusal.empty()) {
    spdlog::warn("peer watch: refused a watch: {}", refusal);
    watcher->refuse(refusal);
    return;
  }
  changed_.notify_all();
  spdlog::debug("peer watch: rank {} registered (declared lost after {} of silence)", rank,
                wire::seconds_text(timeout));
  watcher->start(already_lost);
}

void LivenessBoard::left(int rank) {
  {
    const std::lock_guard lock(mutex_);
    ranks_[rank] = Entry{State::left, "", nullptr};
  }
  changed_.notify_all();
  spdlog::debug("peer watch: rank {} left", rank);
}

void LivenessBoard::lost(int rank, const std::string& reason) {
  std::vector<std::shared_ptr<Watcher>> others;
  {
    const std::lock_guard lock(mutex_);
    ranks_[rank] = Entry{State::lost, reason, nullptr};
    for (const auto& [other, e] : ranks_) {
      if (e.watcher) others.push_back(e.watcher);
    }
  }
  changed_.notify_all();
  spdlog::warn("peer watch: {}; telling {} other rank(s)", reason, others.size());
  for (const auto& watcher : others) watcher->tell_lost(rank, reason);
}

std::vector<int> LivenessBoard::wait_for_leaves(int world, std::chrono::milliseconds timeout) {
  if (world < 1) {
    throw std::invalid_argument(
        fmt::format("peer watch: wait_for_leaves needs a world size >= 1, got {}", world));
  }
  const auto not_done = [&] {
    std::vector<int> ranks;
    for (int rank = 0; rank < world; ++rank) {
      const auto found = ranks_.find(rank);
      if (found == ranks_.end() || found->second.state == State::watching) ranks.push_back(rank);
    }
    return ranks;
  };
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return not_done().empty(); });
  const std::vector<int> pending = not_done();
  if (!pending.empty()) {
    spdlog::warn(
        "peer watch: after {}, rank(s) {} of {} had not left (still watched, or never "
        "registered)",
        wire::seconds_text(timeout), fmt::join(pending, ", "), world);
  }
  return pending;
}

}  // namespace troupe
