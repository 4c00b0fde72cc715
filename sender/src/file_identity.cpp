#include "file_identity.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "payload.hpp"
#include "transfer/file_util.hpp"
#include "transfer/sha256.hpp"

namespace transfer::sender {

// Opens, screens and hashes one candidate (reading a small one whole) and asks the state database
// what each destination has done with that version.
Identification FileIdentifier::identify(const std::string& name, const FileStamp& expected) const {
  Identification id;
  id.name = name;
  id.dispatched = expected;
  const std::string path = input_dir_ + "/" + name;
  const auto later = [&](Identification::Outcome o = Identification::Outcome::kRetryLater) {
    id.outcome = o;
    return id;
  };
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0) {
    if (errno == ENOENT) return later(Identification::Outcome::kGone);
    logger_->warn("cannot open file={} error={} (will retry)", log_value(name),
                  log_value(std::strerror(errno)));
    return later();
  }
  if (!S_ISREG(st.st_mode)) return later(Identification::Outcome::kGone);
  id.stamp = stamp_of(st);
  if (!(id.stamp == expected)) return later(Identification::Outcome::kChanged);
  auto refused = screen_input(fd.get(), st, name, screen_);
  if (!refused) {
    logger_->warn("cannot read file={} error={} (will retry)", log_value(name),
                  log_value(refused.error().message));
    return later();
  }
  if (*refused) {
    struct stat after {};
    if (::fstat(fd.get(), &after) != 0 || !(stamp_of(after) == id.stamp)) {
      id.stamp = stamp_of(after);  // written to while it was screened: judged once it settles
      return later(Identification::Outcome::kChanged);
    }
    id.sha256 = kUnhashed;
    id.refusal = std::move(**refused);
    return later(Identification::Outcome::kRefused);
  }
  if (id.stamp.size <= in_memory_limit_) {
    auto text = read_small_file(fd.get(), path, id.stamp.size);
    if (!text) {
      logger_->warn("cannot read file={} error={} (will retry)", log_value(name),
                    log_value(text.error().message));
      return later();
    }
    struct stat after {};
    if (::fstat(fd.get(), &after) != 0 || !(stamp_of(after) == id.stamp) ||
        static_cast<int64_t>(text->size()) != id.stamp.size) {
      id.stamp = stamp_of(after);  // written to while we read it
      return later(Identification::Outcome::kChanged);
    }
    Sha256 h;
    h.update(text->data(), text->size());
    id.sha256 = h.hex_digest();
    id.content = std::move(*text);
  } else {
    auto sha = sha256_of_fd(fd.get(), path, [this] { return cancel_.load(); });
    if (!sha) {
      if (sha.error().code == ErrorCode::kCancelled) return later(Identification::Outcome::kStopped);
      logger_->warn("cannot read file={} error={} (will retry)", log_value(name),
                    log_value(sha.error().message));
      return later();
    }
    id.sha256 = std::move(*sha);
  }
  for (const auto& d : destinations_) {
    auto known = store_.find(name, id.sha256, d);
    if (!known) {
      logger_->error("state database: {} (file={} will be retried)", known.error().message,
                     log_value(name));
      return later();
    }
    if (!*known) continue;
    id.new_version = false;
    const OutboxEntry& e = **known;
    PairHistory h;
    h.attempts = e.attempts;
    h.first_failure_unix = e.first_failure_unix;
    h.next_attempt_unix = e.next_attempt_unix;
    h.last_error = e.last_error;
    switch (e.state) {
      case OutboxState::kDelivered: h.state = PairState::kDelivered; break;
      case OutboxState::kQuarantined:
        if (!e.quarantine_path.empty()) {  // the input was moved back from the quarantine
          id.back_from_quarantine.push_back(d);
          continue;
        }
        h.state = PairState::kGaveUp;
        break;
      case OutboxState::kFailed:
      case OutboxState::kPending: h.state = PairState::kWaiting; break;
    }
    id.history[d] = h;
  }
  id.outcome = Identification::Outcome::kOk;
  return id;
}

}  // namespace transfer::sender
