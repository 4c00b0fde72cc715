#include "transfer/multipart.hpp"

#include <algorithm>
#include <cctype>

namespace transfer {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Splits `value` at ';' (outside quotes) into a leading token and key=value parameters, values
// unquoted (RFC 7230 quoted-string with backslash escapes). Keys are lowercased.
std::pair<std::string, std::map<std::string, std::string>> parse_params(std::string_view value) {
  std::map<std::string, std::string> params;
  size_t i = value.find(';');
  std::string head = lower(trim(value.substr(0, i)));
  while (i != std::string_view::npos && i < value.size()) {
    ++i;  // past ';'
    while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) ++i;
    const size_t eq = value.find('=', i);
    const size_t semi = value.find(';', i);
    if (eq == std::string_view::npos || (semi != std::string_view::npos && semi < eq)) {
      i = semi;
      continue;
    }
    std::string key = lower(trim(value.substr(i, eq - i)));
    i = eq + 1;
    while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) ++i;
    std::string val;
    if (i < value.size() && value[i] == '"') {
      ++i;
      while (i < value.size() && value[i] != '"') {
        if (value[i] == '\\' && i + 1 < value.size()) ++i;
        val += value[i++];
      }
      i = value.find(';', i);
    } else {
      const size_t end = value.find(';', i);
      val = std::string(trim(value.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i)));
      i = end;
    }
    params.emplace(std::move(key), std::move(val));
  }
  return {std::move(head), std::move(params)};
}

}  // namespace

std::optional<std::string> multipart_boundary(std::string_view content_type) {
  auto [type, params] = parse_params(content_type);
  if (type != "multipart/form-data") return std::nullopt;
  auto it = params.find("boundary");
  if (it == params.end() || it->second.empty() || it->second.size() > 70) return std::nullopt;
  for (const char c : it->second) {
    if (c < 0x20 || c > 0x7E) return std::nullopt;
  }
  return it->second;
}

MultipartParser::MultipartParser(std::string boundary, Handler handler, size_t max_header_bytes)
    : dash_boundary_("--" + boundary),
      delimiter_("\r\n--" + boundary),
      handler_(std::move(handler)),
      max_header_bytes_(max_header_bytes) {
  buf_ = "\r\n";  // so that a boundary at the very start is found as a delimiter
}

Status MultipartParser::fail(std::string why) {
  state_ = State::kFailed;
  return make_error(ErrorCode::kMalformedRequest, "malformed multipart body: " + std::move(why));
}

Status MultipartParser::feed(const char* data, size_t size) {
  if (state_ == State::kFailed) return make_error(ErrorCode::kMalformedRequest, "malformed multipart body");
  buf_.append(data, size);
  return process();
}

Status MultipartParser::process() {
  for (;;) {
    switch (state_) {
      case State::kPreamble: {
        // The rule must not depend on how the body is chunked: the opening delimiter has to
        // start within max_header_bytes of the body. Only a tail that could still begin the
        // delimiter is kept; the rest is counted and dropped.
        const size_t at = buf_.find(delimiter_);
        if (at == std::string::npos) {
          if (buf_.size() >= delimiter_.size()) {
            const size_t drop = buf_.size() - (delimiter_.size() - 1);
            preamble_bytes_ += drop;
            buf_.erase(0, drop);
          }
          if (preamble_bytes_ > max_header_bytes_) return fail("no opening boundary");
          return ok_status();
        }
        if (preamble_bytes_ + at > max_header_bytes_) return fail("no opening boundary");
        buf_.erase(0, at + delimiter_.size());
        state_ = State::kAfterBoundary;
        break;
      }
      case State::kAfterBoundary: {
        if (buf_.size() < 2) return ok_status();
        if (buf_.compare(0, 2, "--") == 0) {
          buf_.erase(0, 2);
          state_ = State::kEpilogue;
          break;
        }
        // Transport padding (spaces, tabs) may precede the CRLF.
        size_t i = 0;
        while (i < buf_.size() && (buf_[i] == ' ' || buf_[i] == '\t')) ++i;
        if (i + 2 > buf_.size()) {
          if (buf_.size() > 256) return fail("junk after a boundary");
          return ok_status();
        }
        if (buf_.compare(i, 2, "\r\n") != 0) return fail("junk after a boundary");
        buf_.erase(0, i + 2);
        state_ = State::kHeaders;
        break;
      }
      case State::kHeaders: {
        size_t end = std::string::npos;
        size_t skip = 0;
        if (buf_.compare(0, 2, "\r\n") == 0) {
          end = 0;
          skip = 2;
        } else if (const size_t p = buf_.find("\r\n\r\n"); p != std::string::npos) {
          end = p;
          skip = 4;
        }
        if (end == std::string::npos || end > max_header_bytes_) {
          if (buf_.size() > max_header_bytes_) return fail("part headers too large");
          return ok_status();
        }
        auto st = parse_headers(std::string_view(buf_).substr(0, end));
        if (!st) return st;
        buf_.erase(0, end + skip);
        in_part_ = true;
        state_ = State::kData;
        break;
      }
      case State::kData: {
        size_t at = buf_.find(delimiter_);
        // A delimiter counts only when "--" or (optional whitespace and) CRLF follows it
        // (RFC 2046); "\r\n--BOUNDARYX" inside the data is data.
        while (at != std::string::npos) {
          const size_t after = at + delimiter_.size();
          if (buf_.size() < after + 2) break;  // cannot tell yet: wait for more
          const char c = buf_[after];
          if (buf_.compare(after, 2, "--") == 0 || c == '\r' || c == ' ' || c == '\t') break;
          at = buf_.find(delimiter_, at + 1);
        }
        if (at != std::string::npos && buf_.size() < at + delimiter_.size() + 2) {
          return emit_data(at);  // what precedes the undecided delimiter; keep the rest
        }
        if (at == std::string::npos) {
          // Everything but a possible partial delimiter at the end is part data.
          const size_t keep = std::min(buf_.size(), delimiter_.size() - 1);
          return emit_data(buf_.size() - keep);
        }
        if (auto st = emit_data(at); !st) return st;
        in_part_ = false;
        if (auto st = handler_.on_part_end(); !st) {
          state_ = State::kFailed;
          return st;
        }
        buf_.erase(0, delimiter_.size());
        state_ = State::kAfterBoundary;
        break;
      }
      case State::kEpilogue: {
        // Only an optional CRLF may follow the closing boundary.
        if (buf_.empty()) return ok_status();
        if (buf_ == "\r") return ok_status();
        if (buf_ == "\r\n") return ok_status();
        return fail("data after the closing boundary");
      }
      case State::kFailed:
        return make_error(ErrorCode::kMalformedRequest, "malformed multipart body");
    }
  }
}

// Hands the first `size` buffered bytes to the part-data handler and drops them.
Status MultipartParser::emit_data(size_t size) {
  if (size == 0) return ok_status();
  auto st = handler_.on_part_data(buf_.data(), size);
  if (!st) {
    state_ = State::kFailed;
    return st;
  }
  buf_.erase(0, size);
  return ok_status();
}

Status MultipartParser::parse_headers(std::string_view block) {
  MultipartPart part;
  bool has_disposition = false;
  while (!block.empty()) {
    const size_t eol = block.find("\r\n");
    std::string_view line = block.substr(0, eol);
    block = eol == std::string_view::npos ? std::string_view{} : block.substr(eol + 2);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return fail("part header line without ':'");
    const std::string name = lower(trim(line.substr(0, colon)));
    const std::string_view value = trim(line.substr(colon + 1));
    if (name == "content-disposition") {
      auto [type, params] = parse_params(value);
      if (type != "form-data") return fail("part is not form-data");
      auto n = params.find("name");
      if (n == params.end()) return fail("part has no name");
      part.name = n->second;
      if (auto f = params.find("filename"); f != params.end()) part.filename = f->second;
      has_disposition = true;
    } else if (name == "content-type") {
      part.content_type = std::string(value);
    }
  }
  if (!has_disposition) return fail("part without Content-Disposition");
  auto st = handler_.on_part_begin(part);
  if (!st) state_ = State::kFailed;
  return st;
}

Status MultipartParser::finish() {
  if (state_ == State::kFailed) return make_error(ErrorCode::kMalformedRequest, "malformed multipart body");
  if (state_ != State::kEpilogue) {
    return fail(in_part_ ? "body ends inside a part (truncated)" : "no closing boundary");
  }
  return ok_status();
}

}  // namespace transfer
