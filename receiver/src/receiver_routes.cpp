#include "receiver_routes.hpp"

#include <string_view>

#include "transfer/http/request_target.hpp"

namespace transfer::receiver {
namespace {

constexpr std::string_view kUploadPrefix = "/upload/";
constexpr std::string_view kFilesPrefix = "/files/";

RouteRefusal refusal(int status, std::string message, std::string allow = "") {
  return RouteRefusal{status, std::move(message), std::move(allow)};
}

std::string endpoint_path(Endpoint endpoint) {
  switch (endpoint) {
    case Endpoint::kHealth:
      return "/";
    case Endpoint::kReadiness:
      return "/readyz";
    case Endpoint::kMetrics:
      return "/metrics";
    case Endpoint::kFiles:
      return "/files";
    case Endpoint::kFile:
      return "/files/<name>";
    case Endpoint::kUpload:
      return "/upload/<name>";
  }
  return "?";
}

}  // namespace

const char* endpoint_label(Endpoint endpoint) {
  switch (endpoint) {
    case Endpoint::kHealth:
      return "health";
    case Endpoint::kReadiness:
      return "readiness";
    case Endpoint::kMetrics:
      return "metrics";
    case Endpoint::kFiles:
      return "files";
    case Endpoint::kFile:
      return "file";
    case Endpoint::kUpload:
      return "upload";
  }
  return "unknown";
}

std::variant<Route, RouteRefusal> route_request(const http::RequestHead& head) {
  const http::RequestTarget target = http::split_target(head.target);
  const std::string_view path = target.raw_path;
  Route route;
  bool upload = false;
  if (path.substr(0, kUploadPrefix.size()) == kUploadPrefix) {
    auto name = http::percent_decode(path.substr(kUploadPrefix.size()));
    if (!name) return refusal(400, name.error().message);
    route.endpoint = Endpoint::kUpload;
    route.name = std::move(*name);
    upload = true;
  } else if (path == "/") {
    route.endpoint = Endpoint::kHealth;
  } else if (path == "/readyz") {
    route.endpoint = Endpoint::kReadiness;
  } else if (path == "/metrics") {
    route.endpoint = Endpoint::kMetrics;
  } else if (path == "/files") {
    route.endpoint = Endpoint::kFiles;
    auto query = http::parse_query(target.raw_query);
    if (!query) return refusal(400, query.error().message);
    route.query = std::move(*query);
  } else if (path.substr(0, kFilesPrefix.size()) == kFilesPrefix &&
             path.find('/', kFilesPrefix.size()) == std::string_view::npos &&
             path.size() > kFilesPrefix.size()) {
    auto name = http::percent_decode(path.substr(kFilesPrefix.size()));
    if (!name) return refusal(400, name.error().message);
    route.endpoint = Endpoint::kFile;
    route.name = std::move(*name);
  } else {
    return refusal(404, "not found");
  }
  if (upload) {
    if (head.method != "POST") return refusal(405, "method not allowed", "POST");
  } else if (head.method == "HEAD") {
    route.head_only = true;
  } else if (head.method != "GET") {
    return refusal(405, "method not allowed", "GET, HEAD");
  }
  if (head.has_body()) {
    if (!upload) {
      return refusal(413, head.method.substr(0, 16) + " " + endpoint_path(route.endpoint) +
                              " takes no request body");
    }
    if (head.field("Content-Encoding")) {
      return refusal(415,
                     "Content-Encoding is not accepted on request bodies (its decoded size "
                     "cannot be bounded)");
    }
  }
  return route;
}

}  // namespace transfer::receiver
