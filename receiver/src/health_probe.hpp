#pragma once
// `receiver --health-check`: the container HEALTHCHECK without curl. Asks the receiver configured
// by the same flags and environment for GET /readyz and reports whether it answered 200.

#include <string>

#include "receiver_config.hpp"
#include "transfer/result.hpp"

namespace transfer::receiver {

// The address a local probe should dial for a listening address: a wildcard (0.0.0.0, ::, empty)
// means the loopback of the same family; anything else is dialled as it is.
std::string probe_address(const std::string& server_ip);

// GET /readyz (https when TLS_CERT_FILE is set) on probe_address(config.server_ip):config.server_port within timeout_s. Ok (holding a
// one-line description) on 200; an error naming the address and what went wrong otherwise.
Result<std::string> probe_health(const ReceiverConfig& config, double timeout_s);

}  // namespace transfer::receiver
