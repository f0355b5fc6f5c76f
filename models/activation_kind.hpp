// The activation a model (or a config) chooses by name. It is model vocabulary: the kernels know
// one function per activation (kernels/ops/activation.hpp), and apply_activation / activation_grad
// (models/dense_layers.hpp) map this choice onto them.
#pragma once

#include <string_view>

namespace troupe {

enum class Activation { relu, gelu_tanh, gelu_erf, silu };

// "relu", "gelu" (= gelu_tanh, as in GPT-2), "gelu_tanh", "gelu_erf", "silu".
bool parse_activation(std::string_view name, Activation& out);
std::string_view activation_name(Activation activation);

}  // namespace troupe
