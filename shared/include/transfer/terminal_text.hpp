#pragma once
// Text for a terminal made from names and messages someone else chose (input file names, errors
// that quote them), as the operator commands print it: nothing in it can move the cursor, clear
// the screen, start a line of its own or reorder what follows it on screen.
//   \n \r \t, and \xHH   C0 controls, DEL, and bytes that are not UTF-8 (a raw 0x9b is a CSI on a
//                        terminal that takes 8-bit controls)
//   \uHHHH / \UHHHHHHHH  C1 controls (U+0080..U+009F), format characters (Unicode category Cf:
//                        the bidi controls U+202A..U+202E, U+2066..U+2069, U+200E, U+200F,
//                        U+061C, zero-width characters, U+FEFF) and U+2028/U+2029
// Other characters, printable UTF-8 included, are left as they are. Pure and thread-safe.

#include <string>
#include <string_view>

namespace transfer {

// A name as it is when nothing in it needs escaping and it holds no '"' or '\'; otherwise in
// double quotes, escaped as above and with \" and \\, so it reads as one name whatever it holds:
// "\x1b[2Jx.json", "invoice\u202egpj.json".
std::string terminal_name(std::string_view name);

// A message with the escapes above and no quotes (a backslash stays as it is).
std::string terminal_text(std::string_view text);

}  // namespace transfer
