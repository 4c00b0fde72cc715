// XmlCheck and SchemaFile against libxml2 itself: what passes, what is refused and why.
#include "xml_check.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace transfer::receiver {
namespace {

namespace fs = std::filesystem;

class XmlCheckTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { init_xml_library(); }
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("xml_check_test." + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }

  // Feeds `text` in pieces of `piece` bytes.
  static CheckVerdict run(const std::string& text, size_t piece = 4096,
                          std::shared_ptr<const XmlSchema> schema = nullptr,
                          XmlLimits limits = {}) {
    XmlCheck check(limits, std::move(schema));
    for (size_t at = 0; at < text.size(); at += piece) {
      if (!check.update(text.data() + at, std::min(piece, text.size() - at))) break;
    }
    return check.finish();
  }

  static std::string nested(size_t depth) {
    std::string s;
    for (size_t i = 0; i < depth; ++i) s += "<e>";
    for (size_t i = 0; i < depth; ++i) s += "</e>";
    return s;
  }

  fs::path dir_;
};

TEST_F(XmlCheckTest, WellFormedDocumentsPassInAnyPieces) {
  const std::string docs[] = {
      "<?xml version=\"1.0\" ?>\n<all>\n\t<a type=\"str\">x &amp; y &#233; \xc3\xa9</a>\n</all>\n",
      "<all/>",
      "<a:b xmlns:a=\"urn:x\"><![CDATA[ <not> markup ]]></a:b>",
      "<p:q>an undeclared prefix is a namespace error, not a well-formedness one</p:q>",
      "<!DOCTYPE all [<!ELEMENT all (#PCDATA)>]><all>an internal DTD without entities</all>",
      "<!-- a comment --><all><?pi data?></all>",
  };
  for (const auto& doc : docs) {
    for (size_t piece : {size_t{1}, size_t{7}, size_t{4096}}) {
      const CheckVerdict v = run(doc, piece);
      EXPECT_TRUE(v.passed()) << doc << " in pieces of " << piece << ": " << v.message;
    }
  }
}

TEST_F(XmlCheckTest, GoldenCorpusPasses) {
  const fs::path expected = fs::path(TRANSFER_TESTDATA) / "json2xml" / "expected";
  int seen = 0;
  for (const auto& e : fs::directory_iterator(expected)) {
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    const CheckVerdict v = run(text.str(), 1000);
    EXPECT_TRUE(v.passed()) << e.path() << ": " << v.message;
    ++seen;
  }
  EXPECT_GT(seen, 10);
}

TEST_F(XmlCheckTest, RefusalsNameTheCheckTheReasonAndThePlace) {
  struct Case {
    std::string text;
    std::string reason;
    std::string message_part;
  };
  const std::string laughs =
      "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n <!ENTITY lol2 "
      "\"&lol;&lol;&lol;\">\n]>\n"
      "<lolz>&lol2;</lolz>";
  const Case cases[] = {
      {"", "not_wellformed", "line 1, column 1: the document is empty"},
      {"hello, not XML", "not_wellformed", "not well-formed XML at line 1, column 1: "},
      {"<all>\n<a>x</b>\n</all>", "not_wellformed", "not well-formed XML at line 2, column"},
      {"<all><a>half a document", "not_wellformed", "not well-formed XML at line 1"},
      {std::string("<all>\0</all>", 12), "not_wellformed", "not well-formed XML at line 1"},
      {"<all>&undeclared;</all>", "not_wellformed", "Entity 'undeclared' not defined"},
      {"<all/><second/>", "not_wellformed", "Extra content at the end of the document"},
      {"\xff\xfe\x00<", "encoding", "XML in UTF-16 (a byte order mark): only UTF-8 and"},
      {laughs, "entity", "XML declaring an entity ('lol') at line 3"},
      {"<!DOCTYPE all SYSTEM \"http://example.com/x.dtd\"><all/>", "external_dtd",
       "http://example.com/x.dtd"},
      {nested(257), "too_deep", "deeper than 256 elements"},
  };
  for (const auto& c : cases) {
    const CheckVerdict v = run(c.text, 3);
    EXPECT_EQ(v.outcome, CheckOutcome::kRefused) << c.text;
    EXPECT_EQ(v.check, "xml") << c.text;
    EXPECT_EQ(v.reason, c.reason) << c.text << ": " << v.message;
    EXPECT_NE(v.message.find(c.message_part), std::string::npos) << c.text << ": " << v.message;
  }
}

TEST_F(XmlCheckTest, MessagesQuoteAtMostAShortPrefixOfTheClientsBytes) {
  const std::string name(5000, 'n');
  const std::string docs[] = {
      "<!DOCTYPE a [<!ENTITY " + name + " 'x'>]><a/>",
      "<!DOCTYPE a SYSTEM 'http://example.com/" + name + "'><a/>",
      "<a><" + name + "></b></a>",  // libxml2's message names both tags
  };
  for (const auto& doc : docs) {
    const CheckVerdict v = run(doc, 4096);
    EXPECT_FALSE(v.passed()) << v.message;
    EXPECT_LT(v.message.size(), 400U) << v.message;
    EXPECT_NE(v.message.find("nnn..."), std::string::npos) << v.message;
  }
}

TEST_F(XmlCheckTest, InputThatCannotBeDecodedIsRefusedWhateverThePieces) {
  // Found by fuzz_content_checks: the first bytes say UCS-4; the next cannot be converted. libxml2
  // halts without marking the document as not well-formed, so it used to pass in pieces of 4.
  // (UCS-4 is now refused from its first four bytes: the construct limits cannot follow it.)
  const std::string text(
      "\0\0\0<l\x92"
      "al\x10><>",
      12);
  for (size_t piece : {size_t{1}, size_t{4}, size_t{100}}) {
    const CheckVerdict v = run(text, piece);
    EXPECT_EQ(v.outcome, CheckOutcome::kRefused) << piece << ": " << v.message;
  }
  // Bytes that are not UTF-8, in a document that says nothing of its encoding.
  for (size_t piece : {size_t{1}, size_t{4}, size_t{100}}) {
    const CheckVerdict v = run("<a>\xff\xfe</a>", piece);
    EXPECT_EQ(v.reason, "not_wellformed") << piece << ": " << v.message;
  }
}

TEST_F(XmlCheckTest, DepthLimitIsInclusiveAndConfigurable) {
  EXPECT_TRUE(run(nested(256)).passed());
  EXPECT_FALSE(run(nested(257)).passed());
  XmlLimits deeper;
  deeper.max_depth = 300;
  EXPECT_TRUE(run(nested(300), 4096, nullptr, deeper).passed());
  EXPECT_FALSE(run(nested(301), 4096, nullptr, deeper).passed());
}

TEST_F(XmlCheckTest, LongTextStreamsWithoutASchemaButOneHugeTagIsRefused) {
  // 30 MB of text in one element: streamed in pieces, no limit without a schema.
  XmlCheck check({}, nullptr);
  const std::string open = "<all><a type=\"str\">";
  ASSERT_TRUE(check.update(open.data(), open.size()));
  const std::string text(1 << 20, 'x');
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(check.update(text.data(), text.size())) << i;
  const std::string close = "</a></all>";
  check.update(close.data(), close.size());
  EXPECT_TRUE(check.finish().passed());

  // One attribute value of 12 MB: libxml2 would hold it all (and stop at 10 MB); refused at
  // XML_MAX_CONSTRUCT, before libxml2 holds more than that.
  XmlCheck tag({}, nullptr);
  const std::string start = "<all a=\"";
  tag.update(start.data(), start.size());
  bool stopped = false;
  int fed = 0;
  for (; fed < 12 && !stopped; ++fed) stopped = !tag.update(text.data(), text.size());
  const CheckVerdict v = tag.finish();
  EXPECT_TRUE(stopped);
  EXPECT_EQ(fed, 1);
  EXPECT_EQ(v.reason, "construct_too_large");
  EXPECT_EQ(v.message,
            "XML with a start tag <all> (in an attribute value) of over 1048576 bytes at line 1 "
            "(XML_MAX_CONSTRUCT; libxml2 holds a construct whole before it reads it)");
}

TEST_F(XmlCheckTest, AttributesPerStartTagAreLimited) {
  auto doc = [](size_t attributes, const std::string& extra = "") {
    std::string s = "<all" + extra;
    for (size_t i = 0; i < attributes; ++i) s += " a" + std::to_string(i) + "=\"" + "v\"";
    return s + "><item type=\"str\" name=\"k\">x</item></all>";
  };
  struct Case {
    std::string text;
    size_t max_attributes;
    bool passes;
  };
  const Case cases[] = {
      {doc(32), 32, true},
      {doc(33), 32, false},
      {doc(30, " xmlns='urn:a' xmlns:p='urn:p'"), 32, true},
      {doc(31, " xmlns='urn:a' xmlns:p='urn:p'"), 32, false},
      {doc(0), 2, true},  // dicttoxml's most: type and name
      {doc(3), 2, false},
      {doc(160000), 32, false},
  };
  for (const auto& c : cases) {
    XmlLimits limits;
    limits.max_attributes = c.max_attributes;
    for (size_t piece : {size_t{1}, size_t{7}, size_t{4096}, c.text.size()}) {
      if (piece == 1 && c.text.size() > 10000) continue;
      const CheckVerdict v = run(c.text, piece, nullptr, limits);
      EXPECT_EQ(v.passed(), c.passes)
          << c.text.substr(0, 80) << " by " << piece << ": " << v.message;
      if (!c.passes) {
        EXPECT_EQ(v.reason, "too_many_attributes") << v.message;
        EXPECT_NE(v.message.find("XML with a start tag <all> holding more than " +
                                 std::to_string(c.max_attributes) +
                                 " attributes and namespace declarations at line 1 "
                                 "(XML_MAX_ATTRIBUTES)"),
                  std::string::npos)
            << v.message;
      }
    }
  }
}

TEST_F(XmlCheckTest, EachConstructIsLimitedToMaxConstructBytes) {
  XmlLimits limits;
  limits.max_construct_bytes = 4096;
  struct Case {
    std::string name;
    std::string open;
    std::string close;
  };
  // Each construct is exactly `size` bytes, inside <all> (the DOCTYPE before it).
  const Case cases[] = {
      {"comment", "<!--", "-->"},
      {"PI", "<?pi ", "?>"},
      {"CDATA section", "<![CDATA[", "]]>"},
      {"attribute value", "<a v=\"", "\"/>"},
      {"DOCTYPE", "<!DOCTYPE all [<!--", "-->]>"},
  };
  for (const auto& c : cases) {
    for (size_t size : {size_t{4096}, size_t{4097}}) {
      const std::string construct =
          c.open + std::string(size - c.open.size() - c.close.size(), 'x') + c.close;
      const std::string text =
          c.name == "DOCTYPE" ? construct + "<all/>" : "<all>" + construct + "</all>";
      for (size_t piece : {size_t{3}, size_t{1000}, text.size()}) {
        const CheckVerdict v = run(text, piece, nullptr, limits);
        EXPECT_EQ(v.passed(), size == 4096) << c.name << " " << size << ": " << v.message;
        if (size > 4096) {
          EXPECT_EQ(v.reason, "construct_too_large") << c.name;
          EXPECT_NE(v.message.find("of over 4096 bytes at line 1 (XML_MAX_CONSTRUCT"),
                    std::string::npos)
              << v.message;
        }
      }
    }
  }
}

TEST_F(XmlCheckTest, WhatLibxml2HoldsUnparsedIsBoundedWhereItsLookAheadIsNotXml) {
  // A quote inside a PI in the internal subset: libxml2's look-ahead for the subset's end takes it
  // for the start of a quoted string and holds everything up to a matching quote. The document is
  // well-formed; the limiter sees nothing over a limit; what libxml2 holds is refused.
  XmlLimits limits;
  limits.max_construct_bytes = 4096;
  XmlCheck check(limits, nullptr);
  const std::string start = "<!DOCTYPE all [<?pi don't?>]><all>";
  ASSERT_TRUE(check.update(start.data(), start.size()));
  const std::string text(1000, 'x');
  bool stopped = false;
  for (int i = 0; i < 100 && !stopped; ++i) stopped = !check.update(text.data(), text.size());
  const CheckVerdict v = check.finish();
  EXPECT_TRUE(stopped);
  EXPECT_EQ(v.reason, "construct_too_large") << v.message;
  EXPECT_NE(v.message.find("XML for which libxml2 holds over"), std::string::npos) << v.message;
}

TEST_F(XmlCheckTest, OnlyEncodingsTheLimitsCanFollowAreAccepted) {
  const std::string utf16("\xff\xfe<\0a\0/\0>\0", 10);
  const CheckVerdict v16 = run(utf16, 3);
  EXPECT_EQ(v16.reason, "encoding") << v16.message;
  const CheckVerdict sjis = run("<?xml version='1.0' encoding='Shift_JIS'?><a/>", 5);
  EXPECT_EQ(sjis.reason, "encoding") << sjis.message;
  EXPECT_NE(sjis.message.find("XML declaring encoding 'Shift_JIS': only UTF-8"), std::string::npos)
      << sjis.message;
  EXPECT_TRUE(run("<?xml version='1.0' encoding='ISO-8859-1'?><a>\xe9t\xe9</a>", 5).passed());
}

TEST_F(XmlCheckTest, NamespaceDeclarationsInScopeAreLimited) {
  // Nested elements each declaring 8 namespaces: in scope, they add up; siblings' do not.
  auto declaring = [](int level) {
    std::string s = "<e";
    for (int k = 0; k < 8; ++k) {
      s += " xmlns:p" + std::to_string(level) + "_" + std::to_string(k) + "='urn:x'";
    }
    return s + ">";
  };
  auto nested = [&](int levels) {
    std::string s;
    for (int i = 0; i < levels; ++i) s += declaring(i);
    for (int i = 0; i < levels; ++i) s += "</e>";
    return s;
  };
  EXPECT_TRUE(run(nested(8)).passed());  // 64
  const CheckVerdict v = run(nested(9));
  EXPECT_EQ(v.reason, "too_many_namespaces") << v.message;
  EXPECT_NE(v.message.find("XML with more than 64 namespace declarations in scope at line 1 "
                           "(XML_MAX_NAMESPACES"),
            std::string::npos)
      << v.message;
  std::string siblings = "<all>";
  for (int i = 0; i < 100; ++i) siblings += declaring(i) + "</e>";
  EXPECT_TRUE(run(siblings + "</all>").passed());
  XmlLimits more;
  more.max_namespaces = 72;
  EXPECT_TRUE(run(nested(9), 4096, nullptr, more).passed());
}

TEST_F(XmlCheckTest, DistinctNamesAreLimitedInNumberAndBytes) {
  auto names = [](size_t n, size_t length) {
    std::string s = "<all>";
    for (size_t i = 0; i < n; ++i) {
      const std::string name = "n" + std::to_string(i);
      s += "<" + name + std::string(length - std::min(length, name.size()), 'x') + "/>";
    }
    return s + "</all>";
  };
  XmlLimits limits;
  limits.max_names = 1000;
  EXPECT_TRUE(run(names(900, 4), 4096, nullptr, limits).passed());
  const CheckVerdict many = run(names(1100, 4), 4096, nullptr, limits);
  EXPECT_EQ(many.reason, "too_many_names") << many.message;
  EXPECT_NE(many.message.find("XML with more than 1000 distinct names at line 1 (XML_MAX_NAMES"),
            std::string::npos)
      << many.message;
  // Long names: libxml2's dictionary is held to about kMaxNameBytes.
  const CheckVerdict long_names = run(names(2000, 1000), 65536);
  EXPECT_EQ(long_names.reason, "too_many_names") << long_names.message;
  EXPECT_NE(long_names.message.find("bytes of distinct names"), std::string::npos)
      << long_names.message;
  // The same names again and again are one name each.
  std::string repeated = "<all>";
  for (int i = 0; i < 20000; ++i) repeated += "<item type=\"int\">1</item>";
  EXPECT_TRUE(run(repeated + "</all>", 4096, nullptr, limits).passed());
}

TEST_F(XmlCheckTest, BesideAThreadTheVerdictIsTheSame) {
  // A large upload's XML check runs on a thread of its own (check_beside): same verdicts.
  std::string big = "<all>";
  for (int i = 0; i < 20000; ++i) big += "<item type=\"int\">" + std::to_string(i) + "</item>";
  const std::string docs[] = {big + "</all>", big, big + "</wrong></all>", ""};
  for (const auto& doc : docs) {
    const CheckVerdict inline_verdict = run(doc, 3000);
    auto beside = check_beside(std::make_unique<XmlCheck>(XmlLimits{}, nullptr));
    for (size_t at = 0; at < doc.size(); at += 3000) {
      if (!beside->update(doc.data() + at, std::min<size_t>(3000, doc.size() - at))) break;
    }
    const CheckVerdict v = beside->finish();
    EXPECT_EQ(v.outcome, inline_verdict.outcome) << doc.size();
    EXPECT_EQ(v.message, inline_verdict.message) << doc.size();
  }
  // Dropped unfinished (the upload failed): the thread ends with it.
  auto abandoned = check_beside(std::make_unique<XmlCheck>(XmlLimits{}, nullptr));
  abandoned->update(big.data(), big.size());
}

constexpr const char* kSchema = R"(<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="all">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="id" type="xs:integer"/>
        <xs:element name="note" type="xs:string" minOccurs="0"/>
      </xs:sequence>
    </xs:complexType>
  </xs:element>
</xs:schema>
)";

TEST_F(XmlCheckTest, SchemaValidatesWhileStreaming) {
  auto schema = XmlSchema::load(write("s.xsd", kSchema));
  ASSERT_TRUE(schema) << schema.error().message;
  EXPECT_TRUE(run("<all><id>42</id><note>hi</note></all>", 2, *schema).passed());

  const CheckVerdict invalid = run("<all>\n  <id>forty-two</id>\n</all>", 5, *schema);
  EXPECT_EQ(invalid.outcome, CheckOutcome::kRefused);
  EXPECT_EQ(invalid.check, "schema");
  EXPECT_EQ(invalid.reason, "invalid");
  EXPECT_NE(invalid.message.find("not valid against the schema at line 2, column"),
            std::string::npos)
      << invalid.message;
  EXPECT_NE(invalid.message.find("forty-two"), std::string::npos) << invalid.message;

  const CheckVerdict missing = run("<all><note>no id</note></all>", 4096, *schema);
  EXPECT_EQ(missing.reason, "invalid") << missing.message;
  const CheckVerdict other_root = run("<other/>", 4096, *schema);
  EXPECT_EQ(other_root.reason, "invalid") << other_root.message;
  // Not well-formed wins over invalid: the document is not XML at all.
  const CheckVerdict broken = run("<all><id>x</id>", 4096, *schema);
  EXPECT_EQ(broken.check, "xml") << broken.message;
}

TEST_F(XmlCheckTest, SchemaRefusesOneTextOverTheLimitInsteadOfCopyingIt) {
  auto schema = XmlSchema::load(write("s.xsd", kSchema));
  ASSERT_TRUE(schema);
  XmlCheck check({}, *schema);
  const std::string open = "<all><id>1</id><note>";
  ASSERT_TRUE(check.update(open.data(), open.size()));
  const std::string text(1 << 20, 'x');
  bool stopped = false;
  for (int i = 0; i < 12 && !stopped; ++i) stopped = !check.update(text.data(), text.size());
  const CheckVerdict v = check.finish();
  EXPECT_TRUE(stopped);
  EXPECT_EQ(v.reason, "text_too_large") << v.message;

  // The limit is XML_MAX_CONSTRUCT; text, references and CDATA count, comments do not.
  XmlLimits limits;
  limits.max_construct_bytes = 1000;
  const std::string note = "ab&amp;<![CDATA[cd]]><!-- not text -->";  // 2 + 5 + 2 = 9 bytes
  for (size_t size : {size_t{1000}, size_t{1001}}) {
    const std::string doc =
        "<all><id>1</id><note>" + note + std::string(size - 9, 'x') + "</note></all>";
    const CheckVerdict n = run(doc, 7, *schema, limits);
    EXPECT_EQ(n.passed(), size == 1000) << size << ": " << n.message;
    if (size > 1000) {
      EXPECT_EQ(n.check, "schema");
      EXPECT_EQ(n.reason, "text_too_large");
      EXPECT_NE(n.message.find("XML text of over 1000 bytes in one element at line 1 "
                               "(XML_MAX_CONSTRUCT: the limit while validating against a schema"),
                std::string::npos)
          << n.message;
    }
    EXPECT_TRUE(run(doc, 7, nullptr, limits).passed()) << "no schema: text streams";
  }
}

TEST_F(XmlCheckTest, BadSchemaIsRefusedWithLibxml2sMessage) {
  auto not_xml = XmlSchema::load(write("bad.xsd", "<xs:schema"));
  ASSERT_FALSE(not_xml);
  EXPECT_NE(not_xml.error().message.find("is not a usable XML Schema"), std::string::npos)
      << not_xml.error().message;
  auto wrong =
      XmlSchema::load(write("wrong.xsd",
                            "<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\">"
                            "<xs:element name=\"a\" type=\"xs:nosuchtype\"/></xs:schema>"));
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message.find("nosuchtype"), std::string::npos) << wrong.error().message;
  auto missing = XmlSchema::load((dir_ / "none.xsd").string());
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("none.xsd"), std::string::npos) << missing.error().message;
}

TEST_F(XmlCheckTest, SchemaFileReloadsAndKeepsTheOldOneWhenTheNewIsBroken) {
  const std::string path = write("live.xsd", kSchema);
  auto file = SchemaFile::load(path);
  ASSERT_TRUE(file) << file.error().message;
  const std::string doc = "<all><id>1</id></all>";
  EXPECT_TRUE(run(doc, 4096, (*file)->current()).passed());
  auto unchanged = (*file)->refresh();
  ASSERT_TRUE(unchanged);
  EXPECT_FALSE(*unchanged);

  // A new schema (another root): written aside and renamed over, as an operator would.
  std::string other = kSchema;
  other.replace(other.find("name=\"all\""), 10, "name=\"doc\"");
  fs::rename(write("next.xsd", other), path);
  auto changed = (*file)->refresh();
  ASSERT_TRUE(changed) << changed.error().message;
  EXPECT_TRUE(*changed);
  EXPECT_FALSE(run(doc, 4096, (*file)->current()).passed());

  // Broken: the schema loaded before stays in force, and the error is reported until fixed.
  fs::rename(write("broken.xsd", "<xs:schema"), path);
  EXPECT_FALSE((*file)->refresh());
  ASSERT_TRUE((*file)->error().has_value());
  EXPECT_TRUE(run("<doc><id>1</id></doc>", 4096, (*file)->current()).passed());
  fs::rename(write("fixed.xsd", kSchema), path);
  auto fixed = (*file)->refresh();
  ASSERT_TRUE(fixed);
  EXPECT_FALSE((*file)->error().has_value());
  EXPECT_TRUE(run(doc, 4096, (*file)->current()).passed());
}

}  // namespace
}  // namespace transfer::receiver
