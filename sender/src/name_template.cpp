#include "name_template.hpp"

#include <array>
#include <cstdio>
#include <ctime>

namespace transfer::sender {
namespace {

constexpr std::array<std::string_view, 4> kPlaceholders = {"{name}", "{yyyy}", "{mm}", "{dd}"};

Error bad(std::string why) { return make_error(ErrorCode::kInvalidArgument, std::move(why)); }

}  // namespace

CivilDate utc_date_of(double unix_seconds) {
  const auto t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  return CivilDate{tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday};
}

Result<NameTemplate> NameTemplate::parse(std::string_view text) {
  if (text.empty()) return bad("is empty");
  if (text.size() > 512) return bad("is longer than 512 bytes");
  if (text.front() == '/') return bad("'" + std::string(text) + "' is an absolute path");
  int names = 0;
  std::string literal;  // the template with the placeholders replaced by "x", to check its parts
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (c == '{') {
      bool matched = false;
      for (const auto p : kPlaceholders) {
        if (text.substr(i, p.size()) == p) {
          names += p == "{name}" ? 1 : 0;
          literal += 'x';
          i += p.size();
          matched = true;
          break;
        }
      }
      if (!matched) {
        return bad("'" + std::string(text) +
                   "' has an unknown placeholder (only {name}, {yyyy}, {mm}, {dd})");
      }
      continue;
    }
    if (c == '}') return bad("'" + std::string(text) + "' has a '}' without its '{'");
    if (c == '\\' || static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
      return bad("'" + std::string(text) + "' holds a backslash or a control character");
    }
    literal += c;
    ++i;
  }
  if (names != 1) return bad("'" + std::string(text) + "' must hold {name} exactly once");
  size_t start = 0;
  for (;;) {
    const size_t slash = literal.find('/', start);
    const std::string part =
        literal.substr(start, slash == std::string::npos ? slash : slash - start);
    if (part.empty() || part == "." || part == "..") {
      return bad("'" + std::string(text) + "' has an empty, '.' or '..' part");
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return NameTemplate(std::string(text));
}

NameTemplate NameTemplate::default_for(bool fernet) {
  return NameTemplate(fernet ? "{name}.xml.fernet" : "{name}.xml");
}

std::string NameTemplate::render(std::string_view name, const CivilDate& date) const {
  char yyyy[8], mm[4], dd[4];
  std::snprintf(yyyy, sizeof yyyy, "%04d", date.year);
  std::snprintf(mm, sizeof mm, "%02d", date.month);
  std::snprintf(dd, sizeof dd, "%02d", date.day);
  std::string out;
  const std::string_view t = text_;
  for (size_t i = 0; i < t.size();) {
    if (t[i] == '{') {
      const size_t close = t.find('}', i);
      const std::string_view p = t.substr(i, close - i + 1);
      if (p == "{name}") out += name;
      if (p == "{yyyy}") out += yyyy;
      if (p == "{mm}") out += mm;
      if (p == "{dd}") out += dd;
      i = close + 1;
    } else {
      out += t[i++];
    }
  }
  return out;
}

}  // namespace transfer::sender
