#pragma once
// Operator commands on the sender's state database, safe while the daemon runs (SQLite WAL; the
// daemon notices a change within a second and re-reads):
//   sender status [--json]             counts by state, oldest pending file, last errors
//   sender retry <NAME|--all-failed>   send a failed or quarantined file again now (a file moved
//                                      to the quarantine directory is moved back first)
//   sender forget <NAME>               drop every record of NAME: the next scan sends it again
//   sender verify [--json]             database integrity and its agreement with the files
// Each takes the daemon's options (flags or environment) to find the database and directories.

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "transfer/config.hpp"

namespace transfer::sender {

// Runs the command when args[0] names one, returning the exit code (0 ok, 1 the command failed
// or verify found problems, 2 usage); std::nullopt when args[0] is not a command.
std::optional<int> run_admin_command(const std::vector<std::string>& args, const EnvLookup& env,
                                     std::ostream& out, std::ostream& err);

}  // namespace transfer::sender
