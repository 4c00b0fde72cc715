#pragma once
// Fan-out's scheduler (issue 14): which (file version, destination) pairs are due, pure and with
// the clock injected, so backoff, caps, maximum age and ordering are unit-tested without sleeping.
//   - Each destination keeps its own state per file version: waiting (due at a time), in flight,
//     delivered, or given up. One destination's failures, backoff or cap never hold back another.
//   - take(destination) hands out that destination's due pairs in file-name order, at most
//     max_in_flight at a time; none while it yields after an attempt that got no answer at all.
//   - finished() applies an attempt's verdict with the destination's own RetrySettings: 201 ->
//     delivered; transient -> backoff (exponential, full jitter, never sooner than Retry-After),
//     given up past max_attempts / max_age; permanent -> given up at once.
//   - outcome() is the "all destinations" rule for the input file: ON_SUCCESS (delete / move) may
//     act only once every enabled destination has it; the input is quarantined only once every
//     enabled destination has either delivered it or given up, and at least one gave up; the
//     per-destination outcomes are listed for the quarantine's .reason.
// Disabled destinations take no part. Not thread-safe: the sender's run() thread owns it.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "retry_policy.hpp"

namespace transfer::sender {

struct FileVersion {
  std::string name;
  std::string sha256;
  auto operator<=>(const FileVersion&) const = default;
};

struct DestinationLimits {
  std::string name;
  int max_in_flight = 1;  // the destination's upload_concurrency
  RetrySettings retry;
  bool enabled = true;
};

enum class PairState { kWaiting, kInFlight, kDelivered, kGaveUp };

// What is known of a pair already (from the state database, after a restart).
struct PairHistory {
  PairState state = PairState::kWaiting;  // kInFlight is taken as kWaiting (an interrupted attempt)
  int64_t attempts = 0;
  double first_failure_unix = 0;  // 0: never failed
  double next_attempt_unix = 0;   // waiting: not before this
  std::string last_error;
};

enum class FileOutcome {
  kPending,  // some enabled destination has not settled yet
  kDeliveredEverywhere,
  kGaveUpSomewhere,  // every enabled destination settled, at least one gave up
};

struct DestinationOutcome {
  std::string destination;
  PairState state;
  int64_t attempts;
  std::string last_error;
  double due_unix = 0;  // waiting: not before this
};

// What finished() decided, for the caller to record and log.
struct AttemptDecision {
  PairState state;               // kDelivered, kWaiting (retry later) or kGaveUp
  int64_t attempts = 0;          // failed attempts so far (this one included)
  double next_attempt_unix = 0;  // kWaiting
  double first_failure_unix = 0;
  std::string reason;  // kGaveUp: why ("gave up after 3 attempts ...: <error>")
};

class DeliveryScheduler {
 public:
  using Clock = std::function<double()>;   // unix seconds
  using Random = std::function<double()>;  // uniform in [0, 1): the backoff's jitter
  DeliveryScheduler(std::vector<DestinationLimits> destinations, Clock now, Random uniform01);

  // A file version to deliver. Destinations without history are due at once (a destination
  // added to a running deployment gets the files already there); `history` continues the others.
  void add(const FileVersion& file, const std::map<std::string, PairHistory>& history = {});
  // The file is gone or changed: its pairs are dropped (one in flight finishes and is ignored).
  void remove(const FileVersion& file);
  bool contains(const FileVersion& file) const { return files_.count(file) != 0; }

  // The next due pair of `destination`, in name order, if it is under its cap (marks it in flight).
  std::optional<FileVersion> take(const std::string& destination);
  // An attempt ended. `retry_after_s`: the receiver's Retry-After, if any. `unreachable`: no
  // answer came at all (refused, reset, timed out): the destination yields, as NiFi's processors
  // do: its other files are not attempted until this one's retry falls due (one probe per
  // backoff instead of one failure per file), while the other destinations go on.
  AttemptDecision finished(const FileVersion& file, const std::string& destination,
                           AttemptVerdict verdict, const std::string& error,
                           std::optional<double> retry_after_s = std::nullopt,
                           bool unreachable = false);
  // The destination answered again (a probe, or an operator's retry): it no longer yields.
  void resume(const std::string& destination);
  // The attempt could not be made for a local reason (shutting down): back to waiting, due now.
  void released(const FileVersion& file, const std::string& destination);

  FileOutcome outcome(const FileVersion& file) const;
  std::vector<DestinationOutcome> outcomes(const FileVersion& file) const;

  // When the earliest waiting pair falls due (unix seconds); none when nothing waits. With a
  // destination: only its pairs, and none while it is at its cap (nothing could be taken).
  std::optional<double> next_due() const;
  std::optional<double> next_due(const std::string& destination) const;
  // Whether any pair of `file` is in flight, and whether any is waiting and due now: while either
  // holds, its payload is worth keeping.
  struct Activity {
    bool in_flight = false;
    bool due_now = false;
  };
  Activity activity(const FileVersion& file) const;
  int in_flight(const std::string& destination) const;
  // Pairs not settled (waiting or in flight) per destination: the backlog.
  int64_t backlog(const std::string& destination) const;
  // Whether more files are worth adding now: some destination that is not yielding has fewer than
  // `ready` pairs due, or every destination yields (files are then added as they come, so the
  // state knows them). While each destination has `ready` pairs due, a file added now would only
  // wait in memory (issue 22: 100,000 files dropped at once were all identified and held before
  // the first hundred were sent; RSS then grows with the backlog instead of staying bounded).
  bool wants_more(size_t ready);

 private:
  struct Pair {
    PairState state = PairState::kWaiting;
    int64_t attempts = 0;
    double first_failure_unix = 0;
    double due_unix = 0;
    std::string last_error;
  };
  // A destination's waiting pairs, indexed so that neither taking the next due pair nor asking
  // when one falls due walks them all (issue 22: a backlog of 100,000 files, or every pair of a
  // failing destination backing off, made each take() and each wake-up walk the whole set).
  // Those known due are kept in name order (take() hands them out in that order), the others by
  // due time until it passes.
  class Waiting {
   public:
    void insert(const FileVersion& file, double due, double now);
    void erase(const FileVersion& file, double due);
    std::optional<FileVersion> take(double now);  // the first due in name order
    std::optional<double> earliest_due() const;
    size_t due_count(double now);  // the pairs due at `now`
    size_t size() const { return due_.size() + later_.size(); }

   private:
    std::map<FileVersion, double> due_;            // due (at the last look), in name order
    std::multiset<double> due_times_;              // their due times, for earliest_due()
    std::set<std::pair<double, FileVersion>> later_;  // not due yet, by due time
  };
  struct Lane {
    DestinationLimits limits;
    int in_flight = 0;
    Waiting waiting;        // its waiting pairs: take() looks only here
    double yield_until = 0;  // unreachable: nothing is taken before this
  };
  Pair* pair(const FileVersion& file, const std::string& destination);

  std::map<std::string, Lane> lanes_;                         // enabled destinations
  std::map<FileVersion, std::map<std::string, Pair>> files_;  // name order
  Clock now_;
  Random uniform01_;
};

}  // namespace transfer::sender
