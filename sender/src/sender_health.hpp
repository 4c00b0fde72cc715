#pragma once
// `sender --health-check`: the container HEALTHCHECK. The sender serves no HTTP, so it checks, from
// a second process and without writing anything, what a running sender needs: the input directory
// readable, the state directory writable and its database answering a read.

#include <string>

#include "sender_config.hpp"
#include "transfer/result.hpp"

namespace transfer::sender {

// Ok (a one-line description) when all three hold; otherwise an error naming each that fails.
Result<std::string> check_health(const SenderConfig& config);

}  // namespace transfer::sender
