#pragma once
// The sender's state: $STATUS_DB_PATH/sender.db, one row per (file name, SHA-256 of content).
// A file counts as delivered only after the receiver answered 201.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "transfer/result.hpp"
#include "transfer/sqlite_db.hpp"

namespace transfer {

enum class OutboxState { kPending, kDelivered, kRejected, kFailed };
std::string_view to_string(OutboxState state);

struct OutboxEntry {
  std::string name;    // file name in the input directory
  std::string sha256;  // of the file's content
  int64_t size = 0;
  int64_t mtime_ns = 0;
  OutboxState state = OutboxState::kPending;
  int64_t attempts = 0;
  std::string last_error;
  std::string first_seen_at;
  std::string updated_at;
  std::string delivered_at;
  int64_t receiver_status = 0;
  std::string receiver_answer;
};

class OutboxStore {
 public:
  static Result<OutboxStore> open(const std::string& path);

  Result<std::optional<OutboxEntry>> find(const std::string& name, const std::string& sha256);
  // Records a file version as seen (pending) unless it is already known.
  Status record_seen(const std::string& name, const std::string& sha256, int64_t size,
                     int64_t mtime_ns);
  Status mark_delivered(const std::string& name, const std::string& sha256, int receiver_status,
                        const std::string& receiver_answer);
  // A transient failure (retried on a later scan); counts an attempt.
  Status mark_failed(const std::string& name, const std::string& sha256, const std::string& error,
                     int receiver_status = 0, const std::string& receiver_answer = {});
  // A permanent refusal (invalid JSON, a 4xx): not retried until the content changes.
  Status mark_rejected(const std::string& name, const std::string& sha256, const std::string& error,
                       int receiver_status = 0, const std::string& receiver_answer = {});
  Result<std::vector<OutboxEntry>> all();

 private:
  explicit OutboxStore(SqliteDb db) : db_(std::move(db)) {}
  Status set_state(const std::string& name, const std::string& sha256, OutboxState state,
                   const std::string& error, int receiver_status, const std::string& answer,
                   bool count_attempt);
  SqliteDb db_;
};

}  // namespace transfer
