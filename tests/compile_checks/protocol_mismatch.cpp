// Compile-only check that actor protocols are types: sending an actor a message its interface
// does not accept must not compile (tests/CMakeLists.txt expects this compile to fail). Built with
// -DTROUPE_ACCEPTED_MESSAGE the same file sends a message the interface accepts and must compile,
// so the failure above is the type check and not a broken include path or flag.
#include "actors/protocols.hpp"

namespace troupe {

void send_to_shard(caf::event_based_actor* self, const expert_shard_actor& shard) {
#ifdef TROUPE_ACCEPTED_MESSAGE
  self->send(shard, expert_backward{});
#else
  self->send(shard, backward_work{});  // a gate's message: an expert shard does not accept it
#endif
}

}  // namespace troupe
