#pragma once
// sender sign-request [--method GET] [--destination NAME] TARGET
// Prints the two header lines that make a request to a receiver with FILES_ACCESS=signed or
// METRICS_ACCESS=signed acceptable, signed with the upload signing key of the sender's key (the
// first key of ENCRYPTION_KEY, or of a destination's key_file with --destination):
//   X-Transfer-Id: <16 random hex digits, the nonce>
//   X-Transfer-Signature: t=<now>,v1=<hex>
// TARGET is the request target exactly as it will be sent ("/files?limit=10"). For curl:
//   curl -H @<(sender sign-request /files) http://receiver:8080/files
// Each signature is accepted once, within SIGNATURE_WINDOW of its time.

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "transfer/config.hpp"

namespace transfer::sender {

// The command's exit code when args[0] is "sign-request" (0 ok, 1 failed, 2 usage), else nothing.
std::optional<int> run_sign_request(const std::vector<std::string>& args, const EnvLookup& env,
                                    uint64_t now_unix_seconds, std::ostream& out,
                                    std::ostream& err);

}  // namespace transfer::sender
