#pragma once
// Process-level glue for the two mains (kept out of transfer_core, which has no globals,
// threads or environment access): the real environment, and signals handled in a thread.

#include <functional>
#include <string>
#include <vector>

#include "transfer/config.hpp"

namespace transfer {

EnvLookup process_environment();
std::vector<std::string> arguments(int argc, char** argv);

// The end of a --health-check: prints its one line ("unhealthy: <why>" on failure) to stdout and
// returns the exit code, 0 healthy or 1.
int report_health(const Result<std::string>& health);

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (call first in main, before any thread
// starts, so every thread inherits the mask) and starts a detached thread that waits for them
// with sigwait() and calls `on_signal` with the signal number.
void handle_stop_signals(std::function<void(int)> on_signal);

// Raises the soft limit on open files towards `wanted` (at most to the hard limit); returns the
// soft limit in force afterwards.
size_t raise_open_file_limit(size_t wanted);

}  // namespace transfer
