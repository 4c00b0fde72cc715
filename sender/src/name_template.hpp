#pragma once
// Object and file names for destinations that store files under a name of their own (S3, SFTP,
// FTPS): a `name_template` with the placeholders {name} (the upload name: the input's name
// without ".json") and {yyyy}, {mm}, {dd} (the date of the input's modification time, UTC: the
// same for every attempt at one file version, so a retry never makes a second name).
// Default "{name}.xml", or "{name}.xml.fernet" when the destination stores Fernet tokens.
// Checked when the destinations file is read: '/' separates directories; no part may be empty,
// "." or ".."; no leading '/'; no backslash or control character; only the placeholders above,
// and {name} exactly once (two files must never get one name). Pure.

#include <string>
#include <string_view>

#include "transfer/result.hpp"

namespace transfer::sender {

struct CivilDate {
  int year = 1970;
  int month = 1;
  int day = 1;
};
CivilDate utc_date_of(double unix_seconds);

class NameTemplate {
 public:
  // kInvalidArgument with the reason (the caller adds which field of which destination).
  static Result<NameTemplate> parse(std::string_view text);
  static NameTemplate default_for(bool fernet);

  // The name for one file: `name` is a valid upload name (no '/', not "." or "..").
  std::string render(std::string_view name, const CivilDate& date) const;
  const std::string& text() const { return text_; }

 private:
  explicit NameTemplate(std::string text) : text_(std::move(text)) {}
  std::string text_;
};

}  // namespace transfer::sender
