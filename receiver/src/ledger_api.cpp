#include "ledger_api.hpp"

#include <climits>
#include <nlohmann/json.hpp>

#include "transfer/config.hpp"

namespace transfer::receiver {
namespace {

nlohmann::json entry_json(const Delivery& d) {
  const size_t slash = d.output_path.find_last_of('/');
  return {{"name", d.name},
          {"file", slash == std::string::npos ? d.output_path : d.output_path.substr(slash + 1)},
          {"bytes", d.bytes},
          {"sha256", d.sha256},
          {"first_received_at", d.first_received_at},
          {"last_received_at", d.last_received_at},
          {"duplicates", d.duplicates},
          {"key_index", d.key_index}};
}

PlainResponse json_response(int status, const nlohmann::json& j) {
  return PlainResponse{status, "application/json",
                       j.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace) + "\n", {}};
}

PlainResponse problem(int status, const std::string& msg) {
  return json_response(status, {{"msg", msg}, {"status_code", status}});
}

}  // namespace

PlainResponse list_files(UploadLedger& ledger, const std::map<std::string, std::string>& query) {
  int64_t limit = kDefaultFilesLimit;
  int64_t after = 0;
  if (auto it = query.find("limit"); it != query.end()) {
    auto n = parse_integer(it->second, "limit", 1, kMaxFilesLimit);
    if (!n) return problem(400, n.error().message);
    limit = *n;
  }
  if (auto it = query.find("after"); it != query.end() && !it->second.empty()) {
    auto n = parse_integer(it->second, "after", 0, LLONG_MAX);
    if (!n) return problem(400, "after: not a cursor from an earlier page's \"next\"");
    after = *n;
  }
  auto rows = ledger.deliveries_after(after, limit + 1);  // one more tells whether a page follows
  if (!rows) return problem(503, "ledger unavailable: " + rows.error().message);
  nlohmann::json files = nlohmann::json::array();
  for (size_t i = 0; i < rows->size() && static_cast<int64_t>(i) < limit; ++i) files.push_back(entry_json((*rows)[i]));
  nlohmann::json next = nullptr;
  if (static_cast<int64_t>(rows->size()) > limit) next = std::to_string((*rows)[static_cast<size_t>(limit) - 1].id);
  return json_response(200, {{"files", files}, {"next", next}});
}

PlainResponse describe_file(UploadLedger& ledger, const std::string& name) {
  auto row = ledger.find_by_file_or_name(name);
  if (!row) return problem(503, "ledger unavailable: " + row.error().message);
  if (!*row) return problem(404, "no delivery of '" + name + "' in the ledger");
  return json_response(200, entry_json(**row));
}

}  // namespace transfer::receiver
