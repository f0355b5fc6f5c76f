// The activation names a config may use (models/activation_kind.hpp): every documented name parses,
// names round-trip, and anything else is refused without touching the output.
#include <catch2/catch.hpp>

#include "models/activation_kind.hpp"

using namespace troupe;

TEST_CASE("parse_activation accepts the documented names and rejects others") {
  Activation parsed = Activation::relu;
  CHECK(parse_activation("gelu", parsed));
  CHECK(parsed == Activation::gelu_tanh);  // GPT-2's GELU is the tanh approximation
  for (Activation activation :
       {Activation::relu, Activation::gelu_tanh, Activation::gelu_erf, Activation::silu}) {
    CHECK(parse_activation(activation_name(activation), parsed));
    CHECK(parsed == activation);
  }
  parsed = Activation::silu;
  CHECK_FALSE(parse_activation("GELU", parsed));
  CHECK_FALSE(parse_activation("swish", parsed));
  CHECK_FALSE(parse_activation("", parsed));
  CHECK(parsed == Activation::silu);  // a failed parse leaves the output alone
}
