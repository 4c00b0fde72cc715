// Names and messages for a terminal (terminal_text.hpp): nothing in them can clear the screen,
// start a line of its own or reorder the text around it.
#include "transfer/terminal_text.hpp"

#include <gtest/gtest.h>

#include <string>

namespace transfer {
namespace {

using namespace std::string_literals;

TEST(TerminalName, PlainNamesAreLeftAsTheyAre) {
  for (const std::string name : {"a.json", "books 2024.json", "caf\u00e9.json", "\u65e5\u672c.json",
                                 "emoji\U0001F600.json", "a'b.json", ""}) {
    EXPECT_EQ(terminal_name(name), name);
  }
}

TEST(TerminalName, ControlsAndBidiAreEscapedInQuotes) {
  const struct {
    std::string name, shown;
  } cases[] = {
      {"\x1b[2Jx.json", R"("\x1b[2Jx.json")"},              // clear the screen
      {"a\nforged line.json", R"("a\nforged line.json")"},  // a line of its own
      {"a\rb\tc.json", R"("a\rb\tc.json")"},
      {"nul\0.json"s, R"("nul\x00.json")"},
      {"del\x7f.json", R"("del\x7f.json")"},
      {"c1\xc2\x9b.json", R"("c1\u009b.json")"},  // U+009B, a C1 CSI
      {"raw\x9b.json", R"("raw\x9b.json")"},      // a lone 0x9b: not UTF-8
      {"bad\xff\xfe.json", R"("bad\xff\xfe.json")"},
      {"invoice\u202egpj.json", R"("invoice\u202egpj.json")"},      // RIGHT-TO-LEFT OVERRIDE
      {"\u2066iso\u2069.json", R"("\u2066iso\u2069.json")"},        // isolates
      {"\u200e\u200f\u061c.json", R"("\u200e\u200f\u061c.json")"},  // marks
      {"\u202a\u202b\u202c\u202d.json", R"("\u202a\u202b\u202c\u202d.json")"},
      {"\u2067\u2068.json", R"("\u2067\u2068.json")"},
      {"zw\u200bsp.json", R"("zw\u200bsp.json")"},  // zero-width space (Cf)
      {"line\u2028sep.json", R"("line\u2028sep.json")"},
      {"tag\U000E0041.json", R"("tag\U000e0041.json")"},  // a tag character (Cf)
      // Quoted, a name with a quote or a backslash is escaped too: none can pass for another.
      {"\x1b\".json", R"("\x1b\".json")"},
      {R"(a\b.json)", R"("a\\b.json")"},
      {R"("\x1b".json)", R"("\"\\x1b\".json")"},
  };
  for (const auto& c : cases) {
    const std::string shown = terminal_name(c.name);
    EXPECT_EQ(shown, c.shown) << testing::PrintToString(c.name);
    for (const char ch : shown) {
      EXPECT_FALSE(static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f)
          << testing::PrintToString(c.name);
    }
  }
}

TEST(TerminalText, EscapesWithoutQuotes) {
  EXPECT_EQ(terminal_text("x.json: invalid JSON at byte 3: unexpected '}'"),
            "x.json: invalid JSON at byte 3: unexpected '}'");
  EXPECT_EQ(terminal_text("\x1b[2Jx.json: invalid \"JSON\"\n"),
            R"(\x1b[2Jx.json: invalid "JSON"\n)");
  EXPECT_EQ(terminal_text("a\\b \u202e"), R"(a\b \u202e)");
}

}  // namespace
}  // namespace transfer
