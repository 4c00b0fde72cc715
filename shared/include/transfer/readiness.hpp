#pragma once
// Readiness (GET /readyz on both programs): a list of named checks, each ok or failing with a
// reason; ready when all pass. The JSON names every check so an operator sees which one failed:
//   {"checks":{"database":{"ok":true,"detail":"..."},...},"failing":["key"],"status":"not ready"}

#include <cstdint>
#include <string>
#include <vector>

#include "transfer/result.hpp"

namespace transfer {

struct ReadinessCheck {
  std::string name;
  bool ok = true;
  std::string detail;
};

struct Readiness {
  std::vector<ReadinessCheck> checks;
  void add(std::string name, const Status& status, std::string ok_detail);
  bool ready() const;
  int http_status() const { return ready() ? 200 : 503; }
  std::string json() const;
};

// Creates and removes a hidden file in `dir`: the real test of "writable" (access() says yes to
// root on a read-only mount's directory and no to nothing else useful).
Status check_directory_writable(const std::string& dir);
// Bytes available to unprivileged writers on the file system holding `dir`.
Result<uint64_t> free_bytes(const std::string& dir);

}  // namespace transfer
