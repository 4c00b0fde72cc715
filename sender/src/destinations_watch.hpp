#pragma once
// Notices when the destinations in force should be read again (issue 21: "the destinations file
// reloads"): DESTINATIONS_FILE changed (size, mtime, inode or ctime: an edit, a rename over it, a
// swarm config swapped), or one of the credential files the destinations name changed (an S3
// secret, an SFTP key, a known_hosts file, an FTP password, a CA; the Fernet key files are not
// watched here: the key ring re-reads them before each upload). Looks at most once a `period`;
// the clock is passed in. Thread-compatible (the run loop's).

#include <optional>
#include <string>
#include <vector>

#include "destinations.hpp"
#include "transfer/file_util.hpp"

namespace transfer::sender {

class DestinationsWatch {
 public:
  // `file`: DESTINATIONS_FILE ("" when the flat options describe the one destination).
  DestinationsWatch(std::string file, const std::vector<Destination>& destinations,
                    double period_s = 1.0);
  // True when something changed since the last call that returned true (or since construction).
  bool changed(double now_s);

 private:
  using Stamps = std::vector<std::optional<FileChangeStamp>>;
  Stamps stamps() const;
  std::vector<std::string> paths_;  // the file itself first, then the credential files
  Stamps last_;
  double period_s_;
  double next_look_s_ = 0;
};

}  // namespace transfer::sender
