// libFuzzer target: the JSON -> XML converter on untrusted files. Whenever it accepts an input,
// its output must be well-formed XML for libxml2 (a real, independent parser).
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
  auto xml = json_to_xml(std::string_view(reinterpret_cast<const char*>(data), size), options, "fuzz");
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
