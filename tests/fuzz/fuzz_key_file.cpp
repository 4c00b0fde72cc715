// libFuzzer target: key-file parsing (operators' files and swarm secrets). Invariant: an accepted
// file yields at least one key, and each key round-trips through encryption and decryption.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "transfer/fernet.hpp"
#include "transfer/key_file.hpp"

using namespace transfer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto keys = parse_key_text(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  if (!keys) return 0;
  if (keys->empty()) std::abort();
  for (const auto& key : *keys) {
    auto token = fernet_encrypt(key, "x");
    if (!token) std::abort();
    auto plain = fernet_decrypt({key}, *token);
    if (!plain || *plain != "x") std::abort();
  }
  return 0;
}
