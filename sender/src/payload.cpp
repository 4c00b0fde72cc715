#include "payload.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include "transfer/upload_name.hpp"

namespace transfer::sender {

Status TeeXmlSink::write(const char* data, size_t size) {
  hash_.update(data, size);
  for (XmlSink* sink : sinks_) {
    if (auto st = sink->write(data, size); !st) return st;
  }
  return ok_status();
}

Status TeeXmlSink::reset() {
  hash_ = Sha256();
  for (XmlSink* sink : sinks_) {
    if (auto st = sink->reset(); !st) return st;
  }
  return ok_status();
}

}  // namespace transfer::sender

namespace transfer::sender {

Result<std::string> read_small_file(int fd, const std::string& path, int64_t size) {
  std::string text(static_cast<size_t>(size) + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("cannot read", path, errno);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  text.resize(got);
  return text;
}

FilePayload::FilePayload(Source source, std::vector<std::string> destinations,
                         JsonToXmlOptions options, std::string spool_dir, int64_t in_memory_limit,
                         int64_t encrypt_beside_size, const std::atomic<bool>& cancel)
    : source_(std::move(source)),
      destinations_(std::move(destinations)),
      options_(options),
      spool_dir_(std::move(spool_dir)),
      in_memory_limit_(in_memory_limit),
      encrypt_beside_size_(encrypt_beside_size),
      cancel_(cancel),
      upload_name_(upload_name_for_file(source_.name)) {}

PayloadStatus FilePayload::prepare(const KeyOf& key_of, bool* converted) {
  std::lock_guard lock(mu_);
  if (!status_) {
    ++conversions_;
    if (converted != nullptr) *converted = true;
    status_ = convert(key_of);
    if (*status_ != PayloadStatus::kReady) {
      xml_.clear();
      spools_.clear();
    }
    source_.content.reset();  // converted: the XML (or the spools) is what is kept
  }
  return *status_;
}

TokenSpoolSink* FilePayload::spool(const std::string& destination) {
  for (auto& [name, sink] : spools_) {
    if (name == destination) return sink.get();
  }
  return nullptr;
}

size_t FilePayload::memory_bytes() const {
  return xml_.capacity() + (source_.content ? source_.content->capacity() : 0);
}

PayloadStatus FilePayload::fail(PayloadStatus status, std::string why) {
  error_ = std::move(why);
  return status;
}

PayloadStatus FilePayload::convert(const KeyOf& key_of) {
  if (auto valid = validate_upload_name(upload_name_); !valid)
    return fail(PayloadStatus::kInvalid, valid.error().message);
  if (source_.content) return convert_in_memory(*source_.content);
  if (source_.size > in_memory_limit_) return convert_spooled(key_of);
  UniqueFd fd(::open(source_.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) {
    if (errno == ENOENT) return fail(PayloadStatus::kGone, "gone");
    return fail(PayloadStatus::kTransient, errno_error("cannot open", source_.path, errno).message);
  }
  auto text = read_small_file(fd.get(), source_.path, source_.size);
  if (!text) return fail(PayloadStatus::kTransient, text.error().message);
  Sha256 h;
  h.update(text->data(), text->size());
  if (h.hex_digest() != source_.sha256) return fail(PayloadStatus::kChanged, "changed");
  return convert_in_memory(*text);
}

PayloadStatus FilePayload::convert_in_memory(const std::string& content) {
  MemoryJsonSource source(content);
  MemoryXmlSink sink;
  auto converted = convert_json_to_xml(source, sink, options_, source_.name);
  if (!converted) {
    const auto code = converted.error().code;
    if (code == ErrorCode::kInvalidJson || code == ErrorCode::kTooDeep)
      return fail(PayloadStatus::kInvalid, converted.error().message);
    return fail(PayloadStatus::kTransient, converted.error().message);
  }
  in_memory_ = true;
  xml_ = std::move(sink.xml);
  xml_sha256_ = sink.sha256();
  json_bytes_ = converted->json_bytes;
  xml_bytes_ = converted->xml_bytes;
  return PayloadStatus::kReady;
}

PayloadStatus FilePayload::convert_spooled(const KeyOf& key_of) {
  UniqueFd fd(::open(source_.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0) {
    if (errno == ENOENT) return fail(PayloadStatus::kGone, "gone");
    return fail(PayloadStatus::kTransient, errno_error("cannot open", source_.path, errno).message);
  }
  auto same = [&](const struct stat& s) {
    return static_cast<int64_t>(s.st_size) == source_.size &&
           static_cast<int64_t>(s.st_mtim.tv_sec) * 1'000'000'000 + s.st_mtim.tv_nsec ==
               source_.mtime_ns;
  };
  if (!same(st)) return fail(PayloadStatus::kChanged, "changed");
  const bool threaded = source_.size >= encrypt_beside_size_;
  std::vector<XmlSink*> sinks;
  for (const auto& destination : destinations_) {
    auto temp = create_temp_file(spool_dir_, "xml");
    if (!temp) return fail(PayloadStatus::kTransient, temp.error().message);
    spools_.emplace_back(destination, std::make_unique<TokenSpoolSink>(
                                          std::move(*temp), key_of(destination), threaded,
                                          /*hash=*/false));
    sinks.push_back(spools_.back().second.get());
  }
  TeeXmlSink tee(std::move(sinks));
  FileJsonSource source(fd.get(), source_.path, cancel_);
  auto converted = convert_json_to_xml(source, tee, options_, source_.name);
  for (auto& [name, spool] : spools_) {
    if (!converted) break;
    if (auto done = spool->finish(); !done) converted = done.error();
  }
  if (!converted) {
    const auto code = converted.error().code;
    if (code == ErrorCode::kCancelled) return fail(PayloadStatus::kCancelled, "cancelled");
    if (code == ErrorCode::kInvalidJson || code == ErrorCode::kTooDeep)
      return fail(PayloadStatus::kInvalid, converted.error().message);
    return fail(PayloadStatus::kTransient, converted.error().message);
  }
  struct stat after {};
  if (source.sha256() != source_.sha256 || ::fstat(fd.get(), &after) != 0 || !same(after))
    return fail(PayloadStatus::kChanged, "changed while it was read");
  for (auto& [name, spool] : spools_) {
    const uint64_t expected =
        spool->plain() ? converted->xml_bytes : fernet_token_length(converted->xml_bytes);
    if (spool->token_bytes() != expected)
      return fail(PayloadStatus::kTransient,
                  "spooled " + std::to_string(spool->token_bytes()) + " bytes for " +
                      std::to_string(converted->xml_bytes) + " bytes of XML: expected " +
                      std::to_string(expected));
  }
  xml_sha256_ = tee.sha256();
  json_bytes_ = converted->json_bytes;
  xml_bytes_ = converted->xml_bytes;
  return PayloadStatus::kReady;
}

}  // namespace transfer::sender
