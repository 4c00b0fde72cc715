#pragma once
// The checks an upload's plaintext must pass before it may land in OUTPUT_DIR: XML well-formedness
// (XML_CHECK), an XML Schema (XML_SCHEMA) and a virus scan by clamd (CLAMD_ADDRESS). Each check is
// fed the plaintext as it is decrypted, in order and once, and gives its verdict at the end; the
// upload session asks for the verdict only once the token is authenticated, so a check never
// decides the fate of bytes that are not the sender's. Checks return reasons, not HTTP statuses:
// the session maps kRefused to a permanent refusal (422) and kUnavailable to "retry later" (503).
// Not thread-safe: one pipeline per upload.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace transfer::receiver {

enum class CheckOutcome {
  kPassed,
  kRefused,      // the content is not acceptable: a permanent refusal
  kUnavailable,  // the check could not be done (clamd down, timed out): nothing unchecked lands
};

struct CheckVerdict {
  CheckOutcome outcome = CheckOutcome::kPassed;
  std::string check;      // "xml", "schema", "virus_scan"
  std::string reason;     // a short label for metrics: "not_wellformed", "entity", "too_deep", ...
  std::string message;    // for the client and the log
  std::string signature;  // virus_scan: what clamd found
  bool passed() const { return outcome == CheckOutcome::kPassed; }
};

class PlaintextCheck {
 public:
  virtual ~PlaintextCheck() = default;
  // The next plaintext bytes. Returns false once the verdict is known and more bytes would not
  // change it (the pipeline then stops feeding this check).
  virtual bool update(const char* data, size_t size) = 0;
  // All bytes were fed: the verdict.
  virtual CheckVerdict finish() = 0;
};

class CheckPipeline {
 public:
  void add(std::unique_ptr<PlaintextCheck> check);
  bool empty() const { return checks_.empty(); }
  void update(const char* data, size_t size);
  // The first refusal in the order the checks were added, else the first check that could not be
  // done, else passed. Every check is finished (each releases its resources).
  CheckVerdict finish();

 private:
  struct Slot {
    std::unique_ptr<PlaintextCheck> check;
    bool wants_more = true;
  };
  std::vector<Slot> checks_;
};

// Runs `inner` on a thread of its own, fed through a bounded queue of 256 KiB pieces (at most
// 2 MiB queued), so that a large upload is checked while it is decrypted and written instead of
// after: libxml2 parses at about 115 MB/s per core, slower than the rest of the upload path, and
// inline it more than doubled a 100 MB upload's time (bench/checks.sh). For small uploads the
// thread costs more than it saves: the factory wraps only those above a size (see ContentChecks).
std::unique_ptr<PlaintextCheck> check_beside(std::unique_ptr<PlaintextCheck> inner);

// Makes the checks of one upload (the service's current settings: schema, clamd address), given
// the upload's Content-Length.
using CheckFactory = std::function<CheckPipeline(uint64_t expected_bytes)>;

}  // namespace transfer::receiver
