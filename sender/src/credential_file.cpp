#include "credential_file.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

namespace transfer::sender {

Result<std::string> read_credential_file(const std::string& field, const std::string& path) {
  const auto refuse = [&](const std::string& why) {
    return make_error(ErrorCode::kInvalidArgument, field + " " + path + ": " + why);
  };
  if (path.empty()) return refuse("no file named");
  std::ifstream in(path, std::ios::binary);
  if (!in) return refuse(std::string("cannot be read: ") + std::strerror(errno));
  std::string value;
  value.resize(kMaxCredentialBytes + 1);
  in.read(value.data(), static_cast<std::streamsize>(value.size()));
  if (in.bad()) return refuse("cannot be read");
  value.resize(static_cast<size_t>(in.gcount()));
  if (value.size() > kMaxCredentialBytes) {
    return refuse("larger than " + std::to_string(kMaxCredentialBytes) + " bytes");
  }
  while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
  if (value.empty()) return refuse("is empty");
  if (value.find_first_of(std::string("\n\r\0", 3)) != std::string::npos) {
    return refuse("holds more than one line (one value is expected)");
  }
  return value;
}

}  // namespace transfer::sender
