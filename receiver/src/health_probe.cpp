#include "health_probe.hpp"

#include <httplib.h>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "transfer/config.hpp"

namespace transfer::receiver {

std::string probe_address(const std::string& server_ip) {
  if (server_ip.empty() || server_ip == "0.0.0.0") return "127.0.0.1";
  if (server_ip == "::" || server_ip == "[::]") return "::1";
  return server_ip;
}

Result<std::string> probe_health(const ReceiverConfig& config, double timeout_s) {
  const std::string host = probe_address(config.server_ip);
  const std::string scheme_host_port =
      fmt::format("{}://{}:{}", uses_tls(config) ? "https" : "http",
                  host.find(':') == std::string::npos ? host : "[" + host + "]", config.server_port);
  const std::string where = scheme_host_port + "/readyz";
  if (config.server_port == 0)
    return Error{ErrorCode::kInvalidArgument, where + ": SERVER_PORT=0 cannot be probed"};
  // With TLS the probe dials loopback, which the certificate need not name: it checks that the
  // receiver answers, not who it is. Under mutual TLS it shows the receiver's own certificate,
  // which works when one CA issues both (as in compose/docker-compose.tls.yml).
  httplib::Client client(scheme_host_port, config.client_ca_file.empty() ? "" : config.tls_cert_file,
                         config.client_ca_file.empty() ? "" : config.tls_key_file);
  if (uses_tls(config)) client.enable_server_certificate_verification(false);
  const auto timeout = split_seconds(timeout_s);
  client.set_connection_timeout(timeout.sec, timeout.usec);
  client.set_read_timeout(timeout.sec, timeout.usec);
  client.set_write_timeout(timeout.sec, timeout.usec);
  auto answer = client.Get("/readyz");
  if (!answer)
    return Error{ErrorCode::kIo, fmt::format("{}: no answer ({} error)", where, httplib::to_string(answer.error()))};
  if (answer->status != 200) {
    std::string failing;
    try {
      failing = " (failing: " + nlohmann::json::parse(answer->body).at("failing").dump() + ")";
    } catch (const nlohmann::json::exception&) {
    }
    return Error{ErrorCode::kIo, fmt::format("{}: answered {}{}", where, answer->status, failing)};
  }
  return fmt::format("{}: ready", where);
}

}  // namespace transfer::receiver
