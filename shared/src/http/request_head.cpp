#include "transfer/http/request_head.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace transfer::http {
namespace {

constexpr std::array<bool, 256> make_tchar_table() {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (const char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}
constexpr std::array<bool, 256> kTchar = make_tchar_table();

bool is_tchar(char c) { return kTchar[static_cast<unsigned char>(c)]; }

// A field value's byte: HTAB, visible ASCII, space, or obs-text (RFC 9110
// §5.5).
bool is_value_byte(char ch) {
  const auto c = static_cast<unsigned char>(ch);
  return c == '\t' || (c >= 0x20 && c != 0x7F);
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim_ows(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

HeadError refuse(HeadRefusal kind, std::string reason) {
  return HeadError{kind, std::move(reason)};
}
HeadError malformed(std::string reason) {
  return refuse(HeadRefusal::kMalformed, std::move(reason));
}

// Fields the receiver acts on: each may appear once, so no two readers can pick
// different ones.
constexpr std::array<std::string_view, 11> kSingletons = {"Host",
                                                          "Content-Length",
                                                          "Transfer-Encoding",
                                                          "Content-Type",
                                                          "Content-Encoding",
                                                          "Expect",
                                                          "Idempotency-Key",
                                                          "X-Transfer-Plaintext-SHA256",
                                                          "X-Transfer-Id",
                                                          "X-Transfer-Signature",
                                                          "Connection"};

// Each comma-separated token of a Connection value.
template <typename Fn>
void for_each_token(std::string_view v, Fn fn) {
  while (!v.empty()) {
    const size_t comma = v.find(',');
    fn(trim_ows(v.substr(0, comma)));
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
}

}  // namespace

int status_for_refusal(HeadRefusal kind) {
  switch (kind) {
    case HeadRefusal::kMalformed:
      return 400;
    case HeadRefusal::kFieldsTooLarge:
      return 431;
    case HeadRefusal::kUriTooLong:
      return 414;
    case HeadRefusal::kVersionUnsupported:
      return 505;
    case HeadRefusal::kEncodingUnsupported:
      return 501;
    case HeadRefusal::kExpectationFailed:
      return 417;
  }
  return 400;
}

const std::string* RequestHead::field(std::string_view name) const {
  for (const auto& [k, v] : fields) {
    if (iequals(k, name)) return &v;
  }
  return nullptr;
}

std::string_view RequestHead::path() const {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

HeadScanner::Outcome HeadScanner::scan(std::string_view buffer) {
  for (; pos_ < buffer.size(); ++pos_) {
    const char c = buffer[pos_];
    if (pos_ + 1 > limits_.max_head_bytes) {
      return refuse(
          HeadRefusal::kFieldsTooLarge,
          "the request head is over " + std::to_string(limits_.max_head_bytes) + " bytes");
    }
    const bool after_cr = pos_ > line_start_ && buffer[pos_ - 1] == '\r';
    if (c == '\n') {
      if (!after_cr)
        return malformed("a line of the request head ends in a bare LF (CRLF is required)");
      const size_t content = pos_ - 1 - line_start_;
      line_start_ = pos_ + 1;
      if (content == 0) {
        if (lines_ == 0) {  // an empty line before the request line is ignored
                            // (RFC 9112 §2.2)
          skipped_ += 2;
          continue;
        }
        ++pos_;
        return Complete{skipped_, pos_};
      }
      if (++lines_ > limits_.max_headers + 1) {
        return refuse(
            HeadRefusal::kFieldsTooLarge,
            "the request has more than " + std::to_string(limits_.max_headers) + " header fields");
      }
      continue;
    }
    if (after_cr) return malformed("a bare CR in the request head (CRLF is required)");
    if (lines_ == 0 && pos_ == line_start_ && c != '\r' && !is_tchar(c)) {
      return malformed("the request line does not start with a method");
    }
    if (pos_ - line_start_ > limits_.max_line_bytes) {  // max_line_bytes of content, then CR
      if (lines_ == 0) {
        return refuse(
            HeadRefusal::kUriTooLong,
            "the request line is over " + std::to_string(limits_.max_line_bytes) + " bytes");
      }
      return refuse(HeadRefusal::kFieldsTooLarge,
                    "a header field is over " + std::to_string(limits_.max_line_bytes) + " bytes");
    }
  }
  return NeedMore{};
}

std::variant<RequestHead, HeadError> parse_request_head(std::string_view head,
                                                        const RequestHeadLimits& limits) {
  RequestHead h;
  while (head.size() >= 2 && head.substr(0, 2) == "\r\n") head.remove_prefix(2);
  h.head_bytes = head.size();
  if (head.size() < 4 || head.substr(head.size() - 4) != "\r\n\r\n") {
    return malformed("the request head does not end with an empty line");
  }
  head.remove_suffix(2);  // every line, the last one included, now ends in CRLF
  if (head.size() > limits.max_head_bytes) {
    return refuse(HeadRefusal::kFieldsTooLarge,
                  "the request head is over " + std::to_string(limits.max_head_bytes) + " bytes");
  }
  auto next_line = [&head]() -> std::optional<std::string_view> {
    const size_t end = head.find("\r\n");
    if (end == std::string_view::npos) return std::nullopt;
    std::string_view line = head.substr(0, end);
    head.remove_prefix(end + 2);
    return line;
  };

  // Request line: method SP request-target SP HTTP-version.
  const auto request_line = next_line();
  if (!request_line) return malformed("no request line");
  std::string_view line = *request_line;
  if (line.size() > limits.max_line_bytes) {
    return refuse(HeadRefusal::kUriTooLong,
                  "the request line is over " + std::to_string(limits.max_line_bytes) + " bytes");
  }
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return malformed(
        "the request line must be: method, one space, target, one "
        "space, HTTP version");
  }
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (method.empty() || !std::all_of(method.begin(), method.end(), is_tchar)) {
    return malformed("the method is not a token");
  }
  if (target.empty() || target.front() != '/')
    return malformed("the request target must start with '/'");
  if (!std::all_of(target.begin(), target.end(), [](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        return c > 0x20 && c < 0x7F;
      })) {
    return malformed(
        "the request target holds a byte outside visible ASCII "
        "(percent-encode it)");
  }
  if (target.find('#') != std::string_view::npos)
    return malformed("the request target holds a fragment ('#')");
  if (version == "HTTP/1.1") {
    h.minor_version = 1;
  } else if (version == "HTTP/1.0") {
    h.minor_version = 0;
  } else if (version.size() == 8 && version.substr(0, 5) == "HTTP/" &&
             std::isdigit(static_cast<unsigned char>(version[5])) && version[6] == '.' &&
             std::isdigit(static_cast<unsigned char>(version[7]))) {
    return refuse(HeadRefusal::kVersionUnsupported, "only HTTP/1.0 and HTTP/1.1 are served");
  } else {
    return malformed("the request line does not end in an HTTP version");
  }
  h.method = method;
  h.target = target;

  // Header fields: name ":" OWS value OWS.
  while (auto field_line = next_line()) {
    line = *field_line;
    if (line.front() == ' ' || line.front() == '\t') {
      return malformed("a header line starts with whitespace (obs-fold is not accepted)");
    }
    if (line.size() > limits.max_line_bytes) {
      return refuse(HeadRefusal::kFieldsTooLarge,
                    "a header field is over " + std::to_string(limits.max_line_bytes) + " bytes");
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return malformed("a header line has no colon");
    const std::string_view name = line.substr(0, colon);
    if (name.empty()) return malformed("a header line has no field name");
    if (name.back() == ' ' || name.back() == '\t')
      return malformed("whitespace between a field name and its colon");
    if (!std::all_of(name.begin(), name.end(), is_tchar))
      return malformed("a header field name is not a token");
    const std::string_view value = trim_ows(line.substr(colon + 1));
    if (!std::all_of(value.begin(), value.end(), is_value_byte)) {
      return malformed("the value of " + std::string(name) + " holds a control character");
    }
    if (h.fields.size() == limits.max_headers) {
      return refuse(
          HeadRefusal::kFieldsTooLarge,
          "the request has more than " + std::to_string(limits.max_headers) + " header fields");
    }
    h.fields.emplace_back(name, value);
  }

  for (const std::string_view single : kSingletons) {
    const auto n = std::count_if(h.fields.begin(), h.fields.end(),
                                 [&](const auto& f) { return iequals(f.first, single); });
    if (n > 1) return malformed(std::string(single) + " is sent more than once");
  }
  if (h.minor_version == 1 && !h.field("Host")) return malformed("HTTP/1.1 requires a Host field");

  const std::string* length = h.field("Content-Length");
  const std::string* encoding = h.field("Transfer-Encoding");
  if (length && encoding) return malformed("Content-Length and Transfer-Encoding together");
  if (length) {
    if (length->empty() || length->size() > 19 ||
        length->find_first_not_of("0123456789") != std::string::npos) {
      return malformed("Content-Length must be a decimal number");
    }
    h.content_length = std::stoull(*length);
  }
  if (encoding) {
    if (h.minor_version == 0) return malformed("Transfer-Encoding in an HTTP/1.0 request");
    if (!iequals(*encoding, "chunked")) {
      return refuse(HeadRefusal::kEncodingUnsupported,
                    "only Transfer-Encoding: chunked is understood");
    }
    h.chunked = true;
  }
  h.keep_alive = h.minor_version == 1;
  if (const std::string* connection = h.field("Connection")) {
    bool close = false, keep_alive = false;
    for_each_token(*connection, [&](std::string_view token) {
      close = close || iequals(token, "close");
      keep_alive = keep_alive || iequals(token, "keep-alive");
    });
    h.keep_alive = !close && (h.minor_version == 1 || keep_alive);
  }
  if (const std::string* expect = h.field("Expect")) {
    if (!iequals(*expect, "100-continue")) {
      return refuse(HeadRefusal::kExpectationFailed, "only Expect: 100-continue is understood");
    }
    h.expect_continue = true;
  }
  return h;
}

}  // namespace transfer::http
