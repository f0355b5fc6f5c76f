// MoE argument checks (see tensor_checks.hpp).
#include "models/moe/tensor_checks.hpp"

#include <stdexcept>
#include <string>

namespace troupe {
namespace {

[[noreturn]] void fail(const char* function, const char* name, const std::string& what) {
  throw std::invalid_argument(std::string(function) + ": " + name + " " + what);
}

void check_f32(const char* function, const char* name, const Tensor& t) {
  if (!t.defined()) fail(function, name, "is undefined");
  if (t.dtype() != DType::f32)
    fail(function, name, "has dtype " + std::string(dtype_name(t.dtype())) + ", expected f32");
}

}  // namespace

std::int64_t check_rows(const char* function, const char* name, const Tensor& t,
                        std::int64_t width) {
  check_f32(function, name, t);
  if (t.dim() != 2 || t.size(1) != width)
    fail(function, name,
         "has shape " + shape_string(t.shape()) + ", expected [rows, " + std::to_string(width) +
             "]");
  return t.size(0);
}

void check_shape(const char* function, const char* name, const Tensor& t, const Shape& shape) {
  check_f32(function, name, t);
  if (t.shape() != shape)
    fail(function, name,
         "has shape " + shape_string(t.shape()) + ", expected " + shape_string(shape));
}

void check_numel(const char* function, const char* name, const Tensor& t, std::int64_t n) {
  check_f32(function, name, t);
  if (t.numel() != n)
    fail(function, name,
         "has " + std::to_string(t.numel()) + " elements, expected " + std::to_string(n));
}

void check_plan(const char* function, const RoutingPlan& plan) {
  const auto choices = static_cast<std::size_t>(plan.tokens * plan.k);
  if (plan.tokens < 1 || plan.expert_offsets.size() != static_cast<std::size_t>(plan.experts) + 1 ||
      plan.choice_row.size() != choices || plan.weight.size() != choices ||
      plan.row_token.size() != static_cast<std::size_t>(plan.rows()))
    throw std::invalid_argument(std::string(function) +
                                ": plan was not made by Router::route (empty or inconsistent)");
}

std::int64_t check_token_matrix(const char* function, const char* name, const RoutingPlan& plan,
                                const Tensor& t) {
  check_plan(function, plan);
  check_f32(function, name, t);
  if (t.dim() != 2 || t.size(0) != plan.tokens)
    fail(function, name,
         "has shape " + shape_string(t.shape()) + ", expected [" + std::to_string(plan.tokens) +
             ", width] (one row per token of the plan)");
  return t.size(1);
}

std::int64_t check_plan_input(const char* function, const RoutingPlan& plan, const Tensor& x,
                              std::int64_t width) {
  check_token_matrix(function, "x", plan, x);
  check_shape(function, "x", x, {plan.tokens, width});
  return plan.tokens;
}

}  // namespace troupe
