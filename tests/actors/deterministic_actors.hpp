// Protocol tests on CAF's deterministic test coordinator: an actor system whose scheduler runs
// nothing until the test says so, and a request helper that runs every queued message and then
// takes the reply, which must be in the mailbox by then. No wall-clock timeout, no sleep: a
// missing reply fails the test at once instead of hanging it.
#pragma once

#include <catch2/catch.hpp>

#include <utility>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "actors/messages.hpp"

namespace troupe::testing {

class DeterministicActors {
 public:
  DeterministicActors() : system_(configure(cfg_)) {}

  caf::actor_system& system() { return system_; }
  caf::scheduler::test_coordinator& scheduler() {
    return dynamic_cast<caf::scheduler::test_coordinator&>(system_.scheduler());
  }

  // Sends `msg` to `to` as a request, runs the queued messages one at a time until none is left,
  // then hands the reply to `on_reply` (an error fails the test). The request is type-checked
  // against `to`'s interface, and `on_reply` against the reply it promises.
  template <class Handle, class Msg, class OnReply>
  void ask(const Handle& to, Msg msg, OnReply on_reply) {
    caf::scoped_actor self{system_};
    auto reply = self->request(to, caf::infinite, std::move(msg));
    scheduler().run();
    REQUIRE_FALSE(self->mailbox().empty());  // the reply is there, or receiving would wait forever
    std::move(reply).receive(on_reply,
                             [](caf::error& e) { FAIL("request failed: " << caf::to_string(e)); });
  }

 private:
  static caf::actor_system_config& configure(caf::actor_system_config& cfg) {
    cfg.load<caf::id_block::troupe>();
    cfg.set("scheduler.policy", caf::atom("testing"));
    return cfg;
  }

  caf::actor_system_config cfg_;
  caf::actor_system system_;
};

}  // namespace troupe::testing
