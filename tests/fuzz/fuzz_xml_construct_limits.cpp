// libFuzzer target: XmlConstructLimiter on untrusted bytes. Input: a byte F, then F & 7 bytes
// that pick where the document is cut, then (when F & 8) two bytes of small limits, then the
// document, or (when F & 16) bytes that steer a generator of well-formed XML full of what could
// lead a lexical scan astray (quotes and '>' in values, markup in comments, CDATA sections and
// PIs, a DOCTYPE with attribute defaults, namespaces): random bytes are rarely XML libxml2
// accepts, and the last invariant needs those. Invariants:
//   - no crash, no undefined behaviour (ASan + UBSan);
//   - the verdict (breach or not, its kind and message) and the attributes counted in each start
//     tag are the same whole, cut at the chosen points, and byte by byte;
//   - whenever libxml2's push parser (SAX2, the receiver's options) accepts the document, the
//     limiter (no limits) reads as many start tags as libxml2 reports elements, and counts in each
//     at least the attributes plus namespace declarations libxml2 reports: it never under-counts.
#include <libxml/parser.h>
#include <libxml/parserInternals.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "xml_check.hpp"
#include "xml_construct_limits.hpp"

using transfer::receiver::XmlConstructLimiter;
using transfer::receiver::XmlConstructLimits;
using transfer::receiver::XmlLimitBreach;

namespace {

struct Outcome {
  std::optional<XmlLimitBreach::Kind> kind;
  std::string message;
  std::vector<size_t> tags;
  bool operator==(const Outcome&) const = default;
};

Outcome scan(const uint8_t* data, size_t size, const XmlConstructLimits& limits,
             const std::vector<size_t>& cuts) {
  XmlConstructLimiter limiter(limits);
  Outcome out;
  limiter.observe_start_tags([&out](size_t n) { out.tags.push_back(n); });
  size_t at = 0;
  bool more = true;
  for (size_t cut : cuts) {
    if (more && cut > at) more = limiter.update(reinterpret_cast<const char*>(data) + at, cut - at);
    at = std::max(at, cut);
  }
  if (more) more = limiter.update(reinterpret_cast<const char*>(data) + at, size - at);
  if (more == limiter.breach().has_value()) std::abort();  // update() says what breach() says
  if (limiter.breach()) {
    out.kind = limiter.breach()->kind;
    out.message = limiter.breach()->message;
    if (out.message.empty()) std::abort();
  }
  return out;
}

// What libxml2 reports, parsing as XmlCheck does (push parser, SAX2, no tree, no network).
struct Libxml2View {
  std::vector<size_t> elements;  // attributes + namespace declarations of each start element
  long depth = 0;
  bool root_closed = false;
};

void on_start(void* user, const xmlChar*, const xmlChar*, const xmlChar*, int nb_namespaces,
              const xmlChar**, int nb_attributes, int, const xmlChar**) {
  auto* view = static_cast<Libxml2View*>(user);
  view->elements.push_back(static_cast<size_t>(nb_namespaces) + static_cast<size_t>(nb_attributes));
  ++view->depth;
}

void on_end(void* user, const xmlChar*, const xmlChar*, const xmlChar*) {
  auto* view = static_cast<Libxml2View*>(user);
  if (--view->depth == 0) view->root_closed = true;
}

void silent(void*, xmlErrorPtr) {}

// The elements libxml2 reports when it accepts the document; nothing when it refuses it.
std::optional<std::vector<size_t>> libxml2_elements(const uint8_t* data, size_t size) {
  Libxml2View view;
  xmlSAXHandler sax{};
  sax.initialized = XML_SAX2_MAGIC;
  sax.startElementNs = on_start;
  sax.endElementNs = on_end;
  sax.serror = silent;
  xmlParserCtxtPtr parser = xmlCreatePushParserCtxt(&sax, &view, nullptr, 0, "fuzz");
  if (parser == nullptr) return std::nullopt;
  xmlCtxtUseOptions(parser, XML_PARSE_NONET | XML_PARSE_NOWARNING);
  if (size > 0)
    xmlParseChunk(parser, reinterpret_cast<const char*>(data), static_cast<int>(size), 0);
  xmlParseChunk(parser, nullptr, 0, 1);
  const bool accepted = parser->wellFormed == 1 && view.root_closed;
  if (parser->myDoc != nullptr) xmlFreeDoc(parser->myDoc);  // made for entity declarations
  parser->myDoc = nullptr;
  xmlFreeParserCtxt(parser);
  if (!accepted) return std::nullopt;
  return view.elements;
}

// Well-formed XML (as libxml2 reads it) made from the fuzzer's bytes, each a choice.
class XmlGenerator {
 public:
  XmlGenerator(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  std::string document() {
    if (pick(4) == 0)
      out_ += pick(2) == 0 ? "<?xml version='1.0'?>"
                           : "\xef\xbb\xbf<?xml version=\"1.0\" encoding='UTF-8' ?>\n";
    misc();
    if (pick(3) == 0) doctype();
    misc();
    element(0);
    misc();
    return out_;
  }

 private:
  size_t pick(size_t n) { return at_ < size_ ? data_[at_++] % n : 0; }
  bool more() const { return at_ < size_; }

  // Text that may hold anything a scan could mistake for markup, but not `forbidden`.
  std::string text(const char* pool, const std::string& forbidden = "") {
    std::string t;
    const size_t n = pick(12);
    const size_t pool_size = std::char_traits<char>::length(pool);
    for (size_t i = 0; i < n; ++i) {
      t += pool[pick(pool_size)];
      if (!forbidden.empty() && t.size() >= forbidden.size() &&
          t.compare(t.size() - forbidden.size(), forbidden.size(), forbidden) == 0) {
        t.pop_back();
      }
    }
    return t;
  }
  void comment() {
    std::string body = text("<>'\"]?-x &;[/=!", "--");
    if (!body.empty() && body.back() == '-') body.pop_back();
    out_ += "<!--" + body + "-->";
  }
  void pi() {
    out_ += "<?pi" + std::string(pick(2) == 0 ? " " : "\n") + text("<>'\"]-x &;[/=!?", "?>") + "?>";
  }
  void misc() {
    for (size_t n = pick(3); n > 0 && more(); --n) {
      switch (pick(3)) {
        case 0:
          comment();
          break;
        case 1:
          pi();
          break;
        default:
          out_ += pick(2) == 0 ? " " : "\n\t";
          break;
      }
    }
  }
  std::string quoted(const char* pool) {
    const char q = pick(2) == 0 ? '"' : '\'';
    std::string v;
    for (char c : text(pool)) v += c == q ? (q == '"' ? '\'' : '"') : c;
    return q + v + q;
  }
  void doctype() {
    out_ += "<!DOCTYPE r";
    if (pick(2) == 0) out_ += " ";
    out_ += "[";
    for (size_t n = pick(6); n > 0 && more(); --n) {
      switch (pick(5)) {
        case 0:
          comment();
          break;
        case 1:
          out_ += "<!ELEMENT " + name() + " ANY>";
          break;
        case 2:
          out_ += "<?pi x]>" + text("<>]-x[", "?>") + "?>";
          break;  // no quote: see below
        default: {
          out_ += "<!ATTLIST " + name();
          for (size_t k = pick(4); k > 0; --k) {
            const size_t kind = pick(4);
            if (kind == 0) {
              out_ += " d" + std::to_string(pick(8)) + " CDATA #IMPLIED";
            } else if (kind == 1) {
              out_ += " xmlns:n" + std::to_string(pick(3)) + " CDATA " + quoted("uxn:");
            } else {
              out_ += " d" + std::to_string(pick(8)) + (kind == 2 ? " CDATA #FIXED " : " CDATA ") +
                      quoted(">]x-;#/");
            }
          }
          out_ += ">";
        }
      }
    }
    // (A quote in a PI of the internal subset makes libxml2 wait for its match: not generated.)
    out_ += "]>";
  }
  std::string name() {
    static const char* const kNames[] = {"r", "a", "b", "p:c", "n0:e"};
    return kNames[pick(5)];
  }
  void attributes() {
    const size_t n = pick(6) == 0 ? pick(40) : pick(4);
    for (size_t i = 0; i < n; ++i) {
      out_ += pick(3) == 0 ? "\n " : " ";
      switch (pick(4)) {
        case 0:
          out_ += "xmlns:n" + std::to_string(i);
          break;
        case 1:
          out_ += "p:a" + std::to_string(i);
          break;
        default:
          out_ += "a" + std::to_string(i);
          break;
      }
      out_ += pick(4) == 0 ? " = " : "=";
      out_ += quoted(">x]-?/=;'\"!");
      if (pick(8) == 0) {
        out_.insert(out_.size() - 1, pick(2) == 0 ? "&lt;" : "&#34;");  // inside the quotes
      }
    }
    if (pick(5) == 0) out_ += " xmlns='urn:d'";
  }
  std::string escaped(std::string v) {
    std::string out;
    for (char c : v) {
      if (c == '<')
        out += "&lt;";
      else if (c == '&')
        out += "&amp;";
      else
        out += c;
    }
    return out;
  }
  void element(size_t depth) {
    // The root is r, so that the DOCTYPE's ATTLISTs for r apply to it.
    const std::string n = depth == 0 ? "r" : name();
    out_ += "<" + n;
    attributes();
    if (pick(3) == 0 || !more()) {
      out_ += pick(2) == 0 ? "/>" : " />";
      return;
    }
    out_ += ">";
    for (size_t k = pick(6); k > 0 && more(); --k) {
      switch (pick(7)) {
        case 0:
          comment();
          break;
        case 1:
          pi();
          break;
        case 2:
          out_ += "<![CDATA[" + text("<>'\"]-x&;[", "]]>") + "]]>";
          break;
        case 3:
          out_ += escaped(text("<>'\"-x&;[/=!?\n"));
          break;
        case 4:
          out_ += pick(2) == 0 ? "&amp;" : "&#62;";
          break;
        default:
          if (depth < 8) element(depth + 1);
          break;
      }
    }
    out_ += "</" + n + ">";
  }

  const uint8_t* data_;
  size_t size_;
  size_t at_ = 0;
  std::string out_;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  transfer::receiver::init_xml_library();
  xmlSetStructuredErrorFunc(nullptr, silent);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  const size_t ncuts = flags & 7;
  const size_t header = 1 + ncuts + ((flags & 8) != 0 ? 2 : 0);
  if (size < header) return 0;
  const uint8_t* doc = data + header;
  size_t doc_size = size - header;
  std::string generated;
  if ((flags & 16) != 0) {
    generated = XmlGenerator(doc, doc_size).document();
    doc = reinterpret_cast<const uint8_t*>(generated.data());
    doc_size = generated.size();
  }

  XmlConstructLimits limits;  // the defaults, or small ones that the fuzzer can reach
  if ((flags & 8) != 0) {
    const uint8_t a = data[1 + ncuts];
    const uint8_t c = data[2 + ncuts];
    limits.max_attributes = a % 40;
    limits.max_construct_bytes = 1 + uint64_t{c} * 16;
    limits.max_text_bytes = (a & 0x80) != 0 ? 1 + uint64_t{c} * 8 : 0;
  }
  std::vector<size_t> cuts;
  for (size_t i = 0; i < ncuts; ++i) cuts.push_back(data[1 + i] * doc_size / 256);
  std::sort(cuts.begin(), cuts.end());

  const Outcome whole = scan(doc, doc_size, limits, {});
  if (scan(doc, doc_size, limits, cuts) != whole) std::abort();
  if (doc_size <= 4096) {
    std::vector<size_t> every;
    for (size_t i = 1; i < doc_size; ++i) every.push_back(i);
    if (scan(doc, doc_size, limits, every) != whole) std::abort();
  }

  // Never under-counts: against what libxml2 reports of the documents it accepts.
  XmlConstructLimits unlimited;
  unlimited.max_attributes = std::numeric_limits<size_t>::max();
  unlimited.max_construct_bytes = std::numeric_limits<uint64_t>::max();
  const Outcome counted = scan(doc, doc_size, unlimited, cuts);
  if (counted.kind && *counted.kind != XmlLimitBreach::Kind::kEncoding) std::abort();
  if (counted.kind) return 0;  // refused for its encoding: XmlCheck never gives it to libxml2
  const auto elements = libxml2_elements(doc, doc_size);
  if (!elements) return 0;
  if (elements->size() != counted.tags.size()) std::abort();
  for (size_t i = 0; i < elements->size(); ++i) {
    if ((*elements)[i] > counted.tags[i]) std::abort();
  }
  // And with the limits: a document libxml2 accepts and the limiter passes has no start tag over
  // max_attributes.
  if (!whole.kind) {
    for (size_t n : *elements) {
      if (n > limits.max_attributes) std::abort();
    }
  }
  return 0;
}
