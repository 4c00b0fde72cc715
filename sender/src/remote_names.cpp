#include "remote_names.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>
#include <utility>

namespace transfer::sender {

Result<OnConflict> parse_on_conflict(std::string_view text) {
  if (text == "fail") return OnConflict::kFail;
  if (text == "overwrite") return OnConflict::kOverwrite;
  return make_error(ErrorCode::kInvalidArgument,
                    "on_conflict: \"" + std::string(text) + "\" is not fail or overwrite");
}

std::string_view on_conflict_name(OnConflict on_conflict) {
  return on_conflict == OnConflict::kOverwrite ? "overwrite" : "fail";
}

Status check_remote_file_name(std::string_view name) {
  auto refuse = [&](const std::string& why) {
    std::string shown;
    for (const unsigned char c : name.substr(0, 64)) {
      if (c < 0x20 || c == 0x7f) {
        char buf[5];
        std::snprintf(buf, sizeof buf, "\\x%02x", c);
        shown += buf;
      } else {
        shown += static_cast<char>(c);
      }
    }
    return make_error(ErrorCode::kInvalidArgument,
                      "file name \"" + shown + (name.size() > 64 ? "...\"" : "\"") +
                          " cannot be stored on a file server: " + why);
  };
  if (name.empty()) return refuse("it is empty");
  if (name == "." || name == "..") return refuse("it names a directory");
  if (name.size() > kMaxRemoteNameBytes) {
    return refuse("longer than " + std::to_string(kMaxRemoteNameBytes) + " bytes");
  }
  for (const unsigned char c : name) {
    if (c == '/') return refuse("it holds a '/'");
    if (c < 0x20 || c == 0x7f) return refuse("it holds a control character");
  }
  return ok_status();
}

std::string temporary_name_for(std::string_view final_name, std::string_view tag) {
  const std::string suffix = "." + std::string(tag) + ".part";
  const size_t room = kMaxRemoteNameBytes - 1 - suffix.size();
  size_t keep = final_name.size();
  if (keep > room) {
    keep = room;
    // Back off to the start of a UTF-8 character (continuation bytes are 10xxxxxx).
    while (keep > 0 && (static_cast<unsigned char>(final_name[keep]) & 0xC0) == 0x80) --keep;
  }
  return "." + std::string(final_name.substr(0, keep)) + suffix;
}

bool is_temporary_name(std::string_view name) {
  constexpr std::string_view kPart = ".part";
  constexpr size_t kTag = 8;
  if (name.size() < 1 + 1 + kTag + kPart.size() || name[0] != '.') return false;
  if (name.substr(name.size() - kPart.size()) != kPart) return false;
  const size_t tag_at = name.size() - kPart.size() - kTag;
  if (name[tag_at - 1] != '.') return false;
  for (const char c : name.substr(tag_at, kTag)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string random_tag() {
  std::array<unsigned char, 4> bytes{};
  if (RAND_bytes(bytes.data(), bytes.size()) != 1) {
    // RAND_bytes fails only without an entropy source; a fixed tag still works (the temporary
    // file is opened exclusively and a clash is retried as a transient failure).
    bytes = {0, 0, 0, 0};
  }
  std::string out;
  char buf[3];
  for (const unsigned char b : bytes) {
    std::snprintf(buf, sizeof buf, "%02x", b);
    out += buf;
  }
  return out;
}

std::string remote_path(std::string_view dir, std::string_view name) {
  if (dir.empty() || dir == ".") return std::string(name);
  if (dir.back() == '/') return std::string(dir) + std::string(name);
  return std::string(dir) + "/" + std::string(name);
}

std::shared_ptr<LeftoverNames> LeftoverNames::shared_for(const std::string& login) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<LeftoverNames>> all;
  std::lock_guard lock(mu);
  auto& slot = all[login];
  auto list = slot.lock();
  if (!list) {
    list = std::make_shared<LeftoverNames>();
    slot = list;
  }
  return list;
}

void LeftoverNames::add(std::vector<std::string> names) {
  std::lock_guard lock(mu_);
  for (auto& n : names) {
    if (names_.size() >= kMaxLeftovers) break;
    if (std::find(names_.begin(), names_.end(), n) == names_.end()) names_.push_back(std::move(n));
  }
}

std::vector<std::string> LeftoverNames::names() {
  std::lock_guard lock(mu_);
  return names_;
}

void LeftoverNames::forget(const std::string& name) {
  std::lock_guard lock(mu_);
  std::erase(names_, name);
}

}  // namespace transfer::sender
