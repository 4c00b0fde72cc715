#pragma once
// The receiver's routes, decided once from the head the connection front parsed (the only
// parse of a request): what endpoint it is for, with the path's parts percent-decoded once, or
// the refusal, before a byte of any body is read. Pure.
//   GET|HEAD /                  -> kHealth     (liveness; answered by the front itself)
//   GET|HEAD /readyz            -> kReadiness
//   GET|HEAD /metrics           -> kMetrics
//   GET|HEAD /files[?query]     -> kFiles      (query decoded: limit, after)
//   GET|HEAD /files/<name>      -> kFile       (<name> decoded; a '/' in it: 404)
//   POST /upload/<name>         -> kUpload     (<name> decoded, whatever it holds: the upload
//                                               name rules judge it, so "a%0Ab" gets their 400)
// Refused here: a bad percent escape (400); an unknown path (404); a known path with another
// method (405, with Allow); a body on any route but kUpload (413), and a body sent with
// Content-Encoding on any route (415). A refused request's body is never read (the connection
// is closed after the answer).

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "transfer/http/request_head.hpp"

namespace transfer::receiver {

enum class Endpoint { kHealth, kReadiness, kMetrics, kFiles, kFile, kUpload };

struct Route {
  Endpoint endpoint = Endpoint::kHealth;
  bool head_only = false;  // HEAD: the GET answer's fields without its body
  std::string name;        // kFile, kUpload: the decoded name
  std::vector<std::pair<std::string, std::string>> query;  // kFiles: decoded, in order
};

struct RouteRefusal {
  int status = 400;
  std::string message;  // safe to send: never echoes the client's bytes
  std::string allow;    // for 405: the methods the path takes
};

std::variant<Route, RouteRefusal> route_request(const http::RequestHead& head);

// Counters of what the routes refused (read from any thread).
struct RouteStats {
  std::atomic<uint64_t> body_refused{0};  // 413: a body where none is taken
  std::atomic<uint64_t> not_routed{0};    // 400, 404, 405, 415
};

// "/files" and "/metrics" may need authentication (FILES_ACCESS, METRICS_ACCESS).
const char* endpoint_label(Endpoint endpoint);

}  // namespace transfer::receiver
