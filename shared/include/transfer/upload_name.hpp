#pragma once
// Upload names: the <name> in POST /upload/<name>, which becomes <name>.xml in the output
// directory. Only names that cannot escape that directory, hide, or confuse a terminal pass.

#include <string>
#include <string_view>

#include "transfer/result.hpp"

namespace transfer {

inline constexpr size_t kMaxUploadNameBytes = 200;

// Ok when `name` (already percent-decoded) is acceptable; otherwise kInvalidName with the reason.
// Refused: empty, "." and "..", a leading dot, '/', '\\', NUL and other control characters
// (C0, DEL, C1), invalid UTF-8, more than 200 bytes; and names that lie about themselves: made
// only of spaces, ending in a dot or a space (Windows and some tools drop those), or holding a
// Unicode format character (general category Cf: bidi controls such as U+202E, zero-width
// characters, U+FEFF, the soft hyphen), an invisible filler (the Hangul fillers U+115F, U+1160,
// U+3164, U+FFA0 and U+2800 BRAILLE PATTERN BLANK: letters or symbols that draw nothing) or the
// line/paragraph separators U+2028/U+2029; and names not in Unicode normalization form NFC
// ("cafe" + U+0301 and "caf" + U+00E9 look the same: only the second passes, so one name has one
// spelling). "Space" is any Unicode space separator (category Zs: U+0020, U+00A0, U+3000, ...).
// The tables come from scripts/gen_upload_name_tables.py (Unicode 14.0.0, Debian 12's Python);
// NFC from utf8proc (Debian 12: 2.8.0, Unicode 15.0.0). Messages name the code points to blame,
// never the whole name.
Status validate_upload_name(std::string_view name);

// The upload name for an input file: its name without the final ".json" (not cut at the first
// dot, as the old sender did: "a.b.json" -> "a.b").
std::string upload_name_for_file(std::string_view file_name);

}  // namespace transfer
