// libFuzzer target: the connection front's request-head reader (HeadScanner + parse_request_head)
// and the receiver's router on that one parse, on untrusted bytes. The first byte picks the
// chunk size and small limits. Invariants: the outcome is the same whether the bytes arrive in
// chunks or at once; a complete head never extends past the bytes given; an accepted head holds
// no control byte in a value, no empty or non-token name, at most the field limit, and a
// Content-Length only without Transfer-Encoding. The router: a request with a body is routed
// only to POST /upload/<name> (anything else is refused before a byte of it is read), only with
// no Content-Encoding on a body; a refusal is 400/404/405/413/415; an upload's name is the
// percent-decoding of the raw path after "/upload/", and one holding a control character is
// refused by the upload rules with 400.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "receiver_routes.hpp"
#include "transfer/http/request_head.hpp"
#include "transfer/http/request_target.hpp"
#include "upload_handler.hpp"
#include "upload_session.hpp"

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

void check_route(const RequestHead& h) {
  using transfer::receiver::Endpoint;
  using transfer::receiver::Route;
  using transfer::receiver::RouteRefusal;
  auto routed = transfer::receiver::route_request(h);
  if (auto* refused = std::get_if<RouteRefusal>(&routed)) {
    const int s = refused->status;
    if (s != 400 && s != 404 && s != 405 && s != 413 && s != 415) std::abort();
    if (s == 405 && refused->allow.empty()) std::abort();
    return;
  }
  const Route& route = std::get<Route>(routed);
  const std::string_view path = split_target(h.target).raw_path;
  if (h.has_body()) {
    if (route.endpoint != Endpoint::kUpload || h.method != "POST") std::abort();
    if (h.field("Content-Encoding")) std::abort();
  }
  if (route.endpoint == Endpoint::kUpload) {
    if (path.substr(0, 8) != "/upload/") std::abort();
    auto decoded = percent_decode(path.substr(8));
    if (!decoded || *decoded != route.name) std::abort();
    transfer::receiver::UploadSettings settings;
    const auto upload = transfer::receiver::upload_request_head(h, route.name);
    const auto refusal = transfer::receiver::precheck_upload(upload, settings);
    const bool control = std::any_of(route.name.begin(), route.name.end(), [](char c) {
      return static_cast<unsigned char>(c) < 0x20 || c == 0x7F;
    });
    if (control && (!refusal || refusal->status != 400)) std::abort();
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
  if (whole.status == 0) {
    check_accepted(whole.head, limits);
    check_route(whole.head);
  }
  return 0;
}
