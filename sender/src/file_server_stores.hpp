#pragma once
// sftp and ftps destinations as ObjectStores: their fields (and the FTP password file) made into
// an SftpClient or an FtpsClient. A file server keeps no metadata: what is stored is the bytes
// under the rendered name in remote_dir.

#include <atomic>
#include <memory>

#include "destination_client.hpp"
#include "destinations.hpp"
#include "sender_config.hpp"
#include "transfer/result.hpp"

namespace transfer::sender {

Result<std::unique_ptr<ObjectStore>> make_sftp_store(const Destination& destination,
                                                     const SenderConfig& config,
                                                     const std::atomic<bool>& cancel);

// Reads password_file (kInvalidArgument naming the field and the file, never the value).
Result<std::unique_ptr<ObjectStore>> make_ftps_store(const Destination& destination,
                                                     const SenderConfig& config,
                                                     const std::atomic<bool>& cancel);

}  // namespace transfer::sender
