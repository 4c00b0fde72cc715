#pragma once
// A credential kept in a file of its own (an S3 access or secret key, an FTP password), so that
// it can be a swarm secret or a systemd credential: the file's bytes without the trailing
// newline an editor or `echo` adds. The value is never part of an error message.

#include <string>

#include "transfer/result.hpp"

namespace transfer::sender {

inline constexpr size_t kMaxCredentialBytes = 64 * 1024;

// kInvalidArgument naming `field` and `path` when the file cannot be read, is larger than
// kMaxCredentialBytes, is empty once trailing "\r\n" are dropped, or holds a NUL or a line break
// inside the value (a file of two lines is a mistake, not a credential).
Result<std::string> read_credential_file(const std::string& field, const std::string& path);

}  // namespace transfer::sender
