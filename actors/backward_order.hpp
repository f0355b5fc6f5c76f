// Checks that backward passes reach an actor in micro-batch order within each step. Parameter
// gradients are summed in arrival order, and floating-point addition is not associative: the
// sequential executor adds micro-batch 0, 1, 2, …, so the actor runtime must too. CAF delivers
// messages between two actors in order and every stage forwards in order, so a violation is a
// runtime bug, reported loudly rather than producing slightly different numbers.
#pragma once

#include <stdexcept>
#include <string>

#include "actors/messages.hpp"

namespace troupe {

class BackwardOrder {
 public:
  void check(const MicroBatchKey& key, const std::string& who) {
    if (key.step != step_) {
      step_ = key.step;
      next_ = 0;
    }
    if (key.micro_batch != next_)
      throw std::logic_error(who + ": backward of micro-batch " + std::to_string(key.micro_batch) +
                             " of step " + std::to_string(key.step) +
                             " arrived before micro-batch " + std::to_string(next_));
    ++next_;
  }

 private:
  std::int64_t step_ = -1;
  std::int64_t next_ = 0;
};

}  // namespace troupe
