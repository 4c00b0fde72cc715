#pragma once
// The strict reader of an HTTP/1.x request head (request line + header fields +
// empty line), run by the connection front before a request reaches a worker.
// Pure: bytes in, a parsed head or a refusal out. It refuses what a proxy in
// front could read differently (request smuggling, RFC 9112 §6.3 and §11.2)
// instead of guessing:
//   - lines must end in CRLF (a bare CR or LF is refused); obs-fold (a line
//   starting with a
//     space or tab) is refused;
//   - a header name is a token (RFC 9110 §5.6.2) followed at once by ':' (no
//   whitespace before
//     the colon); a line without a colon is refused; a value holds no control
//     character but HTAB (so no NUL, CR or LF);
//   - Content-Length: digits only, at most one field (a repeated one is refused
//   even when the
//     values agree), and never together with Transfer-Encoding;
//   - Transfer-Encoding: only "chunked", once, and only in HTTP/1.1;
//   - HTTP/1.1 needs exactly one Host; the request target is origin-form
//   ("/...");
//   - the head is bounded in bytes, in header count and in the length of each
//   line.
// Thread-compatible; HeadScanner is one connection's state.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace transfer::http {

struct RequestHeadLimits {
  size_t max_head_bytes = 64 * 1024;  // request line + fields + the empty line (431 beyond)
  size_t max_headers = 100;           // header fields (431 beyond)
  size_t max_line_bytes = 8 * 1024;   // one line: 414 for the request line, 431 for a field
};

// Why a head was refused; the HTTP adapter picks the status (see
// status_for_refusal).
enum class HeadRefusal {
  kMalformed,            // 400
  kFieldsTooLarge,       // 431: too many bytes or fields, or a field line too long
  kUriTooLong,           // 414
  kVersionUnsupported,   // 505
  kEncodingUnsupported,  // 501: a Transfer-Encoding other than chunked
  kExpectationFailed,    // 417: an Expect other than 100-continue
};

struct HeadError {
  HeadRefusal kind = HeadRefusal::kMalformed;
  std::string reason;  // safe to send to the client: says what was wrong, never
                       // echoes bytes
};

int status_for_refusal(HeadRefusal kind);

struct RequestHead {
  std::string method;
  std::string target;  // as sent
  int minor_version = 1;
  std::vector<std::pair<std::string, std::string>> fields;  // names as sent, values trimmed
  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool keep_alive = true;  // what the client asked for (version and Connection)
  bool expect_continue = false;
  size_t head_bytes = 0;  // bytes of the head, from the request line to the empty line

  // The first field of that name (case-insensitive), or nullptr.
  const std::string* field(std::string_view name) const;
  // The path part of the target (before '?'), not decoded.
  std::string_view path() const;
  // Whether a body follows the head (a non-zero length, or chunked).
  bool has_body() const { return chunked || content_length.value_or(0) > 0; }
};

// Finds the end of a head as bytes arrive, refusing early what can never become
// a valid head (an over-long line, a bare LF, too many bytes or fields, a first
// byte that cannot start a method), so a client cannot make the front buffer
// more than the limits.
class HeadScanner {
 public:
  explicit HeadScanner(RequestHeadLimits limits = {}) : limits_(limits) {}
  struct NeedMore {};
  struct Complete {
    size_t start;  // empty lines sent before the request line (ignored) end here
    size_t end;    // the head is buffer[start, end)
  };
  using Outcome = std::variant<NeedMore, Complete, HeadError>;
  // `buffer` holds every byte received for this head so far (those given before
  // plus the new ones at its end). Resumes where the last call stopped.
  Outcome scan(std::string_view buffer);
  // Forget the state, for the next request on the connection.
  void reset() { *this = HeadScanner(limits_); }

 private:
  RequestHeadLimits limits_;
  size_t pos_ = 0;         // bytes examined
  size_t line_start_ = 0;  // where the current line began
  size_t lines_ = 0;       // complete non-empty lines (request line + fields)
  size_t skipped_ = 0;     // leading empty lines' bytes
};

// Parses a complete head (as HeadScanner delimited it: ends with CRLF CRLF).
std::variant<RequestHead, HeadError> parse_request_head(std::string_view head,
                                                        const RequestHeadLimits& limits = {});

}  // namespace transfer::http
