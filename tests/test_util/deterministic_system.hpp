// An actor system on CAF's deterministic test coordinator, with troupe's message types loaded.
// Nothing runs until the test runs jobs (sched.run(), run_once(), run_jobs_filtered(...)), so a
// test decides which actor handles which message when. ask() is a request that runs every queued
// message and then takes the reply, which must be in the mailbox by then: no wall-clock timeout,
// no sleep, and a missing reply fails the test at once instead of hanging it.
#pragma once

#include <catch2/catch.hpp>

#include <utility>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "actors/messages.hpp"

namespace troupe::test {

struct DeterministicSystem {
  DeterministicSystem()
      : system(configure(config)),
        sched(dynamic_cast<caf::scheduler::test_coordinator&>(system.scheduler())) {}

  caf::actor_system_config config;  // the system keeps a reference: declared before it
  caf::actor_system system;
  caf::scheduler::test_coordinator& sched;

  // Sends `msg` to `to` as a request, runs the queued messages until none is left, then hands the
  // reply to `on_reply` (an error fails the test). The request is type-checked against `to`'s
  // interface, and `on_reply` against the reply it promises.
  template <class Handle, class Msg, class OnReply>
  void ask(const Handle& to, Msg msg, OnReply on_reply) {
    caf::scoped_actor self{system};
    auto reply = self->request(to, caf::infinite, std::move(msg));
    sched.run();
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
};

}  // namespace troupe::test
