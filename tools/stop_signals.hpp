// SIGINT and SIGTERM as a request to stop: `troupe train` ends its run at the next step boundary,
// writes its final checkpoint and exits with 128 + the signal's number (130, 143). The handler
// only stores the signal in an atomic; the trainer polls it (TrainerOptions::stop_requested). It
// is installed once (SA_RESETHAND), so a second Ctrl-C kills the process at once.
#pragma once

namespace troupe {

// Installs the handler for SIGINT and SIGTERM.
void install_stop_signal_handlers();

// The first stop signal received since install_stop_signal_handlers; 0 when none.
int stop_signal();

}  // namespace troupe
