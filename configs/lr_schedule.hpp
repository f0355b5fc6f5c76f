// Learning rates of DeepSpeed's WarmupLR and WarmupDecayLR schedules, with DeepSpeed's exact
// formulas and step convention (deepspeed/runtime/lr_schedules.py, engine.py):
//
//   W = max(2, warmup_num_steps), i = the scheduler's iteration (last_batch_iteration)
//   gamma(i) = log(i + 1) / log(W)                          i < W, warmup_type "log" (default)
//            = i / W                                        i < W, warmup_type "linear"
//            = 1                                            i >= W, WarmupLR
//            = max(0, (T − i) / max(1, T − W))              i >= W, WarmupDecayLR, T =
//            total_num_steps
//   lr(i)    = warmup_min_lr + (warmup_max_lr − warmup_min_lr) · gamma(i);  lr(i < 0) =
//   warmup_min_lr
//
// The engine steps the scheduler *after* each optimizer update and the scheduler starts at
// i = −1, so optimizer update n (0-based) runs with lr(n − 1): the first two updates both use
// warmup_min_lr (i = −1, then log(1) = 0), and WarmupDecayLR reaches 0 at update T + 1. Note the
// linear warmup reaches (W − 1) / W, not 1, at its last warmup iteration, and the decay then starts
// from 1 at i = W.
#pragma once

#include <cstdint>
#include <optional>

#include "configs/run_config.hpp"

namespace troupe {

// DeepSpeed's get_lr() at last_batch_iteration = `iteration` (any value >= −1).
double scheduler_learning_rate(const SchedulerSection& scheduler, std::int64_t iteration);

// The learning rate optimizer update `update` (0-based) uses: optimizer.lr without a scheduler,
// else scheduler_learning_rate(update − 1). Throws std::invalid_argument for update < 0.
double learning_rate_for_update(const OptimizerSection& optimizer,
                                const std::optional<SchedulerSection>& scheduler,
                                std::int64_t update);

}  // namespace troupe
