#pragma once
// The receiver's ledger: $STATUS_DB_PATH/receiver.db.
//  - `deliveries`: one row per output file (its path is the key): the name it was uploaded as,
//    SHA-256 and size of the plaintext, key index, idempotency key, first and last time it was
//    received and how many duplicates were answered from here. An upload whose name and digest
//    match a row is a retry: it is answered from the row and nothing is rewritten.
//  - `uploads`: every upload accepted or answered from the ledger, and the refusals of clients
//    that proved they hold a key (the receiver records no others), which prune_refusals()
//    keeps within a retention.
// Thread-safe (one mutex around the connection).

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "transfer/result.hpp"
#include "transfer/sqlite_db.hpp"

namespace transfer {

inline constexpr size_t kMaxRecordedNameBytes = 256;
inline constexpr size_t kMaxRecordedReasonBytes = 512;

struct Delivery {
  int64_t id = 0;  // position in the ledger (rowid): a newer file, or a replaced one, is higher
  std::string output_path;
  std::string name;
  std::string sha256;
  int64_t bytes = 0;
  int64_t key_index = 0;
  std::string idempotency_key;
  std::string first_received_at;
  std::string last_received_at;
  int64_t duplicates = 0;
};

struct LedgerEntry {
  int64_t id = 0;
  std::string name;
  std::string outcome;  // "accepted" | "rejected"
  int status = 0;       // HTTP status answered
  bool duplicate = false;
  std::string output_path;
  int64_t bytes = 0;
  std::string sha256;
  std::string reason;
  std::string peer;
  std::string received_at;
};

class UploadLedger {
 public:
  // Opens (creating or migrating) the database; kCorruptDatabase when it is damaged.
  static Result<UploadLedger> open(const std::string& path);
  UploadLedger(UploadLedger&& other) noexcept : db_(std::move(other.db_)) {}

  // A delivery of this name with this plaintext digest, if any.
  Result<std::optional<Delivery>> find(const std::string& name, const std::string& sha256);
  Result<std::optional<Delivery>> find_by_path(const std::string& output_path);
  // A new file at delivery.output_path (replacing the row of an overwritten one).
  Status record_delivery(const Delivery& delivery, const std::string& peer);
  // A retry answered from `original`: counts it and logs the request.
  Status record_duplicate(const Delivery& original, const std::string& peer);
  // A refused upload (name cut to 256 bytes, reason to 512: a row stays under ~1 KB).
  Status record_rejected(const std::string& name, int status, const std::string& reason,
                         const std::string& peer);
  // Deletes refused uploads older than `max_age_days`, and the oldest beyond the newest
  // `max_rows`; returns how many went. Accepted uploads and deliveries are never pruned.
  Result<int64_t> prune_refusals(int64_t max_age_days, int64_t max_rows);
  Result<std::vector<LedgerEntry>> recent(int64_t limit);

  // Deliveries with id > after_id, oldest first, at most `limit` (the /files listing).
  Result<std::vector<Delivery>> deliveries_after(int64_t after_id, int64_t limit);
  // The newest delivery whose output file is `file_name` in any directory, or else whose upload
  // name is `file_name`.
  Result<std::optional<Delivery>> find_by_file_or_name(const std::string& file_name);
  // Whether the ledger could be written now, waiting at most timeout_ms for the lock.
  Status probe_write(int timeout_ms);

 private:
  explicit UploadLedger(SqliteDb db) : db_(std::move(db)) {}
  Result<std::optional<Delivery>> find_where(const std::string& where, const std::string& a,
                                             const std::string& b);
  // One `uploads` row for a 201 (the caller holds mu_ and a transaction).
  Status log_accepted(const Delivery& d, const std::string& peer, bool duplicate);
  std::mutex mu_;
  SqliteDb db_;
};

}  // namespace transfer
