#pragma once
// The virus scan of an upload's plaintext (CLAMD_ADDRESS): a PlaintextCheck over one clamd
// zINSTREAM session, opened at the first byte and fed as the plaintext is decrypted (in pieces of
// up to 256 KiB, so a small decrypted piece does not cost clamd a chunk of its own). clamd found
// something: refused ("found", with the signature). clamd unreachable, timing out, closing the
// stream or answering an error (its StreamMaxLength passed included): unavailable, so nothing
// unscanned lands and the sender retries (fail closed).

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "clamd_client.hpp"
#include "plaintext_check.hpp"

namespace transfer::receiver {

// Told of every scan's verdict and how long it took (metrics).
using ScanObserver = std::function<void(const CheckVerdict& verdict, double seconds)>;

class VirusScanCheck : public PlaintextCheck {
 public:
  VirusScanCheck(ClamdAddress address, ClamdTimeouts timeouts, ScanObserver observer = nullptr);
  bool update(const char* data, size_t size) override;
  CheckVerdict finish() override;

 private:
  bool open();
  bool flush();
  void unavailable(const std::string& reason, const std::string& why);

  ClamdAddress address_;
  ClamdTimeouts timeouts_;
  ScanObserver observer_;
  std::optional<ClamdScan> scan_;
  std::string pending_;
  std::optional<CheckVerdict> failed_;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace transfer::receiver
