// libFuzzer target: the connection front's request-head reader (HeadScanner + parse_request_head)
// on untrusted bytes. The first byte picks the chunk size and small limits. Invariants: the
// outcome is the same whether the bytes arrive in chunks or at once; a complete head never
// extends past the bytes given; an accepted head holds no control byte in a value, no empty or
// non-token name, at most the field limit, and a Content-Length only without Transfer-Encoding.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "transfer/http/request_head.hpp"

using namespace transfer::http;

namespace {

struct Outcome {
  int status = -1;  // -1: needs more bytes, 0: accepted, else the refusal's status
  size_t end = 0;
  RequestHead head;
};

Outcome run(std::string_view bytes, size_t chunk, const RequestHeadLimits& limits) {
  HeadScanner scanner(limits);
  Outcome o;
  for (size_t n = 0; n < bytes.size();) {
    n = std::min(bytes.size(), n + chunk);
    auto r = scanner.scan(bytes.substr(0, n));
    if (auto* err = std::get_if<HeadError>(&r)) {
      o.status = status_for_refusal(err->kind);
      return o;
    }
    if (auto* done = std::get_if<HeadScanner::Complete>(&r)) {
      if (done->end > n || done->start > done->end) std::abort();
      o.end = done->end;
      auto parsed = parse_request_head(bytes.substr(done->start, done->end - done->start), limits);
      if (auto* err = std::get_if<HeadError>(&parsed)) {
        o.status = status_for_refusal(err->kind);
      } else {
        o.status = 0;
        o.head = std::get<RequestHead>(parsed);
      }
      return o;
    }
  }
  return o;
}

void check_accepted(const RequestHead& h, const RequestHeadLimits& limits) {
  if (h.fields.size() > limits.max_headers) std::abort();
  if (h.content_length && h.chunked) std::abort();
  if (h.target.empty() || h.target[0] != '/') std::abort();
  for (const auto& [name, value] : h.fields) {
    if (name.empty()) std::abort();
    for (const char c : name) {
      if (static_cast<unsigned char>(c) <= 0x20 || c == ':' || c == 0x7F) std::abort();
    }
    for (const char c : value) {
      const auto u = static_cast<unsigned char>(c);
      if ((u < 0x20 && u != '\t') || u == 0x7F) std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  RequestHeadLimits limits;
  limits.max_head_bytes = 256 + data[0] * 8;
  limits.max_headers = 1 + data[0] % 12;
  limits.max_line_bytes = 32 + data[0] % 200;
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  const Outcome chunked = run(bytes, 1 + data[0] % 17, limits);
  const Outcome whole = run(bytes, bytes.empty() ? 1 : bytes.size(), limits);
  if (chunked.status != whole.status || chunked.end != whole.end) std::abort();
  if (whole.status == 0) check_accepted(whole.head, limits);
  return 0;
}
