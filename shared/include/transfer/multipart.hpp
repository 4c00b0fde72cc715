#pragma once
// A streaming parser for one multipart/form-data body (RFC 7578), fed in chunks of any size
// with bounded memory: part headers are capped, part data is passed through as it arrives.

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "transfer/result.hpp"

namespace transfer {

// The boundary parameter of a multipart/form-data Content-Type, or nullopt when the type is not
// multipart/form-data or has no usable boundary.
std::optional<std::string> multipart_boundary(std::string_view content_type);

struct MultipartPart {
  std::string name;                   // form field name from Content-Disposition
  std::optional<std::string> filename;
  std::string content_type;
};

class MultipartParser {
 public:
  struct Handler {
    std::function<Status(const MultipartPart&)> on_part_begin;
    std::function<Status(const char* data, size_t size)> on_part_data;
    std::function<Status()> on_part_end;
  };

  MultipartParser(std::string boundary, Handler handler, size_t max_header_bytes = 16 * 1024);

  // Feeds body bytes; returns the first error from framing or from a handler.
  Status feed(const char* data, size_t size);
  Status feed(std::string_view s) { return feed(s.data(), s.size()); }
  // Call after the last byte: errors unless the closing boundary was seen.
  Status finish();

 private:
  enum class State { kPreamble, kAfterBoundary, kHeaders, kData, kEpilogue, kFailed };
  Status fail(std::string why);
  Status process();
  Status parse_headers(std::string_view block);
  Status emit_data(size_t size);

  std::string dash_boundary_;   // "--" + boundary
  std::string delimiter_;       // "\r\n--" + boundary
  Handler handler_;
  size_t max_header_bytes_;
  State state_ = State::kPreamble;
  std::string buf_;
  bool in_part_ = false;
  size_t preamble_bytes_ = 0;  // dropped before the opening delimiter
};

}  // namespace transfer
