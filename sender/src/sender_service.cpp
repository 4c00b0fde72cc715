#include "sender_service.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "transfer/file_util.hpp"
#include "transfer/json_to_xml.hpp"
#include "transfer/sha256.hpp"
#include "transfer/upload_name.hpp"

namespace transfer::sender {
namespace {

// The input file, read through once per conversion pass, hashed as it is read.
class FileJsonSource : public JsonSource {
 public:
  FileJsonSource(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  Result<size_t> read(char* buf, size_t cap) override {
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
  Sha256 hash_;
};

// The spooled XML: a temporary file in the state directory, hashed as it is written.
class SpoolSink : public XmlSink {
 public:
  explicit SpoolSink(TempFile file) : file_(std::move(file)) {}
  ~SpoolSink() override { ::unlink(file_.path.c_str()); }
  Status write(const char* data, size_t size) override {
    hash_.update(data, size);
    return write_all(file_.fd.get(), data, size, file_.path);
  }
  Status reset() override {
    if (::ftruncate(file_.fd.get(), 0) != 0 || ::lseek(file_.fd.get(), 0, SEEK_SET) != 0) {
      return errno_error("cannot truncate", file_.path, errno);
    }
    hash_ = Sha256();
    return ok_status();
  }
  const std::string& path() const { return file_.path; }
  std::string sha256() { return hash_.hex_digest(); }

 private:
  TempFile file_;
  Sha256 hash_;
};

Result<std::string> hash_file(int fd, const std::string& path) {
  Sha256 h;
  std::vector<char> buf(1 << 16);
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("cannot read", path, errno);
    }
    if (n == 0) break;
    h.update(buf.data(), static_cast<size_t>(n));
  }
  if (::lseek(fd, 0, SEEK_SET) != 0) return errno_error("cannot rewind", path, errno);
  return h.hex_digest();
}

bool is_candidate(const std::string& name) {
  constexpr std::string_view kSuffix = ".json";
  return name.size() > kSuffix.size() && name.front() != '.' &&
         name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0;
}

// 408, 429 and 5xx (507 included) are worth retrying; other 4xx are final.
bool is_transient_status(int status) { return status == 408 || status == 429 || status >= 500; }

void remove_spool_leftovers(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".tmp") ::unlink(e.path().c_str());
  }
}

}  // namespace

Result<std::unique_ptr<SenderService>> SenderService::create(const SenderConfig& config,
                                                              Logger logger) {
  auto keys = load_key_file(config.key_path);
  if (!keys) return keys.error();
  for (const auto& dir : {config.input_dir, config.status_db_path, config.status_db_path + "/spool"}) {
    if (auto st = ensure_directory(dir); !st) return st.error();
  }
  auto store = OutboxStore::open(config.status_db_path + "/sender.db");
  if (!store) return store.error();
  logger->info("key loaded path={} state_db={}", log_value(config.key_path),
               log_value(config.status_db_path + "/sender.db"));
  return std::unique_ptr<SenderService>(
      new SenderService(config, std::move(logger), std::move(*store), keys->front()));
}

SenderService::SenderService(const SenderConfig& config, Logger logger, OutboxStore store,
                             FernetKey key)
    : config_(config),
      logger_(std::move(logger)),
      store_(std::move(store)),
      spool_dir_(config.status_db_path + "/spool"),
      uploader_(UploadTarget{config.receiver_address, config.receiver_port, config.receiver_uri,
                             config.connect_timeout_s, config.io_timeout_s},
                key, stopping_) {
  remove_spool_leftovers(spool_dir_);
}

void SenderService::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
}

ScanSummary SenderService::run() {
  logger_->info("watching input_dir={} receiver={} interval_s={}", log_value(config_.input_dir),
                uploader_.url_for("<name>"), config_.scan_interval_s);
  ScanSummary summary;
  for (;;) {
    summary = scan_once();
    if (config_.once || stopping_) break;
    std::unique_lock lock(mu_);
    wake_.wait_for(lock, std::chrono::duration<double>(config_.scan_interval_s),
                   [this] { return stopping_.load(); });
    if (stopping_) break;
  }
  logger_->info("stopped");
  return summary;
}

ScanSummary SenderService::scan_once() {
  ScanSummary summary;
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(config_.input_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (is_candidate(name)) names.push_back(name);
  }
  if (ec) {
    logger_->error("cannot list input directory dir={} error={}", log_value(config_.input_dir),
                   log_value(ec.message()));
    ++summary.failed;
    return summary;
  }
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    if (stopping_) break;
    switch (process_file(name)) {
      case FileOutcome::kDelivered: ++summary.delivered; break;
      case FileOutcome::kAlreadyDelivered: ++summary.already_delivered; break;
      case FileOutcome::kFailed: ++summary.failed; break;
      case FileOutcome::kRejected: ++summary.rejected; break;
      case FileOutcome::kSkipped: break;
    }
  }
  if (summary.delivered + summary.failed + summary.rejected > 0) {
    logger_->info("scan done delivered={} already_delivered={} failed={} rejected={}",
                  summary.delivered, summary.already_delivered, summary.failed, summary.rejected);
  }
  return summary;
}

SenderService::FileOutcome SenderService::process_file(const std::string& file_name) {
  const auto started = std::chrono::steady_clock::now();
  const std::string path = config_.input_dir + "/" + file_name;
  const std::string field = log_value(file_name);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0) {
    if (errno == ENOENT) return FileOutcome::kSkipped;  // gone since the listing
    logger_->warn("cannot open file={} error={}", field, log_value(std::strerror(errno)));
    return FileOutcome::kFailed;
  }
  if (!S_ISREG(st.st_mode)) return FileOutcome::kSkipped;
  const int64_t mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;

  auto sha = hash_file(fd.get(), path);
  if (!sha) {
    logger_->warn("cannot read file={} error={}", field, log_value(sha.error().message));
    return FileOutcome::kFailed;
  }
  auto known = store_.find(file_name, *sha);
  if (!known) {
    logger_->error("state database: {}", known.error().message);
    return FileOutcome::kFailed;
  }
  if (*known && (*known)->state == OutboxState::kDelivered) return FileOutcome::kAlreadyDelivered;
  if (*known && (*known)->state == OutboxState::kRejected) return FileOutcome::kRejected;
  if (auto s = store_.record_seen(file_name, *sha, st.st_size, mtime_ns); !s) {
    logger_->error("state database: {}", s.error().message);
    return FileOutcome::kFailed;
  }
  auto reject = [&](const std::string& why, int status = 0, const std::string& answer = {}) {
    logger_->error("rejected file={} error={}", field, log_value(why));
    if (auto s = store_.mark_rejected(file_name, *sha, why, status, answer); !s) {
      logger_->error("state database: {}", s.error().message);
    }
    return FileOutcome::kRejected;
  };
  auto fail = [&](const std::string& why, int status = 0, const std::string& answer = {}) {
    logger_->warn("failed file={} error={} (will retry)", field, log_value(why));
    if (auto s = store_.mark_failed(file_name, *sha, why, status, answer); !s) {
      logger_->error("state database: {}", s.error().message);
    }
    return FileOutcome::kFailed;
  };

  const std::string upload_name = upload_name_for_file(file_name);
  if (auto valid = validate_upload_name(upload_name); !valid) return reject(valid.error().message);

  // Convert to a spooled XML file, hashing the input again as it is read.
  auto temp = create_temp_file(spool_dir_, "xml");
  if (!temp) return fail(temp.error().message);
  SpoolSink spool(std::move(*temp));
  FileJsonSource source(fd.get(), path);
  JsonToXmlOptions options;
  options.max_depth = config_.max_depth;
  auto converted = convert_json_to_xml(source, spool, options, file_name);
  if (!converted) {
    const auto code = converted.error().code;
    if (code == ErrorCode::kInvalidJson || code == ErrorCode::kTooDeep) return reject(converted.error().message);
    return fail(converted.error().message);
  }
  if (source.sha256() != *sha) return fail("the file changed while it was being read");
  const std::string xml_sha = spool.sha256();

  const auto response = uploader_.upload(upload_name, spool.path(), converted->xml_bytes);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  if (response.status == 0) return fail(response.error);
  if (response.status != 201) {
    std::string why = "receiver answered " + std::to_string(response.status);
    try {
      why += ": " + nlohmann::json::parse(response.body).at("msg").get<std::string>();
    } catch (const nlohmann::json::exception&) {
    }
    if (is_transient_status(response.status)) return fail(why, response.status, response.body);
    return reject(why, response.status, response.body);
  }
  // A receiver that reports the plaintext digest (ours does) must have stored what we sent.
  try {
    const auto answer = nlohmann::json::parse(response.body);
    if (answer.contains("sha256") && answer.at("sha256").get<std::string>() != xml_sha) {
      return fail("the receiver stored different bytes (sha256 mismatch)", 201, response.body);
    }
  } catch (const nlohmann::json::exception&) {
  }
  if (auto s = store_.mark_delivered(file_name, *sha, 201, response.body); !s) {
    logger_->error("state database: {} (file={} was delivered)", s.error().message, field);
    return FileOutcome::kFailed;
  }
  logger_->info("delivered file={} name={} json_bytes={} xml_bytes={} ms={:.1f} status=201", field,
                log_value(upload_name), converted->json_bytes, converted->xml_bytes, ms);
  return FileOutcome::kDelivered;
}

}  // namespace transfer::sender
