// DeepSpeed's WarmupLR / WarmupDecayLR learning rates (formulas in lr_schedule.hpp).
#include "configs/lr_schedule.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace troupe {

double scheduler_learning_rate(const SchedulerSection& scheduler, std::int64_t iteration) {
  if (iteration < -1)
    throw std::invalid_argument("scheduler_learning_rate: iteration must be >= -1, got " +
                                std::to_string(iteration));
  if (iteration < 0) return scheduler.warmup_min_lr;
  const std::int64_t warmup = std::max<std::int64_t>(2, scheduler.warmup_num_steps);
  const double i = static_cast<double>(iteration);
  const double w = static_cast<double>(warmup);
  double gamma = 1.0;
  if (iteration < warmup) {
    gamma = scheduler.warmup_type == WarmupType::log ? std::log(i + 1.0) / std::log(w) : i / w;
  } else if (scheduler.type == SchedulerType::warmup_decay_lr) {
    const double total = static_cast<double>(scheduler.total_num_steps);
    gamma = std::max(0.0, (total - i) / std::max(1.0, total - w));
  }
  return scheduler.warmup_min_lr + (scheduler.warmup_max_lr - scheduler.warmup_min_lr) * gamma;
}

double learning_rate_for_update(const OptimizerSection& optimizer,
                                const std::optional<SchedulerSection>& scheduler,
                                std::int64_t update) {
  if (update < 0)
    throw std::invalid_argument("learning_rate_for_update: update must be >= 0, got " +
                                std::to_string(update));
  if (!scheduler) return optimizer.lr;
  return scheduler_learning_rate(*scheduler, update - 1);
}

}  // namespace troupe
