#pragma once
// Answers as bytes, the same wherever they are made (the connection front or a worker): a JSON
// body {"msg":..,"status_code":..} as the old Flask receiver's jsonify wrote it (keys sorted,
// compact, newline), and whole HTTP/1.1 responses around a body. Pure.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace transfer::http {

std::string json_message(int status, std::string_view msg);

// "Not Found" for 404, ...; "Error" for a status it does not know.
std::string_view reason_phrase(int status);

// A response before it is framed.
struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra fields, in order
};

// How the connection goes on after a response.
struct ConnectionTerms {
  bool close = false;            // "Connection: close" (and the connection ends after it)
  std::string keep_alive_field;  // e.g. "timeout=30, max=1000": a Keep-Alive field when not closing
  bool head_only = false;        // a HEAD request: the fields of the GET answer, no body
};

// The whole response: status line, Connection/Content-Length/Content-Type, the extra fields,
// the empty line and the body.
std::string render_response(const HttpResponse& response, const ConnectionTerms& terms);

// A JSON error answer that closes the connection; `extra_headers` are whole lines
// ("Name: value\r\n...").
std::string plain_http_answer(int status, std::string_view msg,
                              std::string_view extra_headers = "");

}  // namespace transfer::http
