#pragma once
// The request target of an origin-form request ("/path?query"), taken apart once: the path and
// the query split at the first '?', each percent-decoded by the same strict rules (a '%' must be
// followed by two hexadecimal digits; "%00" and every other byte are decoded as they are, and
// what a decoded byte may be is the caller's rule, e.g. the upload name rules). Pure.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "transfer/result.hpp"

namespace transfer::http {

// `text` with every %XX replaced by its byte (and '+' by a space when `plus_is_space`, as in a
// query); kMalformedRequest when a '%' is not followed by two hex digits.
Result<std::string> percent_decode(std::string_view text, bool plus_is_space = false);

struct RequestTarget {
  std::string_view raw_path;   // up to the first '?', as sent
  std::string_view raw_query;  // after the first '?' (empty when there is none)
  bool has_query = false;
};
RequestTarget split_target(std::string_view target);

// "a=1&b=&c" -> {("a","1"), ("b",""), ("c","")}, each name and value percent-decoded (with '+'
// as a space); empty pieces ("a=1&&b=2") are skipped. kMalformedRequest on a bad escape.
Result<std::vector<std::pair<std::string, std::string>>> parse_query(std::string_view query);

}  // namespace transfer::http
