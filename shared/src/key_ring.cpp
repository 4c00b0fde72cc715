#include "transfer/key_ring.hpp"

#include <cerrno>
#include <cstring>

#include "transfer/file_util.hpp"

namespace transfer {

Result<KeyRing::Stamp> KeyRing::stamp_of(const std::string& path) {
  auto stamp = file_change_stamp(path);
  if (!stamp)
    return make_error(ErrorCode::kInvalidKey,
                      "cannot read key file " + path + ": " + std::strerror(errno));
  return *stamp;
}

KeyRing::KeyRing(std::string path, KeyFileContents contents, Stamp stamp)
    : path_(std::move(path)),
      keys_(std::make_shared<const std::vector<FernetKey>>(std::move(contents.keys))),
      stamp_(stamp),
      access_warning_(std::move(contents.access_warning)) {}

Result<std::shared_ptr<KeyRing>> KeyRing::load(const std::string& path) {
  auto stamp = stamp_of(path);
  auto contents = read_key_file(path);
  if (!contents) return contents.error();
  return std::shared_ptr<KeyRing>(
      new KeyRing(path, std::move(*contents), stamp ? *stamp : Stamp{}));
}

std::shared_ptr<KeyRing> KeyRing::fixed(std::vector<FernetKey> keys) {
  return std::shared_ptr<KeyRing>(new KeyRing("", KeyFileContents{std::move(keys), {}}, Stamp{}));
}

KeySet KeyRing::keys() const {
  std::lock_guard lock(mu_);
  return keys_;
}

std::optional<Error> KeyRing::error() const {
  std::lock_guard lock(mu_);
  return error_;
}

std::string KeyRing::access_warning() const {
  std::lock_guard lock(mu_);
  return access_warning_;
}

Result<bool> KeyRing::refresh() {
  if (path_.empty()) return false;
  std::lock_guard lock(mu_);
  auto stamp = stamp_of(path_);
  if (!stamp) {
    error_ = stamp.error();
    return stamp.error();
  }
  if (*stamp == stamp_ && !error_) return false;
  auto contents = read_key_file(path_);
  if (!contents) {
    error_ = contents.error();
    return contents.error();
  }
  std::vector<FernetKey>& keys = contents->keys;
  stamp_ = *stamp;
  error_.reset();
  access_warning_ = std::move(contents->access_warning);
  const bool changed =
      keys.size() != keys_->size() ||
      std::memcmp(keys.data(), keys_->data(), keys.size() * sizeof(FernetKey)) != 0;
  if (changed) keys_ = std::make_shared<const std::vector<FernetKey>>(std::move(keys));
  return changed;
}

}  // namespace transfer
