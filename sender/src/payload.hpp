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
#include <functional>
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
// bytes. Without a key the XML itself is spooled (for a destination with payload "xml", which
// stores the plaintext anyway: the spool is mode 0600 and removed with the payload). With `threaded` a second thread hashes, encrypts and writes while the converter goes on
// (for a large input the conversion is the bound, and the other core is free until the upload).
class TokenSpoolSink : public XmlSink {
 public:
  // `hash`: false when a TeeXmlSink in front hashes the XML once for every spool.
  TokenSpoolSink(TempFile file, std::optional<FernetKey> key, bool threaded, bool hash = true)
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
    if (!key_) return ok_status();  // plaintext: nothing to add
    if (auto st = ensure_encryptor(); !st) return st;
    std::string tail;
    enc_->finish(tail);
    return put(tail);
  }

  const std::string& path() const { return file_.path; }
  std::string sha256() { return hash_.hex_digest(); }
  uint64_t token_bytes() const { return token_bytes_; }  // bytes spooled (token text, or XML)
  bool plain() const { return !key_.has_value(); }       // the XML itself, not a token
  const FernetKey& key() const { return *key_; }  // the key that encrypted the token (not plain)

 private:
  static constexpr size_t kQueueDepth = 8;  // pieces of up to 64 KiB between the two threads

  // Made on first use (again after reset()), on the thread that encrypts.
  Status ensure_encryptor() {
    if (enc_) return ok_status();
    auto enc = FernetStreamEncryptor::create(*key_);
    if (!enc) return enc.error();
    enc_.emplace(std::move(*enc));
    return ok_status();
  }

  void start() {
    queue_ = std::make_unique<BoundedQueue<std::string>>(kQueueDepth);
    worker_ = std::thread([this] { work(); });
  }

  Status consume(const char* data, size_t size) {
    if (hash_enabled_) hash_.update(data, size);
    if (!key_) return put(std::string_view(data, size));
    if (auto st = ensure_encryptor(); !st) return st;
    out_.clear();
    enc_->update(data, size, out_);
    return put(out_);
  }

  Status put(std::string_view token_text) {
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
  std::optional<FernetKey> key_;  // nothing: the XML is spooled as it is
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

namespace transfer::sender {

// Reads the whole of a small file whose size is known from fstat (one byte more is asked for, to
// see a file that grew).
Result<std::string> read_small_file(int fd, const std::string& path, int64_t size);

// What prepare() found.
enum class PayloadStatus {
  kReady,      // converted: xml() (in memory) or spool(destination) (a token per destination)
  kChanged,    // the file is no longer the version named (its SHA-256 or stamp differs)
  kGone,       // the file is no longer there
  kInvalid,    // permanent for every destination: not JSON, too deep, a name no receiver takes
  kTransient,  // a local error (the spool could not be written): try again later
  kCancelled,  // shutting down
};

// One file version's payload, shared by the uploads of every destination that needs it: the first
// caller of prepare() converts (once), the others wait for it and share the result. Small files
// (their content given, or read here) are converted to XML in memory, each destination's upload
// encrypting it with that destination's key as it is sent; large ones are converted once through a
// TeeXmlSink into one Fernet token spool per destination (only ciphertext at rest). Thread-safe.
class FilePayload {
 public:
  struct Source {
    std::string name;    // the input file's name
    std::string path;    // and its path
    std::string sha256;  // of the version to convert
    int64_t size = 0;
    int64_t mtime_ns = 0;
    std::optional<std::string> content;  // the bytes, when already read (small files)
  };
  // A destination's encryption key, or nothing for one that stores the XML itself.
  using KeyOf = std::function<std::optional<FernetKey>(const std::string& destination)>;

  // `destinations`: those that get a token spool if the file is large. `in_memory_limit`: inputs
  // up to this size are converted in memory. From `encrypt_beside_size`, spools encrypt on threads
  // of their own while the conversion goes on.
  FilePayload(Source source, std::vector<std::string> destinations, JsonToXmlOptions options,
              std::string spool_dir, int64_t in_memory_limit, int64_t encrypt_beside_size,
              const std::atomic<bool>& cancel);

  // Converts on the first call; every call returns that conversion's status. `key_of` gives a
  // destination's encryption key (asked only for spools, on the converting thread).
  // `converted`, if given, is set when this call was the one that converted.
  PayloadStatus prepare(const KeyOf& key_of, bool* converted = nullptr);

  const Source& source() const { return source_; }
  const std::string& upload_name() const { return upload_name_; }
  // After kReady.
  bool in_memory() const { return in_memory_; }
  const std::string& xml() const { return xml_; }
  const std::string& xml_sha256() const { return xml_sha256_; }
  uint64_t json_bytes() const { return json_bytes_; }
  uint64_t xml_bytes() const { return xml_bytes_; }
  // The token spooled for `destination` (nullptr when in memory or not among the destinations).
  TokenSpoolSink* spool(const std::string& destination);
  // Why prepare() did not return kReady.
  const std::string& error() const { return error_; }
  // Bytes held in memory (the content and the XML).
  size_t memory_bytes() const;
  // How many conversions ran (0 or 1; a test counts them).
  int conversions() const { return conversions_.load(); }

 private:
  PayloadStatus convert(const KeyOf& key_of);
  PayloadStatus convert_in_memory(const std::string& content);
  PayloadStatus convert_spooled(const KeyOf& key_of);
  PayloadStatus fail(PayloadStatus status, std::string why);

  Source source_;
  std::vector<std::string> destinations_;
  JsonToXmlOptions options_;
  std::string spool_dir_;
  int64_t in_memory_limit_;
  int64_t encrypt_beside_size_;
  const std::atomic<bool>& cancel_;
  std::string upload_name_;

  std::mutex mu_;  // held by the converting caller; the others wait on it
  std::optional<PayloadStatus> status_;
  std::atomic<int> conversions_{0};
  bool in_memory_ = false;
  std::string xml_;
  std::string xml_sha256_;
  uint64_t json_bytes_ = 0;
  uint64_t xml_bytes_ = 0;
  std::vector<std::pair<std::string, std::unique_ptr<TokenSpoolSink>>> spools_;
  std::string error_;
};

}  // namespace transfer::sender
