// libFuzzer target: the JSON -> XML converter on untrusted files, with every mapping option.
// The first input byte picks the options (bits 0-4: type attributes off, item wrap off, compact,
// no declaration, CDATA on; bits 5-7: the root and item names, some of them invalid), the rest
// is the JSON. Whenever it accepts an input, its output must be well-formed XML for libxml2 (a
// real, independent parser); fed a few bytes at a time it must give the same XML or the same
// error (the input filter works on chunks); the options never change whether a document is
// accepted; names that check_json_to_xml_options() refuses are refused by the converter too.
#include <libxml/parser.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "transfer/json_to_xml.hpp"

using namespace transfer;

namespace {
void quiet(void*, const char*, ...) {}

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "%s\n%s\n", what, detail.c_str());
  std::abort();
}

JsonToXmlOptions options_from(uint8_t bits) {
  static const std::array<std::pair<const char*, const char*>, 8> kNames = {{
      {"all", "item"},
      {"order", "line"},
      {"xml:doc", "_"},
      {"\xC3\xA9t\xC3\xA9", "\xE6\x9D\xB1"},  // été, 東
      {"a.b-c", "key"},                       // the name of invalid keys, as an item name
      {"1st", "item"},                        // invalid root
      {"all", "a b"},                         // invalid item name
      {"all", ""},                            // invalid item name
  }};
  JsonToXmlOptions o;
  o.max_depth = 64;
  o.type_attrs = (bits & 1U) == 0;
  o.item_wrap = (bits & 2U) == 0;
  o.pretty = (bits & 4U) == 0;
  o.declaration = (bits & 8U) == 0;
  o.cdata = (bits & 16U) != 0;
  o.root = kNames[bits >> 5].first;
  o.item_name = kNames[bits >> 5].second;
  return o;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool init = [] {
    xmlInitParser();
    xmlSetGenericErrorFunc(nullptr, quiet);
    return true;
  }();
  (void)init;
  if (size == 0) return 0;
  const JsonToXmlOptions options = options_from(data[0]);
  const std::string_view json(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto xml = json_to_xml(json, options, "fuzz");
  if (!check_json_to_xml_options(options).ok()) {
    if (xml.ok() || xml.error().code != ErrorCode::kInvalidArgument)
      fail("invalid names were not refused", "");
    return 0;
  }
  MemoryJsonSource chunked(json, 1 + size % 13);
  StringXmlSink sink;
  auto again = convert_json_to_xml(chunked, sink, options, "fuzz");
  if (xml.ok() != again.ok() ||
      (xml.ok() ? *xml != sink.out : xml.error().message != again.error().message)) {
    fail("chunked input converted differently", xml.ok() ? *xml : xml.error().message);
  }
  JsonToXmlOptions defaults;
  defaults.max_depth = options.max_depth;
  auto plain = json_to_xml(json, defaults, "fuzz");
  if (plain.ok() != xml.ok() || (!xml.ok() && plain.error().message != xml.error().message)) {
    fail("the options changed whether the input is accepted",
         xml.ok() ? plain.error().message : xml.error().message);
  }
  if (!xml) return 0;
  xmlDocPtr doc =
      xmlReadMemory(xml->data(), static_cast<int>(xml->size()), "fuzz.xml", nullptr,
                    XML_PARSE_NONET | XML_PARSE_NOWARNING | XML_PARSE_NOERROR | XML_PARSE_HUGE);
  if (doc == nullptr) fail("accepted JSON produced XML libxml2 rejects:", *xml);
  xmlFreeDoc(doc);
  return 0;
}
