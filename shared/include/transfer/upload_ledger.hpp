#pragma once
// The receiver's ledger: $STATUS_DB_PATH/receiver.db, every upload accepted (name, output path,
// bytes, SHA-256 of the plaintext, time, peer) and rejected (with the reason). Thread-safe.

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "transfer/result.hpp"
#include "transfer/sqlite_db.hpp"

namespace transfer {

struct LedgerEntry {
  int64_t id = 0;
  std::string name;
  std::string outcome;  // "accepted" | "rejected"
  int status = 0;       // HTTP status answered
  std::string output_path;
  int64_t bytes = 0;
  std::string sha256;
  std::string reason;
  std::string peer;
  std::string received_at;
};

class UploadLedger {
 public:
  static Result<UploadLedger> open(const std::string& path);
  UploadLedger(UploadLedger&& other) noexcept : db_(std::move(other.db_)) {}

  Status record_accepted(const std::string& name, const std::string& output_path, int64_t bytes,
                         const std::string& sha256, const std::string& peer);
  Status record_rejected(const std::string& name, int status, const std::string& reason,
                         const std::string& peer);
  Result<std::vector<LedgerEntry>> recent(int64_t limit);

 private:
  explicit UploadLedger(SqliteDb db) : db_(std::move(db)) {}
  std::mutex mu_;
  SqliteDb db_;
};

}  // namespace transfer
