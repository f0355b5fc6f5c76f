// What every troupe actor gets at spawn time besides its own work: its trace track name and the
// (optional) recorder, with the three calls actors make: stamp an outgoing message, record an
// incoming one as a flow event, and time a piece of work as a span on the actor's track.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "actors/completion_source.hpp"
#include "actors/messages.hpp"
#include "trace/trace_recorder.hpp"

namespace troupe {

// A span that ends when it goes out of scope; inert when tracing is off.
class ActorSpan {
 public:
  ActorSpan(TraceRecorder* recorder, const std::string& track, const char* name,
            const char* category)
      : recorder_(recorder),
        id_(recorder ? recorder->begin_span(track, name, category) : no_span) {}
  ~ActorSpan() {
    if (recorder_) recorder_->end_span(id_);
  }
  ActorSpan(const ActorSpan&) = delete;
  ActorSpan& operator=(const ActorSpan&) = delete;

 private:
  TraceRecorder* recorder_;
  SpanId id_;
};

struct ActorContext {
  std::string track;                        // e.g. "gate.l0"; also the actor's name in logs
  std::shared_ptr<TraceRecorder> recorder;  // null when tracing is off
  // Delivers handle_ready for handles that were not ready on arrival (actors/readiness_gate.hpp);
  // null: the process-wide polling source.
  std::shared_ptr<CompletionSource> completion;

  bool tracing() const { return recorder && recorder->enabled(); }
  TraceStamp stamp() const {
    return tracing() ? TraceStamp{track, recorder->now_us()} : TraceStamp{};
  }
  // Records the receipt of a message sent with `stamp` as a flow from its sender to this track.
  void received(const TraceStamp& stamp, const char* type, std::int64_t micro_batch,
                std::uint64_t bytes) const {
    if (tracing() && !stamp.from.empty())
      recorder->message(stamp.from, track, type, micro_batch, bytes, stamp.sent_us,
                        recorder->now_us());
  }
  ActorSpan span(const char* name, const char* category) const {
    return ActorSpan(tracing() ? recorder.get() : nullptr, track, name, category);
  }
};

}  // namespace troupe
