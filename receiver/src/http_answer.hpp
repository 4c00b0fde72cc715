#pragma once
// The receiver's error answers, the same wherever they are made (the connection
// front or a route): a JSON body {"msg":..,"status_code":..} as the old Flask
// receiver's jsonify wrote it (keys sorted, compact, newline), and, for the
// front, the whole HTTP/1.1 response around it.

#include <string>
#include <string_view>

namespace transfer::receiver {

std::string json_message(int status, std::string_view msg);

// "HTTP/1.1 <status> <reason>" with the JSON body, Content-Type, Content-Length
// and Connection: close; `extra_headers` are whole lines ("Name:
// value\r\n...").
std::string plain_http_answer(int status, std::string_view msg,
                              std::string_view extra_headers = "");

}  // namespace transfer::receiver
