#pragma once
// Identification (a part of the sender): a quiet candidate from discovery is opened once, screened
// (input_screen.hpp: size, sparseness and first bytes; a refused one is not hashed), hashed (a
// small one read whole, its bytes kept for the payload) and looked up in the state database:
// what each destination has done with that version (delivered, given up, failed with attempts
// and a next attempt, or nothing yet), and which destinations must start again because the
// input came back from the quarantine. It only reads; the run loop records and schedules.
// Thread-safe (the identify workers share one).

#include <atomic>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "delivery_scheduler.hpp"
#include "discovery.hpp"
#include "input_screen.hpp"
#include "outbox_store.hpp"
#include "transfer/logging.hpp"

namespace transfer::sender {

// What the state database keeps in place of the SHA-256 of a version refused by the screening:
// it was never read to its end. Not a hex digest, so it never names a hashed version.
inline constexpr const char* kUnhashed = "unhashed";

struct Identification {
  enum class Outcome {
    kOk,          // a version: sha256 and each destination's history
    kGone,        // no longer there (or not a regular file)
    kChanged,     // not the stamp expected (or written to while read): `stamp` is the new one
    kRetryLater,  // could not be read, or the database could not be asked (logged)
    kStopped,     // shutting down
    kRefused,     // refused by the screening (`refusal` says why); sha256 is kUnhashed
  } outcome = Outcome::kOk;
  std::string name;
  FileStamp dispatched;  // the stamp the caller expected
  FileStamp stamp;       // what the file has now
  std::string sha256;
  std::optional<std::string> content;  // inputs up to the in-memory limit
  std::map<std::string, PairHistory> history;     // by destination, where it has a row
  std::vector<std::string> back_from_quarantine;  // destinations to start again from scratch
  bool new_version = true;                        // no destination has a row for it
  std::string refusal;                            // kRefused: "<name>: refused as sparse: ..."
};

class FileIdentifier {
 public:
  FileIdentifier(std::string input_dir, std::vector<std::string> destinations,
                 int64_t in_memory_limit, ScreenLimits screen, OutboxStore& store,
                 const std::atomic<bool>& cancel, Logger logger)
      : input_dir_(std::move(input_dir)),
        destinations_(std::move(destinations)),
        in_memory_limit_(in_memory_limit),
        screen_(screen),
        store_(store),
        cancel_(cancel),
        logger_(std::move(logger)) {}

  Identification identify(const std::string& name, const FileStamp& expected) const;

 private:
  std::string input_dir_;
  std::vector<std::string> destinations_;  // the enabled ones
  int64_t in_memory_limit_;
  ScreenLimits screen_;
  OutboxStore& store_;
  const std::atomic<bool>& cancel_;
  Logger logger_;
};

}  // namespace transfer::sender
