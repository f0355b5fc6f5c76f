// The trace actor: owns the run's TraceRecorder and writes it out on request. Actors record spans
// and message flows straight into the (thread-safe) recorder, which costs one atomic load when
// tracing is off; sending every event as a message would perturb the very timing it measures.
//
// Protocol: flush_trace{path} → unit (the Chrome-trace JSON is written atomically).
#pragma once

#include <memory>

#include "actors/protocols.hpp"
#include "trace/trace_recorder.hpp"

namespace troupe {

trace_actor spawn_trace_actor(caf::actor_system& system, std::shared_ptr<TraceRecorder> recorder);

}  // namespace troupe
