#pragma once
// TLS certificate and key files checked before a server or client is built from them, so a
// mistake gets an error that names the file and says what is wrong (the HTTP library would
// only say "invalid"). Like the Fernet key, the content never appears in a message.

#include <string>

#include "transfer/result.hpp"

namespace transfer {

struct TlsFiles {
  std::string cert_file;  // PEM certificate (chain), first is ours
  std::string key_file;   // PEM private key matching cert_file
  std::string ca_file;    // PEM certificates to trust (for the peer); optional
};

// kInvalidArgument naming `what` (the option) and the path when a file is missing, unreadable,
// holds no PEM of the right kind, or the key does not match the certificate. Empty paths are
// skipped; a key without a certificate (or the reverse) is an error.
Status check_tls_files(const TlsFiles& files, const std::string& cert_option,
                       const std::string& key_option, const std::string& ca_option);

}  // namespace transfer
