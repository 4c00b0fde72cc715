#pragma once
// What a destination stores for one file version, as the clients of every destination type see
// it: a sequence of bytes of known size (the Fernet token text, or the XML itself), read in order
// and again from the start (a retry, or a multipart upload's next part), and how an attempt to
// store them went, classified the same way for every type so the scheduler never tests a type:
//   - kTransient: retry this file later (network errors, timeouts, 5xx, S3 SlowDown, a server
//     that went away mid-transfer);
//   - kPermanent: this destination gives up on this file (its name exists and on_conflict is
//     "fail", a 4xx that says the request itself is wrong);
//   - kDestination: the destination as a whole is unusable until someone fixes it (a refused
//     credential, a missing bucket or directory, an unknown or changed host key): it yields,
//     readiness shows the server's own message, and no file is given up for it;
//   - kUnreachable: no answer at all (refused, reset, timed out before any reply): it yields.
// Thread-compatible: one reader per attempt.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "transfer/result.hpp"

namespace transfer::sender {

class StoredBytes {
 public:
  virtual ~StoredBytes() = default;
  virtual uint64_t size() const = 0;
  // Up to `cap` more bytes into `buf`; 0 at the end.
  virtual Result<size_t> read(char* buf, size_t cap) = 0;
  virtual Status rewind() = 0;
};

// Bytes held in memory (a small file's token or XML).
class MemoryBytes : public StoredBytes {
 public:
  explicit MemoryBytes(std::string bytes) : bytes_(std::move(bytes)) {}
  uint64_t size() const override { return bytes_.size(); }
  Result<size_t> read(char* buf, size_t cap) override;
  Status rewind() override {
    pos_ = 0;
    return ok_status();
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
  size_t pos_ = 0;
};

// Bytes in a file (a spooled token or XML), read through its own descriptor.
class FileBytes : public StoredBytes {
 public:
  static Result<FileBytes> open(const std::string& path, uint64_t size);
  FileBytes(FileBytes&& other) noexcept;
  FileBytes& operator=(FileBytes&&) = delete;
  ~FileBytes() override;
  uint64_t size() const override { return size_; }
  Result<size_t> read(char* buf, size_t cap) override;
  Status rewind() override;

 private:
  FileBytes(int fd, std::string path, uint64_t size)
      : fd_(fd), path_(std::move(path)), size_(size) {}
  int fd_ = -1;
  std::string path_;
  uint64_t size_ = 0;
  uint64_t pos_ = 0;
};

enum class SendFault { kNone, kTransient, kPermanent, kDestination, kUnreachable };
std::string_view send_fault_name(SendFault fault);

// How one attempt to store bytes at a destination of any type went.
struct SendOutcome {
  SendFault fault = SendFault::kNone;  // kNone: stored and verified
  std::string error;     // why not, in an operator's words, with the server's own message
  std::string location;  // where it landed ("s3://bucket/prefix/a.xml", "sftp://host/dir/a.xml")
  uint64_t bytes_sent = 0;
  int parts = 0;             // S3 multipart: how many parts (0: a single request)
  double retry_after_s = 0;  // a server's own hint (0: none)
};

// How a cheap check of a destination went (readiness and the probe of a yielding destination).
struct ProbeOutcome {
  SendFault fault = SendFault::kNone;
  std::string error;
};

}  // namespace transfer::sender
