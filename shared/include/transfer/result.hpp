#pragma once
// Errors as values: every operation that can fail on input or environment returns Result<T>.
// A small std::expected-like type (clang-tidy 14 cannot parse libstdc++'s <expected>).

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace transfer {

enum class ErrorCode {
  kInvalidArgument,  // bad configuration or caller input
  kInvalidKey,       // key file missing, unreadable or malformed
  kInvalidJson,      // the input is not JSON we accept
  kTooDeep,          // nesting deeper than the configured limit
  kInvalidToken,     // not a Fernet token for our key(s)
  kInvalidName,      // an upload name we refuse
  kMalformedRequest, // multipart framing or headers are wrong
  kTooLarge,         // over a configured size limit
  kIo,               // the file system or a socket failed
  kNoSpace,          // ENOSPC / EDQUOT
  kDatabase,         // SQLite failed
  kCorruptDatabase,  // a state database that fails its integrity check or is not a database
  kConflict,         // the name exists with other content and ON_CONFLICT=reject
  kCancelled,        // stopped on request (shutdown)
  kChanged,          // the input changed while it was being processed
  kUnauthenticated,  // a request whose signature is missing, malformed, stale or matches no key
  kBusy,             // a shared allowance is used up for now: retry later
};

struct Error {
  ErrorCode code;
  std::string message;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}          // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}      // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }

  T& value() & { assert(ok()); return std::get<T>(v_); }
  const T& value() const& { assert(ok()); return std::get<T>(v_); }
  T&& value() && { assert(ok()); return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const { assert(!ok()); return std::get<Error>(v_); }

 private:
  std::variant<T, Error> v_;
};

struct Ok {};
using Status = Result<Ok>;

inline Status ok_status() { return Ok{}; }
inline Error make_error(ErrorCode code, std::string message) {
  return Error{code, std::move(message)};
}

}  // namespace transfer
