#pragma once
// The payload of one file version (issue 14's "payload" part of the sender): the JSON read once
// (and hashed as it is read), converted to XML once, and that XML hashed once and encrypted for
// each destination's key.
//   - FileJsonSource: the input file, hashed as it is read.
//   - MemoryXmlSink: the XML of a small input, in memory (no spool file to create and remove).
//   - TokenSpoolSink: the XML of a large input, Fernet-encrypted as it is written, only the token
//     at rest in the state directory (never the plaintext XML); optionally on a second thread.
//   - TeeXmlSink: one conversion's XML to several sinks (one spool per destination key), hashed
//     once: the conversion is not repeated per destination.
// Not thread-safe: one payload per worker.

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "transfer/bounded_queue.hpp"
#include "transfer/fernet.hpp"
#include "transfer/file_util.hpp"
#include "transfer/json_to_xml.hpp"
#include "transfer/sha256.hpp"

namespace transfer::sender {

// The input file, read through once per conversion pass, hashed as it is read.
class FileJsonSource : public JsonSource {
 public:
  FileJsonSource(int fd, std::string path, const std::atomic<bool>& cancel)
      : fd_(fd), path_(std::move(path)), cancel_(cancel) {}
  Result<size_t> read(char* buf, size_t cap) override {
    if (cancel_.load()) return make_error(ErrorCode::kCancelled, "cancelled (shutting down)");
    for (;;) {
      const ssize_t n = ::read(fd_, buf, cap);
      if (n >= 0) {
        hash_.update(buf, static_cast<size_t>(n));
        return static_cast<size_t>(n);
      }
      if (errno != EINTR) return errno_error("cannot read", path_, errno);
    }
  }
  Status rewind() override {
    if (::lseek(fd_, 0, SEEK_SET) != 0) return errno_error("cannot rewind", path_, errno);
    hash_ = Sha256();
    return ok_status();
  }
  std::string sha256() { return hash_.hex_digest(); }

 private:
  int fd_;
  std::string path_;
  const std::atomic<bool>& cancel_;
  Sha256 hash_;
};

// The spooled upload: the converter's XML is hashed and Fernet-encrypted as it is written, and
// the token text goes to a temporary file in the state directory, so the upload only copies
// bytes. With `threaded` a second thread hashes, encrypts and writes while the converter goes on
// (for a large input the conversion is the bound, and the other core is free until the upload).
class TokenSpoolSink : public XmlSink {
 public:
  // `hash`: false when a TeeXmlSink in front hashes the XML once for every spool.
  TokenSpoolSink(TempFile file, FernetKey key, bool threaded, bool hash = true)
      : file_(std::move(file)), key_(std::move(key)), threaded_(threaded), hash_enabled_(hash) {}
  ~TokenSpoolSink() override {
    stop_worker();
    ::unlink(file_.path.c_str());
  }

  Status write(const char* data, size_t size) override {
    if (!threaded_) return consume(data, size);
    if (!worker_.joinable()) start();
    if (!queue_->push(std::string(data, size))) {  // closed: the worker failed
      std::lock_guard lock(mu_);
      return *error_;
    }
    return ok_status();
  }

  // The duplicate-key path starts the XML again: so does the token.
  Status reset() override {
    stop_worker();
    if (::ftruncate(file_.fd.get(), 0) != 0 || ::lseek(file_.fd.get(), 0, SEEK_SET) != 0) {
      return errno_error("cannot truncate", file_.path, errno);
    }
    enc_.reset();
    hash_ = Sha256();
    token_bytes_ = 0;
    error_.reset();
    return ok_status();
  }

  // After the conversion: the token's last block and MAC.
  Status finish() {
    if (threaded_ && worker_.joinable()) {
      stop_worker();
      std::lock_guard lock(mu_);
      if (error_) return *error_;
    }
    if (auto st = ensure_encryptor(); !st) return st;
    std::string tail;
    enc_->finish(tail);
    return put(tail);
  }

  const std::string& path() const { return file_.path; }
  std::string sha256() { return hash_.hex_digest(); }
  uint64_t token_bytes() const { return token_bytes_; }
  const FernetKey& key() const { return key_; }  // the key that encrypted the token

 private:
  static constexpr size_t kQueueDepth = 8;  // pieces of up to 64 KiB between the two threads

  // Made on first use (again after reset()), on the thread that encrypts.
  Status ensure_encryptor() {
    if (enc_) return ok_status();
    auto enc = FernetStreamEncryptor::create(key_);
    if (!enc) return enc.error();
    enc_.emplace(std::move(*enc));
    return ok_status();
  }

  void start() {
    queue_ = std::make_unique<BoundedQueue<std::string>>(kQueueDepth);
    worker_ = std::thread([this] { work(); });
  }

  Status consume(const char* data, size_t size) {
    if (auto st = ensure_encryptor(); !st) return st;
    if (hash_enabled_) hash_.update(data, size);
    out_.clear();
    enc_->update(data, size, out_);
    return put(out_);
  }

  Status put(const std::string& token_text) {
    token_bytes_ += token_text.size();
    return write_all(file_.fd.get(), token_text.data(), token_text.size(), file_.path);
  }

  // The second thread: encrypts and writes what the converter queued. On an error it closes the
  // queue, so the converter's next write fails with that error.
  void work() {
    while (auto piece = queue_->pop()) {
      if (auto st = consume(piece->data(), piece->size()); !st) {
        {
          std::lock_guard lock(mu_);
          error_ = st.error();
        }
        queue_->close();
        return;
      }
    }
  }

  // Drains what is queued and ends the second thread.
  void stop_worker() {
    if (!worker_.joinable()) return;
    queue_->close();
    worker_.join();
  }

  TempFile file_;
  FernetKey key_;
  bool threaded_;
  bool hash_enabled_;
  std::optional<FernetStreamEncryptor> enc_;
  Sha256 hash_;
  uint64_t token_bytes_ = 0;
  std::string out_;
  std::unique_ptr<BoundedQueue<std::string>> queue_;  // a new one per pass (start())
  std::thread worker_;
  std::mutex mu_;  // guards error_ between the two threads
  std::optional<Error> error_;
};

// The XML of a small input, kept in memory and hashed as it is written: no spool file to create
// and remove (on ext4, creating files where many were just removed is what costs most).
class MemoryXmlSink : public XmlSink {
 public:
  Status write(const char* data, size_t size) override {
    hash_.update(data, size);
    xml.append(data, size);
    return ok_status();
  }
  Status reset() override {
    xml.clear();
    hash_ = Sha256();
    return ok_status();
  }
  std::string sha256() { return hash_.hex_digest(); }
  std::string xml;

 private:
  Sha256 hash_;
};

// Writes the XML to every sink, in order, and hashes it once.
class TeeXmlSink : public XmlSink {
 public:
  explicit TeeXmlSink(std::vector<XmlSink*> sinks) : sinks_(std::move(sinks)) {}
  Status write(const char* data, size_t size) override;
  Status reset() override;
  std::string sha256() { return hash_.hex_digest(); }

 private:
  std::vector<XmlSink*> sinks_;
  Sha256 hash_;
};

}  // namespace transfer::sender
