#pragma once
// A client for clamd (ClamAV's daemon): the upload's plaintext is streamed to it with zINSTREAM on
// a connection of its own per upload, and zPING/zVERSION serve /readyz.
//
// Every wait is bounded: the connect by ClamdTimeouts::connect_s (non-blocking connect + poll),
// each send and the wait for the verdict by io_s. Sends use MSG_NOSIGNAL, so a clamd that closes
// the connection is an error value, never a SIGPIPE. Failures that mean "clamd cannot take it now"
// (refused, closed, timed out) are ErrorCode::kBusy so that the caller answers "retry later".
//
// Protocol (clamd(8)): "zINSTREAM\0", then chunks each prefixed with its length as 4 bytes big
// endian, then a chunk of length 0; clamd answers "stream: OK\0", "stream: <Signature> FOUND\0" or
// "<message> ERROR\0". Past its StreamMaxLength clamd answers "INSTREAM size limit exceeded.
// ERROR\0" and closes the connection at once, in the middle of our sends.

#include <cstddef>
#include <string>
#include <string_view>

#include "transfer/file_util.hpp"
#include "transfer/result.hpp"

namespace transfer::receiver {

struct ClamdAddress {
  std::string unix_path;  // set for "unix:/run/clamav/clamd.ctl"
  std::string host;       // set for "host:port" ("[::1]:3310" for IPv6; kept without brackets)
  int port = 0;
  std::string text;  // as configured, for messages
};

// "unix:<absolute path>" or "<host>:<port>"; anything else is kInvalidArgument naming
// CLAMD_ADDRESS.
Result<ClamdAddress> parse_clamd_address(const std::string& text);

struct ClamdTimeouts {
  double connect_s = 5;  // the connect (for a host name: per address getaddrinfo returned)
  double io_s = 60;      // each send making no progress, and the wait for the reply as a whole
};

struct ScanReply {
  enum class Kind { kClean, kFound, kError };
  Kind kind = Kind::kError;
  std::string signature;  // kFound: e.g. "Eicar-Test-Signature.UNOFFICIAL" as clamd names it
  std::string text;       // clamd's reply without "stream: " and the trailing NUL
};

// One zINSTREAM session: connect, send chunks, then the reply. Not thread-safe; one per upload.
// After the first failed send() the session is spent: later calls return the same error.
class ClamdScan {
 public:
  static Result<ClamdScan> open(const ClamdAddress& address, const ClamdTimeouts& timeouts);
  ClamdScan(ClamdScan&&) noexcept;
  ClamdScan& operator=(ClamdScan&&) noexcept;
  ClamdScan(const ClamdScan&) = delete;
  ClamdScan& operator=(const ClamdScan&) = delete;
  ~ClamdScan();

  // Sends `size` bytes as one or more chunks (split so no chunk exceeds 1 MiB). An error is
  // kBusy for "clamd cannot take it now" (closed the connection, timed out, refused), with
  // clamd's own message when it sent one (e.g. "INSTREAM size limit exceeded"). A size of 0
  // sends nothing (a chunk of length 0 would end the stream).
  Status send(const char* data, size_t size);

  // The end of the stream and clamd's verdict. kError replies (size limit, "... ERROR") come back
  // as a ScanReply of Kind::kError, not as an Error; I/O failures and timeouts as Error kBusy.
  // Call once.
  Result<ScanReply> finish();

  // Bytes of data sent so far (without the chunk headers).
  size_t bytes_sent() const { return bytes_sent_; }

 private:
  ClamdScan(std::string address_text, ClamdTimeouts timeouts, UniqueFd fd);
  Error fail(Error error);  // marks the session spent and closes the connection

  std::string address_text_;
  ClamdTimeouts timeouts_;
  UniqueFd fd_;
  size_t bytes_sent_ = 0;
  bool spent_ = false;  // a send failed or finish() ran: the connection is of no further use
  Error failure_{ErrorCode::kBusy, ""};
};

// "PONG" or an error (kBusy when clamd is unreachable, silent or answers something else).
Result<std::string> clamd_ping(const ClamdAddress& address, const ClamdTimeouts& timeouts);
// The version line, e.g. "ClamAV 1.4.6/27472/Sat Nov 28 09:32:20 2026" ("ClamAV 1.4.6" when only
// unofficial databases are loaded).
Result<std::string> clamd_version(const ClamdAddress& address, const ClamdTimeouts& timeouts);

// Parses one reply of clamd ("stream: OK", "stream: X FOUND", "... ERROR"), with or without the
// trailing NUL: pure. Anything that is neither OK nor "<signature> FOUND" is kError.
ScanReply parse_scan_reply(std::string_view reply);

}  // namespace transfer::receiver
