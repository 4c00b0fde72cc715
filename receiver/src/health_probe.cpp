#include "health_probe.hpp"

#include <httplib.h>

#include <fmt/format.h>

#include "transfer/config.hpp"

namespace transfer::receiver {

std::string probe_address(const std::string& server_ip) {
  if (server_ip.empty() || server_ip == "0.0.0.0") return "127.0.0.1";
  if (server_ip == "::" || server_ip == "[::]") return "::1";
  return server_ip;
}

Result<std::string> probe_health(const ReceiverConfig& config, double timeout_s) {
  const std::string host = probe_address(config.server_ip);
  const std::string where = fmt::format("http://{}:{}/",
                                        host.find(':') == std::string::npos ? host : "[" + host + "]",
                                        config.server_port);
  if (config.server_port == 0)
    return Error{ErrorCode::kInvalidArgument, where + ": SERVER_PORT=0 cannot be probed"};
  httplib::Client client(host, config.server_port);
  const auto timeout = split_seconds(timeout_s);
  client.set_connection_timeout(timeout.sec, timeout.usec);
  client.set_read_timeout(timeout.sec, timeout.usec);
  client.set_write_timeout(timeout.sec, timeout.usec);
  auto answer = client.Get("/");
  if (!answer)
    return Error{ErrorCode::kIo, fmt::format("{}: no answer ({} error)", where, httplib::to_string(answer.error()))};
  if (answer->status != 200)
    return Error{ErrorCode::kIo, fmt::format("{}: answered {}", where, answer->status)};
  return fmt::format("{}: healthy", where);
}

}  // namespace transfer::receiver
