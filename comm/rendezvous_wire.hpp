// What the rendezvous server's two services share on the wire (internal to comm/): the key-value
// store (comm/rendezvous.cpp) and the peer watch (comm/peer_watch.cpp, comm/liveness_board.cpp).
//
// A frame is op (1 byte), key length and value length (4 bytes each, big-endian), key, value. A
// connection's first frame says which service it wants. Clients run every step under a deadline,
// so an absent or wedged master is an error naming it, never a hang.
#pragma once

// Before Asio: Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <array>
#include <boost/asio.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>

namespace troupe::wire {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr std::size_t header_bytes = 9;  // op, key length, value length

void put_u32(char* out, std::uint32_t v);
std::uint32_t get_u32(const char* in);

struct Frame {
  char op = 0;
  std::string key;
  std::string value;
};

// The bytes of one frame.
std::string encode(char op, const std::string& key = "", const std::string& value = "");

// "2 s", "0.3 s": durations in messages.
std::string seconds_text(std::chrono::milliseconds ms);

// Reads one socket's frames, one read in flight at a time.
class FrameReader {
 public:
  using Done = std::function<void(boost::system::error_code, Frame)>;
  // Reads the next frame; `done` runs on the socket's executor (what it captures keeps its owner,
  // and so this reader, alive until then).
  void read(tcp::socket& socket, Done done);

 private:
  std::array<char, header_bytes> header_{};
  std::string body_;
};

// Writes frames to one socket in the order sent, one write in flight at a time (Asio forbids two
// async_writes on one socket at once).
class FrameWriter {
 public:
  using Sent = std::function<void(boost::system::error_code)>;
  // Queues a frame; `sent` runs on the socket's executor once it is written or failed (what it
  // captures keeps its owner, and so this writer, alive until then).
  void send(tcp::socket& socket, std::string frame, Sent sent);

 private:
  void write_front(tcp::socket& socket);
  std::deque<std::pair<std::string, Sent>> queue_;
};

// Starts an asynchronous step on `socket` (start(handler)) and runs `io` on this thread until it
// completes or `deadline` passes; returns its error, timed_out when the deadline passed (the socket
// is then closed, which cancels the step).
template <class Start>
boost::system::error_code run_until(asio::io_context& io, tcp::socket& socket,
                                    Clock::time_point deadline, Start start) {
  boost::system::error_code result = asio::error::would_block;
  start([&result](boost::system::error_code ec, auto&&...) { result = ec; });
  io.restart();
  io.run_until(deadline);
  if (result == asio::error::would_block) {
    socket.close();  // its handler runs with operation_aborted
    io.restart();
    io.run();
    return asio::error::timed_out;
  }
  return result;
}

// Connects `socket` to host:port on this thread, retrying at a short interval until `deadline`
// (ranks may start before rank 0 listens); returns the last error, none once connected.
boost::system::error_code connect_until(asio::io_context& io, tcp::socket& socket,
                                        const std::string& host, std::uint16_t port,
                                        Clock::time_point deadline);

}  // namespace troupe::wire
