#pragma once
// What happens to an input file once its fate is known (issue 14's "after delivery" part):
// delivered -> ON_SUCCESS (keep, delete, or move:<dir>); given up -> moved into QUARANTINE_DIR with
// a <file>.reason beside it. Both directories are opened without following a symlink in their last
// component and written relative to that descriptor (destination_directory.hpp): a refused
// directory leaves the file in place, never lost. Only the file system: the caller records the
// state first (the state never names a pending file that is no longer there) and logs.

#include <cstdint>
#include <string>
#include <vector>

#include "sender_config.hpp"
#include "transfer/result.hpp"

namespace transfer::sender {

// What a quarantined file's <file>.reason says: the first destination that gave up (its error,
// attempts and the receiver's status), the version, and every destination's outcome.
struct QuarantineReason {
  struct Destination {
    std::string name;
    bool delivered = false;  // else it gave up
    int64_t attempts = 0;
    std::string error;
    int receiver_status = 0;  // 0: none
  };
  std::string file;
  std::string sha256;
  double time_unix = 0;
  std::vector<Destination> destinations;

  Destination first_gave_up() const;  // with an error; an empty one when none
  std::string text() const;
};

struct QuarantineResult {
  std::string moved_to;  // empty: it stayed in place
  std::string error;     // why it could not be moved
};

class InputDisposal {
 public:
  explicit InputDisposal(const SenderConfig& config) : config_(config) {}
  // ON_SUCCESS for a delivered file (nothing for keep; a file already gone is fine).
  Status delivered(const std::string& name, const std::string& path) const;
  // Moves the file into QUARANTINE_DIR under an unused name, with `reason` as <that>.reason.
  QuarantineResult quarantine(const std::string& name, const std::string& path,
                              const std::string& reason) const;

 private:
  const SenderConfig& config_;  // the service's, which outlives this
};

}  // namespace transfer::sender
