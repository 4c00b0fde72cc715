#pragma once
// The sender's state: $STATUS_DB_PATH/sender.db, one row per (file name, SHA-256 of content,
// destination): fan-out (issue 14) delivers one file version to several receivers, each with its
// own state, attempts and schedule. Methods on one file version take the destination last and
// default to kDefaultDestination; the lists return every destination's rows unless given one.
// Each step of a file's life is one statement, so a crash at any instant leaves a state a
// restart can continue from:
//   pending -> delivered                      (only after the receiver answered 201)
//   pending -> failed -> ... -> delivered      (transient errors, retried with backoff)
//   pending|failed -> quarantined              (permanent error, or MAX_ATTEMPTS / MAX_AGE)
// Thread-safe: one mutex around the connection (the sender's upload workers share it).
//
// Group commit (set_group_commit, the daemon): record_seen, mark_delivered and mark_failed are
// queued and written together in one transaction once the oldest is `window` old (at the next
// write or flush_if_due), or by flush(), so the write lock is held only while a batch is written
// and readiness probes and operator commands are not kept waiting. Reads see the queued steps:
// find() writes the batch first when it holds a step of that file, the other reads always. A
// crash loses at most the last window's steps, and redoing any of them is safe: a file seen
// again is pending again, a lost delivered mark means one more upload, which the receiver
// answers as a duplicate from its ledger, and a lost failure an earlier retry. The caller
// flushes before acting on a step outside the database (removing a delivered input).
// Every other write commits at once, after the queued batch.

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "transfer/result.hpp"
#include "transfer/sqlite_db.hpp"

namespace transfer {

// The destination the flat options describe (see destinations.hpp). Schema 3 made every row of an
// older database this destination's: an upgrade resends nothing.
inline constexpr const char* kDefaultDestination = "default";

enum class OutboxState { kPending, kDelivered, kFailed, kQuarantined };
std::string_view to_string(OutboxState state);

struct OutboxEntry {
  std::string name;    // file name in the input directory
  std::string sha256;  // of the file's content; kUnhashed ("unhashed"): refused before hashing
  std::string destination = kDefaultDestination;  // whose state this is ([a-z0-9_-]{1,32})
  int64_t size = 0;
  int64_t mtime_ns = 0;
  OutboxState state = OutboxState::kPending;
  int64_t attempts = 0;          // uploads tried (each transient failure counts one)
  std::string last_error;
  std::string first_seen_at;     // ISO 8601 UTC
  std::string updated_at;
  std::string delivered_at;
  int64_t receiver_status = 0;
  std::string receiver_answer;
  double first_failure_unix = 0;  // 0: never failed
  double next_attempt_unix = 0;   // a failed file is not retried before this
  std::string quarantine_path;    // where it was moved; empty when it stayed in place
  std::string xml_mapping;        // delivered: the XML_* options used ("" before schema 4: the defaults)
};

// Rows of one destination in one state (counts_by_destination).
struct DestinationStateCount {
  std::string destination;
  OutboxState state = OutboxState::kPending;
  int64_t count = 0;
};

// What a failed attempt leaves behind.
struct FailureRecord {
  std::string error;
  int receiver_status = 0;
  std::string receiver_answer;
  double now_unix = 0;
  double next_attempt_unix = 0;
};

class OutboxStore {
 public:
  // Opens (creating or migrating) the database; kCorruptDatabase when it is damaged.
  static Result<OutboxStore> open(const std::string& path);
  OutboxStore(OutboxStore&& other) noexcept
      : db_(std::move(other.db_)),
        window_(other.window_),
        on_batch_opened_(std::move(other.on_batch_opened_)),
        pending_(std::move(other.pending_)),
        batch_started_(other.batch_started_) {}
  ~OutboxStore();  // commits an open batch

  // `on_batch_opened` runs (under the store's lock) when a step is queued into an empty batch:
  // whoever calls flush_if_due() learns when to look again (batch_due()).
  void set_group_commit(std::chrono::milliseconds window, std::function<void()> on_batch_opened = {});
  Status flush();           // commits the open batch, if any
  Status flush_if_due();    // the same, once the batch is `window` old
  // When the queued batch falls due; nothing when no step is queued.
  std::optional<std::chrono::steady_clock::time_point> batch_due();

  Result<std::optional<OutboxEntry>> find(const std::string& name, const std::string& sha256,
                                          const std::string& destination = kDefaultDestination);
  // Records a file version as seen (pending) unless it is already known; refreshes size and mtime.
  Status record_seen(const std::string& name, const std::string& sha256, int64_t size,
                     int64_t mtime_ns, const std::string& destination = kDefaultDestination);
  // `xml_mapping`: the XML_* options the delivered XML was made with (xml_mapping_summary).
  Status mark_delivered(const std::string& name, const std::string& sha256, int receiver_status,
                        const std::string& receiver_answer,
                        const std::string& destination = kDefaultDestination,
                        const std::string& xml_mapping = {});
  // A transient failure: counts an attempt, keeps the first failure time, schedules the next.
  Status mark_failed(const std::string& name, const std::string& sha256,
                     const FailureRecord& failure,
                     const std::string& destination = kDefaultDestination);
  // Gave up: not retried until the content changes (or an operator moves it back).
  Status mark_quarantined(const std::string& name, const std::string& sha256,
                          const FailureRecord& failure, const std::string& quarantine_path,
                          const std::string& destination = kDefaultDestination);
  // Back to pending with no attempts: an operator put a quarantined file back.
  Status reset(const std::string& name, const std::string& sha256,
               const std::string& destination = kDefaultDestination);
  // The lists: every destination's rows, or only those of `*destination` when it is given.
  // Every row in a settled state (delivered or quarantined), newest per name last.
  Result<std::vector<OutboxEntry>> settled(const std::string* destination = nullptr);
  Result<std::vector<OutboxEntry>> all(const std::string* destination = nullptr);
  // Every version of one file name, oldest first.
  Result<std::vector<OutboxEntry>> by_name(const std::string& name,
                                           const std::string* destination = nullptr);
  // Rows in a state, oldest update first.
  Result<std::vector<OutboxEntry>> in_state(OutboxState state,
                                            const std::string* destination = nullptr);
  // Rows per state (every state present, zero or not).
  Result<std::vector<std::pair<OutboxState, int64_t>>> counts(
      const std::string* destination = nullptr);
  // Rows per destination and state: every state of every destination that has a row, zero or
  // not; by destination name.
  Result<std::vector<DestinationStateCount>> counts_by_destination();
  // The `limit` most recently failed or quarantined rows.
  Result<std::vector<OutboxEntry>> recent_errors(int64_t limit,
                                                 const std::string* destination = nullptr);
  // Removes every row of `name` (of every destination, or of `*destination` only); returns how
  // many there were. The file is then new to the sender (for that destination).
  Result<int64_t> forget(const std::string& name, const std::string* destination = nullptr);
  // Removes one version's row of one destination (none there: nothing to do).
  Status forget_version(const std::string& name, const std::string& sha256,
                        const std::string& destination = kDefaultDestination);
  // PRAGMA integrity_check: "ok", or the problems found.
  Result<std::vector<std::string>> integrity_check();
  // For a second connection (readiness, operator commands): see SqliteDb.
  Status probe_write(int timeout_ms) {
    std::lock_guard lock(mu_);
    return db_.probe_write(timeout_ms);
  }
  Result<int64_t> data_version() {
    std::lock_guard lock(mu_);
    return db_.data_version();
  }

 private:
  explicit OutboxStore(SqliteDb db) : db_(std::move(db)) {}
  using Binder = std::function<void(SqliteStatement&)>;
  // The caller holds mu_. `bind` binds the parameters of `where_and_order`.
  Result<std::vector<OutboxEntry>> select(const std::string& where_and_order,
                                          const Binder& bind = {});
  // A queued step: its statement and a binder that owns the values.
  struct PendingWrite {
    const std::string* sql;
    Binder bind;
    std::string name;
    std::string sha256;
    std::string destination;
  };
  // The caller holds mu_ for these three. `sql` is a statement that outlives the store.
  Status write_batched(const std::string& sql, Binder bind, const std::string& name,
                       const std::string& sha256, const std::string& destination);
  Status write_now(const std::string& sql, const Binder& bind);
  Status commit_batch();
  std::mutex mu_;
  SqliteDb db_;
  std::chrono::milliseconds window_{0};  // 0: every write commits at once
  std::function<void()> on_batch_opened_;
  std::vector<PendingWrite> pending_;
  std::chrono::steady_clock::time_point batch_started_{};  // when the oldest was queued
};

// The idempotency key of one file version: hex SHA-256 of "<name>\n<content sha256>".
std::string idempotency_key(const std::string& name, const std::string& content_sha256);

}  // namespace transfer
