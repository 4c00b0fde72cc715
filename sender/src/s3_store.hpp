#pragma once
// An s3 destination as an ObjectStore: its fields and credential files made into an S3Client.

#include <atomic>
#include <memory>

#include "destination_client.hpp"
#include "destinations.hpp"
#include "sender_config.hpp"
#include "transfer/result.hpp"

namespace transfer::sender {

// Reads access_key_file and secret_key_file (kInvalidArgument naming the field and the file, never
// the value) and checks the settings (validate_s3_settings).
Result<std::unique_ptr<ObjectStore>> make_s3_store(const Destination& destination,
                                                   const SenderConfig& config,
                                                   const std::atomic<bool>& cancel);

}  // namespace transfer::sender
