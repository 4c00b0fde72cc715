#pragma once
// JSON -> XML exactly as the old sender wrote it (json2xml 3.6.0: dicttoxml 1.7.4 with root
// `all` and `type` attributes, pretty-printed by Python's minidom with tabs), streamed:
// bytes -> nlohmann SAX events -> XML text, with no stage holding the document.
//
// The mapping (see shared/vectors/json2xml and README "XML mapping"): an element per key,
// `type` = str|int|float|bool|null|dict|list, list items as <item>, key names fixed up the way
// dicttoxml does (valid names pass, all-digit keys get an `n` prefix, spaces become `_`, else
// <key name="original">), ints exact at any size, floats as Python repr, booleans True/False,
// empty elements self-closed. Characters XML 1.0 cannot carry become U+FFFD first. Where the
// old sender crashed (empty or scalar top level) the output is still valid XML.
//
// JsonToXmlOptions changes the shape the way dicttoxml's own arguments do (root, type
// attributes, item name, CDATA, compact bytes instead of minidom's layout) plus the later
// releases' item_wrap=False and xml_declaration=False; every combination streams the same way.
//
// Duplicate keys follow Python's dict: first position, last value. The streaming pass detects
// them and the document is then converted again from an in-memory tree (only such files).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "transfer/result.hpp"

namespace transfer {

// Where JSON bytes come from. rewind() restarts from the first byte (used once at most, for a
// document with duplicate keys).
class JsonSource {
 public:
  virtual ~JsonSource() = default;
  // Reads up to `cap` bytes; 0 means end of input.
  virtual Result<size_t> read(char* buf, size_t cap) = 0;
  virtual Status rewind() = 0;
};

// Where XML text goes. reset() discards everything written so far.
class XmlSink {
 public:
  virtual ~XmlSink() = default;
  virtual Status write(const char* data, size_t size) = 0;
  virtual Status reset() = 0;
};

// JSON bytes already in memory (not owned), handed out at most `chunk` bytes per read (tests
// use small chunks to cross every boundary).
class MemoryJsonSource : public JsonSource {
 public:
  explicit MemoryJsonSource(std::string_view json, size_t chunk = SIZE_MAX) : json_(json), chunk_(chunk) {}
  Result<size_t> read(char* buf, size_t cap) override;
  Status rewind() override;

 private:
  std::string_view json_;
  size_t chunk_;
  size_t pos_ = 0;
};

// XML collected in a string.
class StringXmlSink : public XmlSink {
 public:
  Status write(const char* data, size_t size) override;
  Status reset() override;
  std::string out;
};

// The default depth keeps the XML readable by libxml2 on default settings (xmllint, lxml and most
// consumers), which refuses elements nested deeper than 256: JSON nested N deep becomes XML nested
// N + 1 deep (the root <all>, then an element per container, then one for the scalar inside), so
// 255 is the most that stays within 256. Measured with libxml2 2.9.14 (Debian 12): it accepts 257
// (its check is one off) and refuses 258; 255 honours its documented limit with that margin.
inline constexpr size_t kDefaultMaxDepth = 255;

// The shape of the XML. Every default is the old sender's output; each field is byte-identical
// to dicttoxml 1.7.4 called with the matching argument (then minidom's toprettyxml() when
// `pretty`) wherever that library writes well-formed XML. Names are checked by
// check_json_to_xml_options(); convert_json_to_xml() refuses options that fail it.
struct JsonToXmlOptions {
  size_t max_depth = kDefaultMaxDepth;  // deepest nesting of objects/arrays accepted
  // XML_ROOT: the element around the document (dicttoxml's custom_root, json2xml's wrapper).
  std::string root = "all";
  // XML_TYPE_ATTRS: type="str|int|float|bool|null|dict|list" on every element (attr_type).
  bool type_attrs = true;
  // XML_ITEM_NAME: the element of each list member (item_func returning a constant).
  std::string item_name = "item";
  // XML_ITEM_WRAP: false: a list that is the value of key K writes no element of its own; each
  // member is written as K's value would be, `{"K": [1, 2]}` -> <K>1</K><K>2</K> (later
  // json2xml's item_wrap=False). An empty list stays <K type="list"/>; a list with no key of
  // its own (the document, or a member of a list) keeps its element and its item_name members.
  bool item_wrap = true;
  // XML_PRETTY: true: minidom's toprettyxml() (tab indents, newlines, <?xml version="1.0" ?>,
  // empty elements self-closed); false: dicttoxml's own bytes (no whitespace, <a></a>,
  // <?xml version="1.0" encoding="UTF-8" ?>, ' written &apos;, CR kept).
  bool pretty = true;
  // XML_DECLARATION: false drops the <?xml ... ?> declaration (and, pretty, its line).
  bool declaration = true;
  // XML_CDATA: strings, numbers and booleans as <![CDATA[...]]> (dicttoxml's cdata), a "]]>"
  // inside split into two sections as dicttoxml splits it.
  bool cdata = false;

  bool operator==(const JsonToXmlOptions&) const = default;
};

// Checks an element name given in options: a name expat accepts as an element (what the old
// pair's minidom parsed: XML 1.0 name characters, no ':' except the predeclared `xml:` prefix,
// no whitespace, valid UTF-8). `option` starts the one-line message, e.g.
// `XML_ROOT: "1st" is not a valid XML element name (...)`; the caller refuses to start on it.
Status check_xml_element_name(std::string_view option, std::string_view name);

// check_xml_element_name() for `root` (as XML_ROOT) and `item_name` (as XML_ITEM_NAME).
Status check_json_to_xml_options(const JsonToXmlOptions& options);

// The shape the options give, as one stable line of the options' names (max_depth left out: it
// decides what is accepted, not the XML), for logs and for recording with a delivery:
// "XML_ROOT=all XML_TYPE_ATTRS=on XML_ITEM_NAME=item XML_ITEM_WRAP=on XML_PRETTY=on
// XML_DECLARATION=on XML_CDATA=off". Unambiguous for checked names (they hold no space or '=').
std::string xml_mapping_summary(const JsonToXmlOptions& options);

struct JsonToXmlStats {
  uint64_t json_bytes = 0;
  uint64_t xml_bytes = 0;
  bool used_in_memory_path = false;  // the document had duplicate keys
};

// Converts; `origin` (a file name) starts every error message, which also gives the byte offset:
// "books.json: invalid JSON at byte offset 1043: syntax error ...". Options that fail
// check_json_to_xml_options() are refused (kInvalidArgument) before anything is read.
Result<JsonToXmlStats> convert_json_to_xml(JsonSource& in, XmlSink& out,
                                           const JsonToXmlOptions& options,
                                           const std::string& origin);

// Whole-buffer helper (tests, small inputs).
Result<std::string> json_to_xml(std::string_view json, const JsonToXmlOptions& options = {},
                                const std::string& origin = "input");

// Exposed for tests: the pieces of the mapping.
struct ElementName {
  std::string tag;                // element name
  bool has_name_attr = false;     // true: tag is "key" and name_attr holds the original key
  std::string name_attr;
};
// `key` must be valid UTF-8 already cleaned of characters XML cannot carry. This is the name of
// a key whose value is a dict or list; a scalar or null value differs only where the `n`
// prefix does not make a name ("²" -> <key name="n²">: dicttoxml fixes such names twice).
ElementName element_name_for_key(std::string_view key);
// Replaces characters XML 1.0 cannot carry with U+FFFD. Input must be valid UTF-8.
std::string clean_xml_chars(std::string_view utf8);
// Python's repr() of a finite double: "1e+16", "0.0001", "1e-05", "-0.0", "2.0".
std::string python_float_repr(double value);

}  // namespace transfer
