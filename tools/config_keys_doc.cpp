// Prints docs/CONFIG-KEYS.md (the DeepSpeed key table of configs/deepspeed_keys.cpp as Markdown).
// A small executable that needs only the configs library, so that the test which checks the
// committed doc is up to date does not have to build the whole runtime; `troupe config-keys
// --markdown` prints the same text.
#include <cstdio>

#include "configs/deepspeed_keys.hpp"

int main() {
  std::fputs(troupe::render_config_keys_markdown().c_str(), stdout);
  return 0;
}
