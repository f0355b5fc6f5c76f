// Names of the activations (see activation_kind.hpp); the config layer parses with these.
#include "models/activation_kind.hpp"

namespace troupe {

bool parse_activation(std::string_view name, Activation& out) {
  if (name == "relu")
    out = Activation::relu;
  else if (name == "gelu" || name == "gelu_tanh")
    out = Activation::gelu_tanh;
  else if (name == "gelu_erf")
    out = Activation::gelu_erf;
  else if (name == "silu")
    out = Activation::silu;
  else
    return false;
  return true;
}

std::string_view activation_name(Activation activation) {
  switch (activation) {
    case Activation::relu:
      return "relu";
    case Activation::gelu_tanh:
      return "gelu_tanh";
    case Activation::gelu_erf:
      return "gelu_erf";
    case Activation::silu:
      return "silu";
  }
  return "unknown";
}

}  // namespace troupe
