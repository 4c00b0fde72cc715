#include "transfer/json_to_xml.hpp"

#include <gtest/gtest.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>

namespace transfer {
namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> corpus_cases() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(fs::path(TRANSFER_TESTDATA) / "json2xml/inputs")) {
    names.push_back(e.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Feeds the input a few bytes at a time, so every chunk boundary is crossed.
class ChunkedSource : public JsonSource {
 public:
  ChunkedSource(std::string data, size_t chunk) : data_(std::move(data)), chunk_(chunk) {}
  Result<size_t> read(char* buf, size_t cap) override {
    const size_t n = std::min({cap, chunk_, data_.size() - pos_});
    std::copy_n(data_.data() + pos_, n, buf);
    pos_ += n;
    return n;
  }
  Status rewind() override {
    pos_ = 0;
    ++rewinds;
    return ok_status();
  }
  int rewinds = 0;

 private:
  std::string data_;
  size_t chunk_;
  size_t pos_ = 0;
};

class StringSink : public XmlSink {
 public:
  Status write(const char* d, size_t n) override {
    out.append(d, n);
    return ok_status();
  }
  Status reset() override {
    out.clear();
    return ok_status();
  }
  std::string out;
};

TEST(JsonToXmlGolden, EveryCorpusCaseMatchesByteForByte) {
  const auto names = corpus_cases();
  ASSERT_GE(names.size(), 31U);
  const fs::path dir = fs::path(TRANSFER_TESTDATA) / "json2xml";
  for (const auto& name : names) {
    const std::string json = read_file(dir / "inputs" / (name + ".json"));
    const std::string expected = read_file(dir / "expected" / (name + ".xml"));
    auto xml = json_to_xml(json, {}, name);
    ASSERT_TRUE(xml.ok()) << name << ": " << xml.error().message;
    EXPECT_EQ(*xml, expected) << name;
  }
}

TEST(JsonToXmlGolden, SameOutputAtEveryChunkSize) {
  const fs::path dir = fs::path(TRANSFER_TESTDATA) / "json2xml";
  for (const auto& name : corpus_cases()) {
    const std::string json = read_file(dir / "inputs" / (name + ".json"));
    const std::string expected = read_file(dir / "expected" / (name + ".xml"));
    for (size_t chunk : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{64}}) {
      ChunkedSource src(json, chunk);
      StringSink sink;
      auto r = convert_json_to_xml(src, sink, {}, name);
      ASSERT_TRUE(r.ok()) << name << " chunk " << chunk << ": " << r.error().message;
      EXPECT_EQ(sink.out, expected) << name << " chunk " << chunk;
    }
  }
}

TEST(JsonToXml, DuplicateKeysTakeTheInMemoryPathOnly) {
  ChunkedSource dup(R"({"a": 1, "a": 2})", 3);
  StringSink sink;
  auto r = convert_json_to_xml(dup, sink, {}, "dup");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->used_in_memory_path);
  EXPECT_EQ(dup.rewinds, 1);
  EXPECT_EQ(sink.out, "<?xml version=\"1.0\" ?>\n<all>\n\t<a type=\"int\">2</a>\n</all>\n");

  ChunkedSource plain(R"({"a": 1, "b": {"a": 2}})", 3);
  auto r2 = convert_json_to_xml(plain, sink, {}, "plain");
  ASSERT_TRUE(r2.ok());
  EXPECT_FALSE(r2->used_in_memory_path);
  EXPECT_EQ(plain.rewinds, 0);
}

TEST(JsonToXml, ManyKeysInOneObjectStayStreaming) {
  std::string json = "{";
  for (int i = 0; i < 1000; ++i) json += (i ? "," : "") + std::string("\"k") + std::to_string(i) + "\":" + std::to_string(i);
  json += ",\"k17\":0}";
  ChunkedSource src(json, 4096);
  StringSink sink;
  auto r = convert_json_to_xml(src, sink, {}, "many");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->used_in_memory_path);  // the duplicate k17 is found past the linear-scan limit
  EXPECT_NE(sink.out.find("<k17 type=\"int\">0</k17>"), std::string::npos);
  EXPECT_LT(sink.out.find("<k17 "), sink.out.find("<k18 "));
}

struct BadCase {
  std::string json;
  std::string message_part;
};

TEST(JsonToXml, RejectsInvalidInputNamingFileAndOffset) {
  const std::vector<BadCase> cases = {
      {"{}garbage", "at byte offset 2"},
      {std::string("{}\0garbage", 10), "at byte offset 2: raw NUL byte"},
      {std::string("{\"a\":\"x\0\"}", 10), "at byte offset 7: raw NUL byte"},
      {"{\"a\": \"\xff\"}", "at byte offset"},
      {"{\"a\": \"\xc3\x28\"}", "at byte offset"},
      {"", "at byte offset 0"},
      {"{\"a\":", "at byte offset"},
      {"[1,]", "at byte offset 3"},
      {"{'a': 1}", "at byte offset 1"},
      {"NaN", "at byte offset 0"},
      {"{\"a\": 1e999}", "number out of range"},
  };
  for (const auto& c : cases) {
    auto r = json_to_xml(c.json, {}, "books.json");
    ASSERT_FALSE(r.ok()) << c.json;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidJson) << c.json;
    EXPECT_EQ(r.error().message.rfind("books.json: invalid JSON", 0), 0U) << r.error().message;
    EXPECT_NE(r.error().message.find(c.message_part), std::string::npos)
        << c.json << " -> " << r.error().message;
  }
}

TEST(JsonToXml, DepthIsCapped) {
  JsonToXmlOptions opts;
  opts.max_depth = 10;
  EXPECT_TRUE(json_to_xml(std::string(10, '[') + std::string(10, ']'), opts).ok());
  auto r = json_to_xml(std::string(11, '[') + std::string(11, ']'), opts, "deep.json");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kTooDeep);
  EXPECT_NE(r.error().message.find("deeper than 10"), std::string::npos);
  auto huge = json_to_xml(std::string(100000, '['), {}, "huge.json");
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error().code, ErrorCode::kTooDeep);
}

// JSON nested `levels.size()` deep: 'a' an array, 'o' an object (key "k"), outermost first. The
// innermost container holds a scalar, nothing, or (kDuplicate, an object) a key twice, which
// sends the document down the in-memory path.
enum class Leaf { kScalar, kEmpty, kDuplicate };
std::string nested_json(const std::string& levels, Leaf leaf) {
  std::string open, close;
  for (size_t i = 0; i < levels.size(); ++i) {
    const bool innermost = i + 1 == levels.size();
    const bool array = levels[i] == 'a';
    if (innermost && leaf == Leaf::kEmpty) {
      open += array ? "[" : "{";
    } else if (innermost && leaf == Leaf::kDuplicate) {
      open += R"({"k": 0, "k": 1)";
    } else if (innermost) {
      open += array ? "[1" : R"({"k": 1)";
    } else {
      open += array ? "[" : R"({"k": )";
    }
    close.insert(close.begin(), array ? ']' : '}');
  }
  return open + close;
}

std::string levels_of(const std::string& pattern, size_t depth) {
  std::string out;
  for (size_t i = 0; i < depth; ++i) out += pattern[i % pattern.size()];
  return out;
}

size_t element_depth(const xmlNode* node) {
  size_t deepest = 0;
  for (const xmlNode* c = node->children; c != nullptr; c = c->next) {
    if (c->type == XML_ELEMENT_NODE) deepest = std::max(deepest, element_depth(c));
  }
  return deepest + 1;
}

// libxml2 on default settings (options 0: no XML_PARSE_HUGE), as xmllint and lxml parse. Ok with
// the nesting of elements (the root counts 1), else libxml2's error.
Result<size_t> parse_with_libxml2(const std::string& xml) {
  std::string errors;
  xmlSetStructuredErrorFunc(&errors, [](void* ctx, xmlErrorPtr e) {
    if (e != nullptr && e->message != nullptr) *static_cast<std::string*>(ctx) += e->message;
  });
  std::unique_ptr<xmlDoc, decltype(&xmlFreeDoc)> doc(
      xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "deep.xml", nullptr, 0), xmlFreeDoc);
  xmlSetStructuredErrorFunc(nullptr, nullptr);
  if (!doc) return make_error(ErrorCode::kInvalidArgument, "libxml2: " + errors);
  return element_depth(xmlDocGetRootElement(doc.get()));
}

// MAX_DEPTH's default is the deepest JSON whose XML libxml2 reads on default settings: arrays,
// objects and both mixed, ending in a scalar, an empty container or (in-memory path) a duplicate
// key. One level more is refused by the converter (the sender quarantines it).
TEST(JsonToXmlDepth, DefaultMaxDepthMakesXmlLibxml2Reads) {
  ASSERT_EQ(JsonToXmlOptions{}.max_depth, kDefaultMaxDepth);
  struct Case {
    std::string pattern;
    Leaf leaf;
    size_t xml_depth;  // at the default depth; the root <all> counts 1
  };
  const std::vector<Case> cases = {
      {"a", Leaf::kScalar, kDefaultMaxDepth + 1},    {"o", Leaf::kScalar, kDefaultMaxDepth + 1},
      {"ao", Leaf::kScalar, kDefaultMaxDepth + 1},   {"oa", Leaf::kScalar, kDefaultMaxDepth + 1},
      {"a", Leaf::kEmpty, kDefaultMaxDepth},         {"o", Leaf::kEmpty, kDefaultMaxDepth},
      {"ao", Leaf::kEmpty, kDefaultMaxDepth},        {"oa", Leaf::kEmpty, kDefaultMaxDepth},
      {"o", Leaf::kDuplicate, kDefaultMaxDepth + 1}, {"oa", Leaf::kDuplicate, kDefaultMaxDepth + 1},
  };
  for (const auto& c : cases) {
    const std::string levels = levels_of(c.pattern, kDefaultMaxDepth);
    const std::string label = c.pattern + " leaf " + std::to_string(static_cast<int>(c.leaf));
    ASSERT_TRUE(c.leaf != Leaf::kDuplicate || levels.back() == 'o')
        << label << ": a duplicate key needs an object";
    const std::string json = nested_json(levels, c.leaf);
    MemoryJsonSource source(json);
    StringSink sink;
    auto converted = convert_json_to_xml(source, sink, {}, "deep.json");
    ASSERT_TRUE(converted.ok()) << label << ": " << converted.error().message;
    EXPECT_EQ(converted->used_in_memory_path, c.leaf == Leaf::kDuplicate) << label;
    auto parsed = parse_with_libxml2(sink.out);
    ASSERT_TRUE(parsed.ok()) << label << ": " << parsed.error().message;
    EXPECT_EQ(*parsed, c.xml_depth) << label;
    EXPECT_LE(*parsed, 256U) << label;

    auto deeper = json_to_xml(nested_json(levels_of(c.pattern, kDefaultMaxDepth + 1), c.leaf), {},
                              "deeper.json");
    ASSERT_FALSE(deeper.ok()) << label;
    EXPECT_EQ(deeper.error().code, ErrorCode::kTooDeep) << label;
    EXPECT_NE(deeper.error().message.find("deeper than " + std::to_string(kDefaultMaxDepth)),
              std::string::npos)
        << label << ": " << deeper.error().message;
  }
}

// The oracle can say no: with the limit lifted, JSON two levels past the default makes XML 258
// deep, which libxml2 refuses (the 512 of old let through 513).
TEST(JsonToXmlDepth, Libxml2RefusesWhatAHigherLimitLetsThrough) {
  JsonToXmlOptions lifted;
  lifted.max_depth = 100000;
  for (const size_t depth : {kDefaultMaxDepth + 2, size_t{500}}) {
    auto xml = json_to_xml(nested_json(levels_of("a", depth), Leaf::kScalar), lifted);
    ASSERT_TRUE(xml.ok()) << depth;
    auto parsed = parse_with_libxml2(*xml);
    ASSERT_FALSE(parsed.ok()) << depth << " parsed to depth " << *parsed;
    EXPECT_NE(parsed.error().message.find("Excessive depth"), std::string::npos)
        << parsed.error().message;
  }
}

TEST(JsonToXml, LoneSurrogatesBecomeReplacementCharacter) {
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(*json_to_xml(R"(["\ud800"])"),
            "<?xml version=\"1.0\" ?>\n<all>\n\t<item type=\"str\">" + fffd + "</item>\n</all>\n");
  EXPECT_EQ(*json_to_xml(R"(["a\udc00b\ud83d\ude80\ud800\n"])"),
            "<?xml version=\"1.0\" ?>\n<all>\n\t<item type=\"str\">a" + fffd + "b\xF0\x9F\x9A\x80" +
                fffd + "\n</item>\n</all>\n");
  EXPECT_EQ(*json_to_xml(R"({"\ud800": 1})"),
            "<?xml version=\"1.0\" ?>\n<all>\n\t<key name=\"" + fffd + "\" type=\"int\">1</key>\n</all>\n");
}

// The input filter works on whole chunks: an escape or a NUL on any chunk boundary (including
// the filter's own 64 KiB buffer) gives what the whole document gives, errors at the same offset.
TEST(JsonToXml, EscapesAndNulsOnEveryChunkBoundary) {
  const std::vector<std::string> escapes = {R"(\ud800)", R"(\ud83d\ude80)", R"(\\ud800)", R"(\ud800\ud800)",
                                            R"(\udbff\u0041)", R"(\\\ud800x)", R"(\u00e9\udfff)"};
  for (size_t pad : {size_t{0}, size_t{1}, size_t{65530}, size_t{65531}, size_t{65535}, size_t{65536}}) {
    for (const auto& esc : escapes) {
      const std::string json = "[\"" + std::string(pad, 'p') + esc + "\"]";
      const auto whole = json_to_xml(json);
      ASSERT_TRUE(whole.ok()) << esc << ": " << whole.error().message;
      for (size_t chunk : {size_t{1}, size_t{5}, size_t{11}, size_t{4096}}) {
        if (pad > 100 && chunk < 4096) continue;
        ChunkedSource src(json, chunk);
        StringSink sink;
        ASSERT_TRUE(convert_json_to_xml(src, sink, {}, "x").ok()) << esc << " chunk " << chunk;
        EXPECT_EQ(sink.out, *whole) << esc << " pad " << pad << " chunk " << chunk;
      }
    }
    const std::string with_nul = "[\"" + std::string(pad, 'p') + R"(\ud800)" + std::string(1, '\0') + "\"]";
    for (size_t chunk : {size_t{3}, size_t{4096}}) {
      if (pad > 100 && chunk < 4096) continue;
      ChunkedSource src(with_nul, chunk);
      StringSink sink;
      auto r = convert_json_to_xml(src, sink, {}, "x");
      ASSERT_FALSE(r.ok());
      EXPECT_NE(r.error().message.find("at byte offset " + std::to_string(pad + 8) + ": raw NUL byte"),
                std::string::npos) << r.error().message;
    }
  }
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(*json_to_xml(R"(["\\ud800", "\ud800\ud800", "\udbff\u0041"])"),
            "<?xml version=\"1.0\" ?>\n<all>\n\t<item type=\"str\">\\ud800</item>\n\t<item type=\"str\">" + fffd +
                fffd + "</item>\n\t<item type=\"str\">" + fffd + "A</item>\n</all>\n");
}

TEST(JsonToXml, ScalarTopLevelEmptyString) {
  EXPECT_EQ(*json_to_xml("\"\""), "<?xml version=\"1.0\" ?>\n<all>\n\t<item type=\"str\"/>\n</all>\n");
  EXPECT_EQ(*json_to_xml("\xEF\xBB\xBF{}"), "<?xml version=\"1.0\" ?>\n<all/>\n");  // BOM accepted
}

TEST(PythonFloatRepr, MatchesPython) {
  const std::vector<std::pair<double, std::string>> cases = {
      {1.5, "1.5"}, {1e300, "1e+300"}, {1e-7, "1e-07"}, {-0.0, "-0.0"}, {2.0, "2.0"},
      {0.1, "0.1"}, {1e15, "1000000000000000.0"}, {1e16, "1e+16"}, {0.0001, "0.0001"},
      {0.00001, "1e-05"}, {5e-324, "5e-324"}, {1.7976931348623157e308, "1.7976931348623157e+308"},
      {123456789012345680.0, "1.2345678901234568e+17"}, {-2.5e-8, "-2.5e-08"}, {100.0, "100.0"},
      {123.456, "123.456"}, {1234567890123456.7, "1234567890123456.8"}, {0.0, "0.0"},
  };
  for (const auto& [v, want] : cases) EXPECT_EQ(python_float_repr(v), want) << want;
}

TEST(ElementName, FollowsDicttoxmlRules) {
  struct Case {
    std::string key, tag;
    bool attr;
  };
  const std::vector<Case> cases = {
      {"plain", "plain", false},       {"1", "n1", false},          {"01", "n01", false},
      {"123abc", "key", true},         {"a b", "a_b", false},       {" lead", "_lead", false},
      {"trail ", "trail", false},      {"trail\t", "trail", false}, {"a&b", "key", true},
      {"x:y", "key", true},            {"xml:lang", "xml:lang", false}, {"xmlns", "xmlns", false},
      {"", "key", true},               {"-bad", "key", true},       {".dot", "key", true},
      {"a.b", "a.b", false},           {"\xE6\x9D\xB1", "\xE6\x9D\xB1", false},  // 東
      {"\xF0\x9F\x9A\x80", "key", true},                           // 🚀 (not BMP)
      {"\xD9\xA1\xD9\xA2", "n\xD9\xA1\xD9\xA2", false},            // Arabic-Indic digits
      {"\xC2\xB2", "key", true},                                   // ² isdigit, but n² is no name
      {"tab\tkey", "key", true},       {"a b ", "a_b_", false},
  };
  for (const auto& c : cases) {
    const auto n = element_name_for_key(c.key);
    EXPECT_EQ(n.tag, c.tag) << c.key;
    EXPECT_EQ(n.has_name_attr, c.attr) << c.key;
    if (c.attr) {
      EXPECT_EQ(n.name_attr, c.key);
    }
  }
}

TEST(ElementName, AttributeValuesAreNormalisedAndEscaped) {
  EXPECT_EQ(*json_to_xml(R"({"a\r\nb<\"&'>": 1})"),
            "<?xml version=\"1.0\" ?>\n<all>\n\t<key name=\"a b&lt;&quot;&amp;'&gt;\" "
            "type=\"int\">1</key>\n</all>\n");
}

// ------------------------------------------------------------------------------------------
// The mapping options (issue 16). The expected bytes below are dicttoxml 1.7.4's (then
// minidom's toprettyxml() when pretty), as tests/interop/test_xml_mapping.py compares them over
// whole corpora; item_wrap off and declaration off as the later releases define them.

// Pretty XML written one line per string (the trailing newline added).
std::string lines(std::initializer_list<std::string_view> each) {
  std::string out;
  for (const auto line : each) {
    out += line;
    out += '\n';
  }
  return out;
}

JsonToXmlOptions options_with(const std::function<void(JsonToXmlOptions&)>& set) {
  JsonToXmlOptions o;
  set(o);
  return o;
}

// Every combination of the five switches, with the default names and with custom ones.
std::vector<JsonToXmlOptions> every_combination() {
  std::vector<JsonToXmlOptions> all;
  for (const bool custom_names : {false, true}) {
    for (unsigned bits = 0; bits < 32; ++bits) {
      JsonToXmlOptions o;
      if (custom_names) {
        o.root = "order";
        o.item_name = "line";
      }
      o.type_attrs = (bits & 1U) == 0;
      o.item_wrap = (bits & 2U) == 0;
      o.pretty = (bits & 4U) == 0;
      o.declaration = (bits & 8U) == 0;
      o.cdata = (bits & 16U) != 0;
      all.push_back(o);
    }
  }
  return all;
}

std::string describe(const JsonToXmlOptions& o) {
  const auto on = [](bool b) { return b ? "on" : "off"; };
  return "root=" + o.root + " item=" + o.item_name + " types=" + on(o.type_attrs) +
         " wrap=" + on(o.item_wrap) + " pretty=" + on(o.pretty) + " decl=" + on(o.declaration) +
         " cdata=" + on(o.cdata);
}

TEST(JsonToXmlOptions, DefaultsAreTheOldSendersShape) {
  const JsonToXmlOptions o;
  EXPECT_EQ(o.root, "all");
  EXPECT_TRUE(o.type_attrs);
  EXPECT_EQ(o.item_name, "item");
  EXPECT_TRUE(o.item_wrap);
  EXPECT_TRUE(o.pretty);
  EXPECT_TRUE(o.declaration);
  EXPECT_FALSE(o.cdata);
  EXPECT_EQ(o.max_depth, kDefaultMaxDepth);
  EXPECT_TRUE(o == JsonToXmlOptions{});
  EXPECT_FALSE(o == options_with([](auto& x) { x.cdata = true; }));
  EXPECT_EQ(xml_mapping_summary(o),
            "XML_ROOT=all XML_TYPE_ATTRS=on XML_ITEM_NAME=item XML_ITEM_WRAP=on XML_PRETTY=on "
            "XML_DECLARATION=on XML_CDATA=off");
  EXPECT_EQ(xml_mapping_summary(options_with([](auto& x) {
              x.root = "order";
              x.item_name = "line";
              x.type_attrs = x.item_wrap = x.pretty = x.declaration = false;
              x.cdata = true;
              x.max_depth = 3;
            })),
            "XML_ROOT=order XML_TYPE_ATTRS=off XML_ITEM_NAME=line XML_ITEM_WRAP=off XML_PRETTY=off "
            "XML_DECLARATION=off XML_CDATA=on");
}

TEST(JsonToXmlOptions, EachOptionShapesTheDocumentAsDicttoxmlDoes) {
  const std::string json =
      R"({"order": {"id": 7, "line": [{"sku": "A&1", "ok": true}, {"sku": "B]]>", "note": null}]},)"
      R"( "tags": ["x", "y"], "none": []})";
  struct Case {
    std::string label;
    JsonToXmlOptions options;
    std::string xml;
  };
  const std::vector<Case> cases = {
      {"defaults",
       {},
       lines({
           "<?xml version=\"1.0\" ?>",
           "<all>",
           "\t<order type=\"dict\">",
           "\t\t<id type=\"int\">7</id>",
           "\t\t<line type=\"list\">",
           "\t\t\t<item type=\"dict\">",
           "\t\t\t\t<sku type=\"str\">A&amp;1</sku>",
           "\t\t\t\t<ok type=\"bool\">True</ok>",
           "\t\t\t</item>",
           "\t\t\t<item type=\"dict\">",
           "\t\t\t\t<sku type=\"str\">B]]&gt;</sku>",
           "\t\t\t\t<note type=\"null\"/>",
           "\t\t\t</item>",
           "\t\t</line>",
           "\t</order>",
           "\t<tags type=\"list\">",
           "\t\t<item type=\"str\">x</item>",
           "\t\t<item type=\"str\">y</item>",
           "\t</tags>",
           "\t<none type=\"list\"/>",
           "</all>",
       })},
      {"compact", options_with([](auto& o) { o.pretty = false; }),
       "<?xml version=\"1.0\" encoding=\"UTF-8\" ?><all><order type=\"dict\">"
       "<id type=\"int\">7</id><line type=\"list\"><item type=\"dict\">"
       "<sku type=\"str\">A&amp;1</sku><ok type=\"bool\">True</ok></item>"
       "<item type=\"dict\"><sku type=\"str\">B]]&gt;</sku><note type=\"null\"></note>"
       "</item></line></order><tags type=\"list\"><item type=\"str\">x</item>"
       "<item type=\"str\">y</item></tags><none type=\"list\"></none></all>"},
      {"typeless", options_with([](auto& o) { o.type_attrs = false; }),
       lines({
           "<?xml version=\"1.0\" ?>",
           "<all>",
           "\t<order>",
           "\t\t<id>7</id>",
           "\t\t<line>",
           "\t\t\t<item>",
           "\t\t\t\t<sku>A&amp;1</sku>",
           "\t\t\t\t<ok>True</ok>",
           "\t\t\t</item>",
           "\t\t\t<item>",
           "\t\t\t\t<sku>B]]&gt;</sku>",
           "\t\t\t\t<note/>",
           "\t\t\t</item>",
           "\t\t</line>",
           "\t</order>",
           "\t<tags>",
           "\t\t<item>x</item>",
           "\t\t<item>y</item>",
           "\t</tags>",
           "\t<none/>",
           "</all>",
       })},
      {"root and item names", options_with([](auto& o) {
         o.root = "doc";
         o.item_name = "li";
         o.type_attrs = false;
       }),
       lines({
           "<?xml version=\"1.0\" ?>",
           "<doc>",
           "\t<order>",
           "\t\t<id>7</id>",
           "\t\t<line>",
           "\t\t\t<li>",
           "\t\t\t\t<sku>A&amp;1</sku>",
           "\t\t\t\t<ok>True</ok>",
           "\t\t\t</li>",
           "\t\t\t<li>",
           "\t\t\t\t<sku>B]]&gt;</sku>",
           "\t\t\t\t<note/>",
           "\t\t\t</li>",
           "\t\t</line>",
           "\t</order>",
           "\t<tags>",
           "\t\t<li>x</li>",
           "\t\t<li>y</li>",
           "\t</tags>",
           "\t<none/>",
           "</doc>",
       })},
      {"item wrap off", options_with([](auto& o) { o.item_wrap = false; }),
       lines({
           "<?xml version=\"1.0\" ?>",
           "<all>",
           "\t<order type=\"dict\">",
           "\t\t<id type=\"int\">7</id>",
           "\t\t<line type=\"dict\">",
           "\t\t\t<sku type=\"str\">A&amp;1</sku>",
           "\t\t\t<ok type=\"bool\">True</ok>",
           "\t\t</line>",
           "\t\t<line type=\"dict\">",
           "\t\t\t<sku type=\"str\">B]]&gt;</sku>",
           "\t\t\t<note type=\"null\"/>",
           "\t\t</line>",
           "\t</order>",
           "\t<tags type=\"str\">x</tags>",
           "\t<tags type=\"str\">y</tags>",
           "\t<none type=\"list\"/>",
           "</all>",
       })},
      {"no declaration", options_with([](auto& o) {
         o.declaration = false;
         o.type_attrs = false;
       }),
       lines({
           "<all>",
           "\t<order>",
           "\t\t<id>7</id>",
           "\t\t<line>",
           "\t\t\t<item>",
           "\t\t\t\t<sku>A&amp;1</sku>",
           "\t\t\t\t<ok>True</ok>",
           "\t\t\t</item>",
           "\t\t\t<item>",
           "\t\t\t\t<sku>B]]&gt;</sku>",
           "\t\t\t\t<note/>",
           "\t\t\t</item>",
           "\t\t</line>",
           "\t</order>",
           "\t<tags>",
           "\t\t<item>x</item>",
           "\t\t<item>y</item>",
           "\t</tags>",
           "\t<none/>",
           "</all>",
       })},
      {"cdata", options_with([](auto& o) { o.cdata = true; }),
       lines({
           "<?xml version=\"1.0\" ?>",
           "<all>",
           "\t<order type=\"dict\">",
           "\t\t<id type=\"int\"><![CDATA[7]]></id>",
           "\t\t<line type=\"list\">",
           "\t\t\t<item type=\"dict\">",
           "\t\t\t\t<sku type=\"str\"><![CDATA[A&1]]></sku>",
           "\t\t\t\t<ok type=\"bool\"><![CDATA[True]]></ok>",
           "\t\t\t</item>",
           "\t\t\t<item type=\"dict\">",
           "\t\t\t\t<sku type=\"str\">",
           "<![CDATA[B]]]]><![CDATA[>]]>\t\t\t\t</sku>",
           "\t\t\t\t<note type=\"null\"/>",
           "\t\t\t</item>",
           "\t\t</line>",
           "\t</order>",
           "\t<tags type=\"list\">",
           "\t\t<item type=\"str\"><![CDATA[x]]></item>",
           "\t\t<item type=\"str\"><![CDATA[y]]></item>",
           "\t</tags>",
           "\t<none type=\"list\"/>",
           "</all>",
       })},
      {"cdata compact", options_with([](auto& o) {
         o.cdata = true;
         o.pretty = false;
       }),
       "<?xml version=\"1.0\" encoding=\"UTF-8\" ?><all><order type=\"dict\">"
       "<id type=\"int\"><![CDATA[7]]></id><line type=\"list\"><item type=\"dict\">"
       "<sku type=\"str\"><![CDATA[A&1]]></sku><ok type=\"bool\"><![CDATA[True]]></ok>"
       "</item><item type=\"dict\"><sku type=\"str\"><![CDATA[B]]]]><![CDATA[>]]></sku>"
       "<note type=\"null\"></note></item></line></order><tags type=\"list\">"
       "<item type=\"str\"><![CDATA[x]]></item><item type=\"str\"><![CDATA[y]]></item>"
       "</tags><none type=\"list\"></none></all>"},
      {"the memory test's: typeless, unwrapped, compact, cdata", options_with([](auto& o) {
         o.type_attrs = false;
         o.item_wrap = false;
         o.pretty = false;
         o.cdata = true;
       }),
       "<?xml version=\"1.0\" encoding=\"UTF-8\" ?><all><order><id><![CDATA[7]]></id><line>"
       "<sku><![CDATA[A&1]]></sku><ok><![CDATA[True]]></ok></line><line><sku><![CDATA[B]]]]>"
       "<![CDATA[>]]></sku><note></note></line></order><tags><![CDATA[x]]></tags><tags>"
       "<![CDATA[y]]></tags><none></none></all>"},
  };
  for (const auto& c : cases) {
    auto xml = json_to_xml(json, c.options, c.label);
    ASSERT_TRUE(xml.ok()) << c.label << ": " << xml.error().message;
    EXPECT_EQ(*xml, c.xml) << c.label;
    // The same from the in-memory path (a duplicate key sends the document there).
    const std::string dup = R"({"order": 0, )" + json.substr(1);
    ChunkedSource src(dup, 5);
    StringSink sink;
    auto r = convert_json_to_xml(src, sink, c.options, c.label);
    ASSERT_TRUE(r.ok()) << c.label;
    EXPECT_TRUE(r->used_in_memory_path) << c.label;
    EXPECT_EQ(sink.out, c.xml) << c.label << " (in-memory path)";
  }
}

// The library's corners, as its own bytes show them (each checked against dicttoxml 1.7.4).
// Compact and typeless, a list in a list opens as "<item >"; compact, ' is &apos;, a CR stays
// and a key with trailing whitespace keeps it (minidom drops it); "²" (n² is no name) holding a
// scalar is <key name="n²">: dicttoxml fixes a scalar's name twice.
TEST(JsonToXmlOptions, DicttoxmlCornersInEachLayout) {
  const std::string json =
      R"({"m": [[1, []], {"k": "it's"}], "\u00b2": null, "trail ": "v", "a\r\nb&": "x\r\ny"})";
  struct Case {
    std::string label;
    JsonToXmlOptions options;
    std::string xml;
  };
  const std::vector<Case> cases = {
      {"compact typeless", options_with([](auto& o) {
         o.pretty = false;
         o.type_attrs = false;
       }),
       "<?xml version=\"1.0\" encoding=\"UTF-8\" ?><all><m><item ><item>1</item><item >"
       "</item></item><item><k>it&apos;s</k></item></m><key name=\"n\xC2\xB2\"></key>"
       "<trail >v</trail ><key name=\"a\r\nb&amp;\">x\r\ny</key></all>"},
      {"pretty typeless", options_with([](auto& o) { o.type_attrs = false; }),
       lines({
           "<?xml version=\"1.0\" ?>",
           "<all>",
           "\t<m>",
           "\t\t<item>",
           "\t\t\t<item>1</item>",
           "\t\t\t<item/>",
           "\t\t</item>",
           "\t\t<item>",
           "\t\t\t<k>it's</k>",
           "\t\t</item>",
           "\t</m>",
           "\t<key name=\"n\xC2\xB2\"/>",
           "\t<trail>v</trail>",
           "\t<key name=\"a b&amp;\">x",
           "y</key>",
           "</all>",
       })},
      {"compact cdata, no declaration", options_with([](auto& o) {
         o.pretty = false;
         o.declaration = false;
         o.cdata = true;
       }),
       "<all><m type=\"list\"><item type=\"list\"><item type=\"int\"><![CDATA[1]]></item>"
       "<item type=\"list\"></item></item><item type=\"dict\"><k type=\"str\">"
       "<![CDATA[it's]]></k></item></m><key name=\"n\xC2\xB2\" type=\"null\"></key>"
       "<trail  type=\"str\"><![CDATA[v]]></trail ><key name=\"a\r\nb&amp;\" type=\"str\">"
       "<![CDATA[x\r\ny]]></key></all>"},
  };
  for (const auto& c : cases) {
    auto xml = json_to_xml(json, c.options, c.label);
    ASSERT_TRUE(xml.ok()) << c.label << ": " << xml.error().message;
    EXPECT_EQ(*xml, c.xml) << c.label;
  }
}

// Where dicttoxml writes no XML, or has no such option, what we write instead, in order:
//  - "²" holding a dict or list (dicttoxml: <n²>, not XML): named as any other invalid key;
//  - item wrap off, the members of such a key's list are named as its values would be;
//  - a list with no key of its own (the document, a member of a list) keeps its item members;
//  - a scalar document (the library crashes): one item, in every layout;
//  - {} and [] at the top level: the empty root;
//  - an empty string in CDATA: an empty section (compact), no node at all (pretty).
TEST(JsonToXmlOptions, WhereTheLibraryWritesNoXml) {
  struct Case {
    std::string json;
    JsonToXmlOptions options;
    std::string xml;
  };
  const std::vector<Case> cases = {
      {R"({"\u00b2": {"a": 1}, "\u00b9": [true]})", options_with([](auto& o) {
         o.pretty = false;
         o.declaration = false;
       }),
       "<all><key name=\"\xC2\xB2\" type=\"dict\"><a type=\"int\">1</a></key>"
       "<key name=\"\xC2\xB9\" type=\"list\"><item type=\"bool\">True</item></key></all>"},
      {R"({"\u00b2": [1, {}], "\u00b9": []})", options_with([](auto& o) {
         o.pretty = false;
         o.declaration = false;
         o.item_wrap = false;
       }),
       "<all><key name=\"n\xC2\xB2\" type=\"int\">1</key>"
       "<key name=\"\xC2\xB2\" type=\"dict\"></key><key name=\"\xC2\xB9\" type=\"list\">"
       "</key></all>"},
      {R"([[1], {"a": []}, 2])", options_with([](auto& o) {
         o.pretty = false;
         o.declaration = false;
         o.item_wrap = false;
       }),
       "<all><item type=\"list\"><item type=\"int\">1</item></item><item type=\"dict\">"
       "<a type=\"list\"></a></item><item type=\"int\">2</item></all>"},
      {R"({"k": [[1, 2], []]})", options_with([](auto& o) {
         o.pretty = false;
         o.declaration = false;
         o.item_wrap = false;
       }),
       "<all><k type=\"list\"><item type=\"int\">1</item><item type=\"int\">2</item></k>"
       "<k type=\"list\"></k></all>"},
      {R"("]]>")", options_with([](auto& o) {
         o.cdata = true;
         o.pretty = false;
         o.item_name = "v";
       }),
       "<?xml version=\"1.0\" encoding=\"UTF-8\" ?><all><v type=\"str\"><![CDATA[]]]]>"
       "<![CDATA[>]]></v></all>"},
      {R"(null)", options_with([](auto& o) {
         o.pretty = false;
         o.declaration = false;
         o.item_wrap = false;
       }),
       "<all><item type=\"null\"></item></all>"},
      {R"({})", options_with([](auto& o) { o.root = "r"; }),
       lines({
           "<?xml version=\"1.0\" ?>",
           "<r/>",
       })},
      {R"([])", options_with([](auto& o) {
         o.root = "r";
         o.pretty = false;
       }),
       "<?xml version=\"1.0\" encoding=\"UTF-8\" ?><r></r>"},
      {R"({"e": ""})", options_with([](auto& o) { o.cdata = true; }),
       lines({
           "<?xml version=\"1.0\" ?>",
           "<all>",
           "\t<e type=\"str\"/>",
           "</all>",
       })},
      {R"({"e": ""})", options_with([](auto& o) {
         o.cdata = true;
         o.pretty = false;
         o.declaration = false;
       }),
       "<all><e type=\"str\"><![CDATA[]]></e></all>"},
  };
  for (const auto& c : cases) {
    auto xml = json_to_xml(c.json, c.options, "corner");
    ASSERT_TRUE(xml.ok()) << c.json << ": " << xml.error().message;
    EXPECT_EQ(*xml, c.xml) << c.json << " [" << describe(c.options) << "]";
    EXPECT_TRUE(parse_with_libxml2(*xml).ok()) << c.json;
  }
}

TEST(JsonToXmlOptions, ElementNamesInOptionsAreChecked) {
  const std::vector<std::string> good = {
      "all", "item", "order", "_x", "a.b-c_9", "xml:lang", "xmlns", "A",
      "\xC3\xA9t\xC3\xA9", "\xE6\x9D\xB1",  // été, 東
  };
  for (const auto& name : good) EXPECT_TRUE(check_xml_element_name("XML_ROOT", name).ok()) << name;
  const std::vector<std::string> bad = {
      "", "1st", "-x", ".x", "a b", "a\tb", "a\nb", "trail ", " lead",  // start, whitespace
      "x:y", "a:", ":a",                                                // a prefix but xml:
      "<all>", "a&b", "a\"b",                                            // markup
      "\xC2\xB2", "\xF0\x9F\x9A\x80",                                     // ², 🚀: no name characters
      "\xC3", "\xC3\x29", "\xED\xA0\x80", "\xC0\x80", std::string("a\0b", 3),  // not UTF-8, NUL
  };
  for (const auto& name : bad) {
    const auto st = check_xml_element_name("XML_ITEM_NAME", name);
    ASSERT_FALSE(st.ok()) << name;
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(st.error().message.rfind("XML_ITEM_NAME: \"", 0), 0U) << st.error().message;
    EXPECT_EQ(st.error().message.find('\n'), std::string::npos) << st.error().message;
  }
  // The converter refuses them too, before reading anything.
  auto root = json_to_xml("{}", options_with([](auto& o) { o.root = "1st"; }), "x.json");
  ASSERT_FALSE(root.ok());
  EXPECT_EQ(root.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(root.error().message.rfind("XML_ROOT: \"1st\" is not a valid XML element name", 0), 0U)
      << root.error().message;
  auto item = json_to_xml("[1]", options_with([](auto& o) { o.item_name = "x y"; }));
  ASSERT_FALSE(item.ok());
  EXPECT_EQ(item.error().message.rfind("XML_ITEM_NAME: ", 0), 0U) << item.error().message;
  EXPECT_TRUE(check_json_to_xml_options(JsonToXmlOptions{}).ok());
}

// A copy of `json` (an object) whose first key comes again at the end with the same value:
// the same document for Python's dict, converted by the in-memory path.
std::string with_duplicate_key(const std::string& json) {
  return R"({"dupkey": [0, {"k": null}], )" + json.substr(1, json.rfind('}') - 1) +
         R"(, "dupkey": [0, {"k": null}]})";
}

// Every combination on the golden corpus: the same bytes at every chunk size, from both paths,
// and XML libxml2 reads.
TEST(JsonToXmlOptions, EveryCombinationStreamsTheSameAndIsWellFormed) {
  const fs::path dir = fs::path(TRANSFER_TESTDATA) / "json2xml";
  for (const auto& options : every_combination()) {
    const std::string label = describe(options);
    for (const auto& name : corpus_cases()) {
      const std::string json = read_file(dir / "inputs" / (name + ".json"));
      auto whole = json_to_xml(json, options, name);
      ASSERT_TRUE(whole.ok()) << name << " [" << label << "]: " << whole.error().message;
      auto parsed = parse_with_libxml2(*whole);
      EXPECT_TRUE(parsed.ok()) << name << " [" << label << "]: " << parsed.error().message;
      for (size_t chunk : {size_t{1}, size_t{7}}) {
        ChunkedSource src(json, chunk);
        StringSink sink;
        ASSERT_TRUE(convert_json_to_xml(src, sink, options, name).ok()) << name;
        EXPECT_EQ(sink.out, *whole) << name << " chunk " << chunk << " [" << label << "]";
      }
      const size_t first = json.find_first_not_of(" \t\r\n");
      if (first == std::string::npos || json[first] != '{' ||
          json.find("dupkey") != std::string::npos)
        continue;
      const std::string object = json.substr(first);
      if (object.find_first_not_of(" \t\r\n", 1) == object.find('}')) continue;  // {}
      auto once = json_to_xml(R"({"dupkey": [0, {"k": null}], )" + object.substr(1), options, name);
      ASSERT_TRUE(once.ok()) << name;
      const std::string doubled = with_duplicate_key(object);
      MemoryJsonSource twice_src(doubled);
      StringSink twice;
      auto r = convert_json_to_xml(twice_src, twice, options, name);
      ASSERT_TRUE(r.ok()) << name << ": " << r.error().message;
      EXPECT_TRUE(r->used_in_memory_path) << name;
      EXPECT_EQ(twice.out, *once) << name << " in-memory path [" << label << "]";
    }
  }
}

// Streaming holds for every combination: the first XML leaves long before the input is read,
// in pieces of bounded size, never through the in-memory path.
class CountingSource : public JsonSource {
 public:
  explicit CountingSource(const std::string& json) : json_(json) {}
  Result<size_t> read(char* buf, size_t cap) override {
    const size_t n = std::min({cap, size_t{4096}, json_.size() - pos_});
    std::copy_n(json_.data() + pos_, n, buf);
    pos_ += n;
    return n;
  }
  Status rewind() override {
    pos_ = 0;
    return ok_status();
  }
  size_t pos() const { return pos_; }

 private:
  const std::string& json_;
  size_t pos_ = 0;
};

class WatchingSink : public XmlSink {
 public:
  explicit WatchingSink(const CountingSource& src) : src_(src) {}
  Status write(const char* /*data*/, size_t size) override {
    if (writes++ == 0) read_at_first_write = src_.pos();
    largest = std::max(largest, size);
    return ok_status();
  }
  Status reset() override { return ok_status(); }
  size_t writes = 0;
  size_t read_at_first_write = 0;
  size_t largest = 0;

 private:
  const CountingSource& src_;
};

TEST(JsonToXmlOptions, EveryCombinationStreams) {
  std::string json = R"({"records": [)";
  for (int i = 0; json.size() < (256U << 10); ++i) {
    json += (i ? "," : "") + std::string(R"({"id": )") + std::to_string(i) +
            R"(, "name": "n]]>&", "tags": ["a", [], {"x": null}], "ok": true, "f": 1.5, "e": []})";
  }
  json += R"(], "tail": [[1, 2]]})";
  for (const auto& options : every_combination()) {
    if (options.root != "all") continue;  // the names change nothing here (and ASan is slow)
    CountingSource src(json);
    WatchingSink sink(src);
    auto r = convert_json_to_xml(src, sink, options, "big.json");
    ASSERT_TRUE(r.ok()) << describe(options) << ": " << r.error().message;
    EXPECT_FALSE(r->used_in_memory_path);
    EXPECT_GT(sink.writes, 3U) << describe(options);
    EXPECT_LT(sink.read_at_first_write, json.size() / 2) << describe(options);
    EXPECT_LE(sink.largest, size_t{128} << 10) << describe(options);
  }
}
}  // namespace
}  // namespace transfer
