// Argument checks shared by the MoE pieces. Each throws std::invalid_argument naming the function,
// the argument, what it got and what is expected.
#pragma once

#include <cstdint>

#include "memory/tensor.hpp"
#include "models/moe/routing_plan.hpp"

namespace troupe {

// t is a defined f32 matrix [n, width]; returns n (which may be 0).
std::int64_t check_rows(const char* function, const char* name, const Tensor& t,
                        std::int64_t width);
// t is a defined f32 tensor of exactly this shape.
void check_shape(const char* function, const char* name, const Tensor& t, const Shape& shape);
// t is a defined f32 tensor of n elements (any shape).
void check_numel(const char* function, const char* name, const Tensor& t, std::int64_t n);
// plan was made by Router::route (non-empty, consistent index maps).
void check_plan(const char* function, const RoutingPlan& plan);
// t is a defined f32 matrix [plan.tokens, width] and plan was made by Router::route; returns width.
std::int64_t check_token_matrix(const char* function, const char* name, const RoutingPlan& plan,
                                const Tensor& t);
// x is [plan.tokens, width] for a plan made by Router::route; returns plan.tokens.
std::int64_t check_plan_input(const char* function, const RoutingPlan& plan, const Tensor& x,
                              std::int64_t width);

}  // namespace troupe
