// Crash-safe file writing for checkpoints and traces: a reader sees either the old file or the
// complete new one, never a half-written file, even if the process dies mid-write.
#pragma once

#include <functional>
#include <ostream>
#include <string>

namespace troupe {

// Creates the parent directories of `path`, lets `writer` fill a temporary file in the same
// directory (a rename is atomic only within one file system), flushes and fsyncs it, then renames
// it over `path`. If `writer` throws or any step fails, the temporary file is removed, `path` is
// left as it was, and the exception propagates (I/O failures as std::runtime_error).
// `before_rename`, when set, runs once the temporary file is complete and synced, just before the
// rename (crash tests stop the process there).
void write_atomically(const std::string& path, const std::function<void(std::ostream&)>& writer,
                      const std::function<void()>& before_rename = {});

}  // namespace troupe
