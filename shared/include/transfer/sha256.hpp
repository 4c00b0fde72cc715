#pragma once
// Streaming SHA-256 (OpenSSL EVP). Not thread-safe; one instance per stream.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace transfer {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  void update(std::string_view data) { update(data.data(), data.size()); }
  // Finishes the hash and returns it as 64 lowercase hex digits; the object is then reset.
  std::string hex_digest();

 private:
  struct Free { void operator()(evp_md_ctx_st* ctx) const; };
  std::unique_ptr<evp_md_ctx_st, Free> ctx_;
};

std::string to_hex(const uint8_t* data, size_t size);

}  // namespace transfer
