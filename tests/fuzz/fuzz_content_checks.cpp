// libFuzzer target: the receiver's XML checks (XmlCheck, without and with a schema) on untrusted
// plaintext. The first byte picks the piece size and whether the schema is used. Invariants: a
// verdict every time, passed or refused (never "unavailable": nothing here depends on another
// process); a refusal names its check and reason and says why; the verdict is the same whether
// the bytes arrive in pieces or at once; and what the well-formedness check passes, libxml2's own
// parser (a tree, default options, no network) reads as a document.
#include <libxml/parser.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "xml_check.hpp"

using namespace transfer::receiver;

namespace {

std::shared_ptr<const XmlSchema> g_schema;

constexpr const char* kSchema = R"(<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="all"><xs:complexType><xs:sequence>
    <xs:element name="id" type="xs:integer" minOccurs="0" maxOccurs="unbounded"/>
    <xs:element name="note" type="xs:string" minOccurs="0"/>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>)";

CheckVerdict run(const uint8_t* data, size_t size, size_t piece, bool with_schema) {
  XmlCheck check({}, with_schema ? g_schema : nullptr);
  for (size_t at = 0; at < size; at += piece) {
    if (!check.update(reinterpret_cast<const char*>(data) + at, std::min(piece, size - at))) break;
  }
  return check.finish();
}

void silent(void*, xmlErrorPtr) {}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  init_xml_library();
  xmlSetStructuredErrorFunc(nullptr, silent);
  char path[] = "/tmp/fuzz_content_checks.XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0 || ::write(fd, kSchema, std::char_traits<char>::length(kSchema)) < 0) std::abort();
  ::close(fd);
  auto schema = XmlSchema::load(path);
  ::unlink(path);
  if (!schema) std::abort();
  g_schema = *schema;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t piece = 1 + (data[0] & 0x3f);
  const bool with_schema = (data[0] & 0x40) != 0;
  ++data;
  --size;
  const CheckVerdict pieces = run(data, size, piece, with_schema);
  const CheckVerdict whole = run(data, size, size + 1, with_schema);
  for (const auto* v : {&pieces, &whole}) {
    if (v->outcome == CheckOutcome::kUnavailable) std::abort();
    if (v->outcome == CheckOutcome::kRefused &&
        (v->check.empty() || v->reason.empty() || v->message.empty())) {
      std::abort();
    }
  }
  // libxml2 may stop at another error first when the bytes are cut elsewhere, but not change its
  // mind about the document.
  if (pieces.passed() != whole.passed()) std::abort();
  if (whole.passed() && !with_schema) {
    xmlDocPtr doc = xmlReadMemory(reinterpret_cast<const char*>(data), static_cast<int>(size),
                                  "fuzz", nullptr, XML_PARSE_NONET);
    if (doc == nullptr) std::abort();
    xmlFreeDoc(doc);
  }
  return 0;
}
