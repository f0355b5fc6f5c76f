// An actor system on CAF's deterministic test coordinator, with troupe's message types loaded.
// Nothing runs until the test runs jobs (sched.run(), run_once(), run_jobs_filtered(...)), so a
// test decides which actor handles which message when.
#pragma once

#include <caf/all.hpp>

#include "actors/messages.hpp"

namespace troupe::test {

struct DeterministicSystem {
  DeterministicSystem()
      : system(configure(config)),
        sched(dynamic_cast<caf::scheduler::test_coordinator&>(system.scheduler())) {}

  caf::actor_system_config config;  // the system keeps a reference: declared before it
  caf::actor_system system;
  caf::scheduler::test_coordinator& sched;

 private:
  static caf::actor_system_config& configure(caf::actor_system_config& cfg) {
    cfg.load<caf::id_block::troupe>();
    cfg.set("scheduler.policy", caf::atom("testing"));
    return cfg;
  }
};

}  // namespace troupe::test
