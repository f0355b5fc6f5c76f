// Trace actor (see trace_actor.hpp).
#include "actors/trace_actor.hpp"

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

namespace troupe {
namespace {

trace_actor::behavior_type trace_behavior(trace_actor::pointer,
                                          std::shared_ptr<TraceRecorder> recorder) {
  return {
      [recorder](const flush_trace& msg) {
        recorder->write_chrome_trace(msg.path);
        spdlog::info("trace written to {}", msg.path);
      },
  };
}

}  // namespace

trace_actor spawn_trace_actor(caf::actor_system& system, std::shared_ptr<TraceRecorder> recorder) {
  return system.spawn(trace_behavior, std::move(recorder));
}

}  // namespace troupe
