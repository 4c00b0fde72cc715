// libFuzzer target: the JSON -> XML converter on untrusted files. Whenever it accepts an input,
// its output must be well-formed XML for libxml2 (a real, independent parser); fed a few bytes
// at a time it must give the same XML or the same error (the input filter works on chunks).
#include <libxml/parser.h>

#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <string>

#include "transfer/json_to_xml.hpp"

using namespace transfer;

namespace {
void quiet(void*, const char*, ...) {}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool init = [] {
    xmlInitParser();
    xmlSetGenericErrorFunc(nullptr, quiet);
    return true;
  }();
  (void)init;
  JsonToXmlOptions options;
  options.max_depth = 64;
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  auto xml = json_to_xml(json, options, "fuzz");
  MemoryJsonSource chunked(json, 1 + size % 13);
  StringXmlSink sink;
  auto again = convert_json_to_xml(chunked, sink, options, "fuzz");
  if (xml.ok() != again.ok() || (xml.ok() ? *xml != sink.out : xml.error().message != again.error().message)) {
    std::fprintf(stderr, "chunked input converted differently\n");
    std::abort();
  }
  if (!xml) return 0;
  xmlDocPtr doc = xmlReadMemory(xml->data(), static_cast<int>(xml->size()), "fuzz.xml", nullptr,
                                XML_PARSE_NONET | XML_PARSE_NOWARNING | XML_PARSE_NOERROR | XML_PARSE_HUGE);
  if (doc == nullptr) {
    std::fprintf(stderr, "accepted JSON produced XML libxml2 rejects:\n%s\n", xml->c_str());
    std::abort();
  }
  xmlFreeDoc(doc);
  return 0;
}
