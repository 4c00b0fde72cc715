// XmlConstructLimiter: each construct at its limit passes and one byte over is refused, a start
// tag's attributes at the limit pass and one more is refused, markup inside quotes, comments,
// CDATA sections, PIs and the DOCTYPE does not lead it astray, and whatever the chunking the
// verdict is the same.
#include "xml_construct_limits.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace transfer::receiver {
namespace {

namespace fs = std::filesystem;
using Kind = XmlLimitBreach::Kind;

struct Outcome {
  std::optional<Kind> kind;
  std::string message;
  std::vector<size_t> tags;  // the attributes counted in each start tag read whole
  bool operator==(const Outcome&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
  os << (o.kind ? "refused (" + std::to_string(static_cast<int>(*o.kind)) + "): " + o.message
                : std::string("passed"))
     << ", tags:";
  for (size_t n : o.tags) os << ' ' << n;
  return os;
}

// Feeds `doc` cut at `cuts` (increasing offsets).
Outcome scan(const std::string& doc, const XmlConstructLimits& limits,
             const std::vector<size_t>& cuts) {
  XmlConstructLimiter limiter(limits);
  Outcome out;
  limiter.observe_start_tags([&out](size_t n) { out.tags.push_back(n); });
  size_t at = 0;
  bool more = true;
  for (size_t cut : cuts) {
    if (more) more = limiter.update(doc.data() + at, cut - at);
    at = cut;
  }
  if (more) more = limiter.update(doc.data() + at, doc.size() - at);
  EXPECT_EQ(more, !limiter.breach().has_value());
  if (limiter.breach()) {
    out.kind = limiter.breach()->kind;
    out.message = limiter.breach()->message;
  }
  return out;
}

// The outcome of `doc` read whole, after checking that it is the same cut at every single offset
// and in pieces of 1, 2, 3, 5 and 64 bytes.
Outcome scan_every_way(const std::string& doc, const XmlConstructLimits& limits) {
  const Outcome whole = scan(doc, limits, {});
  for (size_t cut = 1; cut < doc.size(); ++cut) {
    EXPECT_EQ(scan(doc, limits, {cut}), whole) << doc << "\ncut at " << cut;
  }
  for (size_t piece : {1, 2, 3, 5, 64}) {
    std::vector<size_t> cuts;
    for (size_t at = piece; at < doc.size(); at += piece) cuts.push_back(at);
    EXPECT_EQ(scan(doc, limits, cuts), whole) << doc << "\nin pieces of " << piece;
  }
  return whole;
}

std::string fill(size_t n, char c = 'x') { return std::string(n, c); }

TEST(XmlConstructLimiterTest, EachConstructAtTheLimitPassesAndOneByteOverIsRefused) {
  constexpr size_t kLimit = 64;
  XmlConstructLimits limits;
  limits.max_construct_bytes = kLimit;
  struct Case {
    std::string name;
    std::string before;
    std::string open;  // the construct is open + filler + close, filled to a given size
    std::string close;
    std::string after;
    std::string message;  // in the refusal one byte over
  };
  const Case cases[] = {
      {"comment", "<a>", "<!--", "-->", "</a>", "a comment of over 64 bytes at line 1"},
      {"comment with dashes", "<a>", "<!--", "- -->", "</a>", "a comment"},
      {"PI", "<a>", "<?pi ", "?>", "</a>", "a processing instruction of over 64 bytes"},
      {"PI before the root", "", "<?pi ", "?>", "<a/>", "a processing instruction"},
      {"attribute value", "", "<a v=\"", "\"/>", "", "a start tag <a> of over 64 bytes"},
      {"attribute value in ''", "", "<a v='", "'>", "</a>", "a start tag <a> of over 64"},
      {"element name", "", "<a", "/>", "", "a start tag <axxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...>"},
      {"end tag", "<a>", "</a", ">", "", "an end tag of over 64 bytes"},
      {"CDATA section", "<a>", "<![CDATA[", "]]>", "</a>", "a CDATA section of over 64 bytes"},
      {"CDATA section ending in ]]]", "<a>", "<![CDATA[", "]]]>", "</a>", "a CDATA section"},
      {"character reference", "<a>", "&#", "65;", "</a>", "an entity or character reference"},
      {"DOCTYPE", "", "<!DOCTYPE a [<!ELEMENT a ANY><!--", "-->]>", "<a/>",
       "a DOCTYPE declaration (its internal subset included) of over 64 bytes"},
      {"DOCTYPE without a subset", "", "<!DOCTYPE a", ">", "<a/>", "a DOCTYPE declaration"},
  };
  for (const auto& c : cases) {
    const size_t fixed = c.open.size() + c.close.size();
    // The end tag's filler must be spaces; the reference's digits; the name's name characters.
    const char filler = c.name == "end tag" ? ' ' : c.name == "character reference" ? '0' : 'x';
    const std::string at_limit =
        c.before + c.open + fill(kLimit - fixed, filler) + c.close + c.after;
    const std::string over =
        c.before + c.open + fill(kLimit - fixed + 1, filler) + c.close + c.after;
    const Outcome pass = scan_every_way(at_limit, limits);
    EXPECT_FALSE(pass.kind) << c.name << ": " << pass;
    const Outcome refused = scan_every_way(over, limits);
    EXPECT_EQ(refused.kind, Kind::kConstruct) << c.name << ": " << refused;
    EXPECT_NE(refused.message.find(c.message), std::string::npos) << c.name << ": " << refused;
  }
}

TEST(XmlConstructLimiterTest, TextInOneElementIsLimitedOnlyWhenAsked) {
  XmlConstructLimits limits;
  limits.max_text_bytes = 20;
  // Text counts its character data, references and CDATA sections' content; comments and PIs
  // neither count nor end the run; a tag ends it.
  const std::string mixed = "xx<![CDATA[yy]]>&amp;<!--cc--><?p q?>zz";  // 2 + 2 + 5 + 2 = 11
  struct Case {
    std::string doc;
    bool refused;
  };
  const Case cases[] = {
      {"<a>" + fill(20) + "</a>", false},
      {"<a>" + fill(21) + "</a>", true},
      {"<a>" + mixed + fill(9) + "</a>", false},
      {"<a>" + mixed + fill(10) + "</a>", true},
      {"<a>" + fill(15) + "<![CDATA[" + fill(5, ']') + "]]>" + "</a>", false},
      {"<a>" + fill(15) + "<![CDATA[" + fill(6, ']') + "]]>" + "</a>", true},
      {"<a>" + fill(20) + "<b/>" + fill(20) + "</a>" + fill(20), false},
      {"<a>" + fill(10) + "<!--" + fill(100) + "-->" + fill(11) + "</a>", true},
  };
  for (const auto& c : cases) {
    const Outcome o = scan_every_way(c.doc, limits);
    EXPECT_EQ(o.kind.has_value(), c.refused) << c.doc << ": " << o;
    if (c.refused) {
      EXPECT_EQ(o.kind, Kind::kText) << c.doc;
      EXPECT_NE(o.message.find("text of over 20 bytes in one element at line 1"), std::string::npos)
          << o;
    }
    EXPECT_FALSE(scan_every_way(c.doc, XmlConstructLimits{}).kind) << c.doc << ": no text limit";
  }
}

TEST(XmlConstructLimiterTest, AttributesAtTheLimitPassAndOneMoreIsRefused) {
  XmlConstructLimits limits;
  limits.max_attributes = 3;
  auto tag = [](size_t n, const std::string& end) {
    std::string s = "<a";
    for (size_t i = 0; i < n; ++i) s += " b" + std::to_string(i) + "=\"\"";
    return s + end;
  };
  struct Case {
    std::string doc;
    std::vector<size_t> tags;  // empty: refused
  };
  const Case cases[] = {
      {tag(3, "/>"), {3}},
      {tag(4, "/>"), {}},
      {tag(3, "></a>"), {3}},
      {tag(4, "></a>"), {}},
      {"<r>" + tag(2, "/>") + tag(3, "/>") + "</r>", {0, 2, 3}},
      {"<r>" + tag(2, "/>") + tag(4, "/>") + "</r>", {}},
      // Namespace declarations count as attributes.
      {"<p:a xmlns='u' xmlns:p='v' p:b=''/>", {3}},
      {"<p:a xmlns='u' xmlns:p='v' p:b='' c=''/>", {}},
      // Whitespace of every kind, and around '='.
      {"<a\n b\t=\r\n'1'  c = \"2\"\n/>", {2}},
      // A DTD's attribute defaults count towards every start tag: two values declared here.
      {"<!DOCTYPE a [<!ATTLIST a x CDATA \"1\" y CDATA #IMPLIED z (p|q) 'p'>]><a b=''/>", {3}},
      {"<!DOCTYPE a [<!ATTLIST a x CDATA \"1\" z (p|q) 'p'>]><a b='' c=''/>", {}},
      {"<!DOCTYPE a [<!ATTLIST b x CDATA '1' y CDATA '2' z CDATA '3' w CDATA '4'>]><a/>", {}},
      // Quoted strings elsewhere in the subset are not defaults.
      {"<!DOCTYPE a [<!ENTITY e 'x'><!NOTATION n SYSTEM 's'><?p 'q'?><!--'-->]><a b='' c=''/>",
       {2}},
  };
  for (const auto& c : cases) {
    const Outcome o = scan_every_way(c.doc, limits);
    if (c.tags.empty()) {
      EXPECT_EQ(o.kind, Kind::kAttributes) << c.doc << ": " << o;
      EXPECT_NE(o.message.find("holding more than 3 attributes and namespace declarations at line"),
                std::string::npos)
          << o;
    } else {
      EXPECT_FALSE(o.kind) << c.doc << ": " << o;
      EXPECT_EQ(o.tags, c.tags) << c.doc << ": " << o;
    }
  }
}

TEST(XmlConstructLimiterTest, MarkupInsideQuotesCommentsCdataPisAndDoctypeIsNotMarkup) {
  // Each would make a scan that tracks less than XML's lexical states count start tags or
  // attributes that are not there, or miss ones that are.
  XmlConstructLimits limits;
  limits.max_attributes = 3;
  struct Case {
    std::string doc;
    std::vector<size_t> tags;
  };
  const Case cases[] = {
      {"<a x=\">\" y='>' z=\"'\"><b c='\"'/></a>", {3, 1}},
      {"<a x='<b c=\"\" d=\"\" e=\"\" f=\"\">'/>", {1}},
      {"<a><!-- <b c='' d='' e='' f=''> - > -- > --></a>", {0}},
      {"<a><!----><!-- <b/> ---></a>", {0}},
      {"<a><![CDATA[<b c='' d='' e='' f=''> ]] ]> ]]]></a>", {0}},
      {"<a><![CDATA[]]><b c=''/></a>", {0, 1}},
      {"<?pi <b c='' d='' e='' f=''> ? > ?><a/>", {0}},
      {"<a><?pi ?? <b/> ?"
       "?></a>",
       {0}},
      {"<a>&lt;b c='' d='' e='' f=''&gt;</a>", {0}},
      {"<!DOCTYPE a [<!-- ]> <b c='' d='' e='' f=''> --><?p ]> <b/> ?>"
       "<!ATTLIST a q CDATA \"]>'\">]><a/>",
       {1}},
      {"<!DOCTYPE a SYSTEM \"x]>[\" [<!ELEMENT a ANY>]><a b=''/>", {1}},
      {"<!DOCTYPE a PUBLIC '-//x>' 'y>'><a/>", {0}},
      {"<?xml version='1.0' encoding=\"UTF-8\"?>\n<!-- c -->\n<a\n/>\n<!-- d -->\n", {0}},
  };
  for (const auto& c : cases) {
    const Outcome o = scan_every_way(c.doc, limits);
    EXPECT_FALSE(o.kind) << c.doc << ": " << o;
    EXPECT_EQ(o.tags, c.tags) << c.doc << ": " << o;
  }
}

TEST(XmlConstructLimiterTest, OnlyEncodingsWhoseAsciiBytesAreAsciiAreAccepted) {
  struct Case {
    std::string doc;
    std::string refused;  // empty: accepted
  };
  const Case cases[] = {
      {"<a/>", ""},
      {"\xef\xbb\xbf<a/>", ""},
      {"<?xml version='1.0' encoding='UTF-8'?><a/>", ""},
      {"\xef\xbb\xbf<?xml version='1.0' encoding='iso-8859-1' ?><a/>", ""},
      {"<?xml version=\"1.0\" encoding=\"windows-1252\" standalone='yes'?><a/>", ""},
      {"<?xml version='1.0' encoding='US-ASCII'?><a/>", ""},
      {"<?xml version='1.0'?><a/>", ""},
      {"<?xml-stylesheet href='x' encoding='Shift_JIS'?><a/>", ""},  // not the declaration
      {std::string("\xfe\xff\0<\0a\0/\0>", 10), "XML in UTF-16 (a byte order mark)"},
      {std::string("\xff\xfe<\0a\0/\0>\0", 10), "XML in UTF-16 (a byte order mark)"},
      {std::string("<\0?\0x\0m\0l\0", 10), "XML in UTF-16"},
      {std::string("\0<\0?\0x\0m\0l", 10), "XML in UTF-16"},
      {std::string("\0\0\0<\0\0\0a", 8), "XML in UCS-4"},
      {"\x4c\x6f\xa7\x94", "XML in EBCDIC"},
      {"<?xml version='1.0' encoding='Shift_JIS'?><a/>", "XML declaring encoding 'Shift_JIS'"},
      {"<?xml version='1.0' encoding='UTF-16'?><a/>", "XML declaring encoding 'UTF-16'"},
      {"<?xml version='1.0' encoding = \"ISO-2022-JP\" ?><a/>", "encoding 'ISO-2022-JP'"},
      {"<?xml version='1.0' encoding='ISO-8859-12'?><a/>", "encoding 'ISO-8859-12'"},
      {"<?xml version='1.0'" + fill(1100, ' ') + "?><a/>", "an XML declaration of over 1024"},
  };
  for (const auto& c : cases) {
    const Outcome o = scan_every_way(c.doc, XmlConstructLimits{});
    if (c.refused.empty()) {
      EXPECT_FALSE(o.kind) << c.doc << ": " << o;
    } else {
      EXPECT_EQ(o.kind, Kind::kEncoding) << c.doc << ": " << o;
      EXPECT_NE(o.message.find(c.refused), std::string::npos) << o;
    }
  }
}

TEST(XmlConstructLimiterTest, MalformedInputStaysCountedAsSomeConstruct) {
  // libxml2 refuses each of these, but only once it holds the construct it is waiting for; the
  // scan must not take the rest for text it does not count.
  XmlConstructLimits limits;
  limits.max_construct_bytes = 100;
  const std::string rest = fill(200, 'x') + ">" + fill(200, 'x');
  const std::string docs[] = {
      "<a>&" + rest,              // a reference libxml2 reads up to ';'
      "<a\"b>" + rest,            // a quote opened in a tag: libxml2 looks for its end
      "<a></a \"" + rest,         // and in an end tag
      "<a><!x" + fill(200, 'x'),  // neither comment, CDATA nor DOCTYPE
      "<!DOCTYPE a [ ]]" + rest,  // a subset not closed
      "<!DOCTYPE a [<!ELEMENT a 'x" + rest,
  };
  for (const auto& doc : docs) {
    const Outcome o = scan_every_way(doc, limits);
    EXPECT_EQ(o.kind, Kind::kConstruct) << doc << ": " << o;
  }
}

TEST(XmlConstructLimiterTest, MessagesQuoteAtMostAShortPrefixOfTheClientsBytes) {
  XmlConstructLimits limits;
  limits.max_attributes = 1;
  const Outcome long_name = scan("<" + fill(100, 'n') + " a='' b=''/>", limits, {});
  EXPECT_NE(long_name.message.find("<" + fill(32, 'n') + "...>"), std::string::npos) << long_name;
  EXPECT_EQ(long_name.message.find(fill(33, 'n')), std::string::npos) << long_name;
  const Outcome odd_name = scan("<a\xc3\xa9\x01 a='' b=''/>", limits, {});
  EXPECT_NE(odd_name.message.find("<a??"
                                  "?>"),
            std::string::npos)
      << odd_name;
  const Outcome encoding =
      scan("<?xml version='1.0' encoding='" + fill(100, 'e') + "'?><a/>", XmlConstructLimits{}, {});
  EXPECT_NE(encoding.message.find("'" + fill(32, 'e') + "'"), std::string::npos) << encoding;
  XmlConstructLimits small;
  small.max_construct_bytes = 64;
  const Outcome value = scan("<item type=\"" + fill(100), small, {});
  EXPECT_EQ(value.message, "a start tag <item> (in an attribute value) of over 64 bytes at line 1")
      << value;
}

TEST(XmlConstructLimiterTest, LinesInMessagesAreWhereTheConstructBegins) {
  XmlConstructLimits limits;
  limits.max_construct_bytes = 10;
  const Outcome o = scan_every_way("<a>\n\n<!--\n\n\n\n\n\n\n\n\n\n--></a>", limits);
  EXPECT_NE(o.message.find("a comment of over 10 bytes at line 3"), std::string::npos) << o;
  // Many lines, of every length, before the construct and in it.
  std::string doc = "<a>";
  for (int i = 0; i < 500; ++i) doc += std::string(static_cast<size_t>(i % 13), 'x') + "\r\n";
  doc += "<!--\n\n\n" + fill(100) + "--></a>";
  limits.max_construct_bytes = 50;
  const Outcome many = scan_every_way(doc, limits);
  EXPECT_NE(many.message.find("a comment of over 50 bytes at line 501"), std::string::npos) << many;
  XmlConstructLimits text;
  text.max_text_bytes = 200;
  const Outcome run = scan_every_way("<a>" + std::string(150, '\n') + fill(51) + "</a>", text);
  EXPECT_NE(run.message.find("text of over 200 bytes in one element at line 151"),
            std::string::npos)
      << run;
}

TEST(XmlConstructLimiterTest, GoldenCorpusPassesTheDefaults) {
  const fs::path expected = fs::path(TRANSFER_TESTDATA) / "json2xml" / "expected";
  int seen = 0;
  for (const auto& e : fs::directory_iterator(expected)) {
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    const std::string doc = text.str();
    const Outcome whole = scan(doc, XmlConstructLimits{}, {});
    EXPECT_FALSE(whole.kind) << e.path() << ": " << whole;
    EXPECT_FALSE(whole.tags.empty()) << e.path();
    for (size_t piece : {1, 7, 4096}) {
      std::vector<size_t> cuts;
      for (size_t at = piece; at < doc.size(); at += piece) cuts.push_back(at);
      EXPECT_EQ(scan(doc, XmlConstructLimits{}, cuts), whole) << e.path() << " by " << piece;
    }
    ++seen;
  }
  EXPECT_GT(seen, 10);
}

TEST(XmlConstructLimiterTest, NothingIsReadAfterTheBreach) {
  XmlConstructLimits limits;
  limits.max_attributes = 0;
  XmlConstructLimiter limiter(limits);
  EXPECT_FALSE(limiter.update("<a b=''/>", 9));
  ASSERT_TRUE(limiter.breach());
  const std::string first = limiter.breach()->message;
  EXPECT_FALSE(limiter.update("<c d=''/>", 9));
  EXPECT_EQ(limiter.breach()->message, first);
  EXPECT_TRUE(XmlConstructLimiter(limits).update("", 0));
}

}  // namespace
}  // namespace transfer::receiver
