// Test-only crash injection, compiled into every build so crash tests exercise the real binary.
//
// TROUPE_TEST_CRASH_AT=<point> or <point>@<n> makes the n-th arrival (default: the first) at
// crash_point("<point>") kill the process with SIGKILL, exactly as an outside kill at that moment
// would: no destructor, no flush, no exit handler runs. Only tests set the variable
// (tests/tools/crash_resume_test.cpp); unset, a crash point does nothing. The points in use are
// listed where checkpoints are written (models/checkpoint.hpp).
#pragma once

namespace troupe {

void crash_point(const char* name);

}  // namespace troupe
