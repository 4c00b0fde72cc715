#pragma once
// XML checks on an upload's plaintext, streaming (XML_CHECK=wellformed, XML_SCHEMA=<xsd>).
// libxml2's push parser is fed the plaintext as it is decrypted, with a SAX handler that builds
// no tree. Its default limits stay on (no XML_PARSE_HUGE), because they are what the consumers
// behind the receiver read on default settings. Each piece goes first through an
// XmlConstructLimiter (xml_construct_limits.hpp), so that what one upload costs libxml2 stays
// bounded in CPU and memory (XmlLimits below): libxml2 checks a start tag's attributes pairwise
// (quadratic), and holds a whole tag, comment, PI, CDATA section or DOCTYPE before it parses it
// (up to 10 MB, twice over). Text between tags is streamed in small pieces, whatever its length,
// except with a schema: the validator copies an element's text to check its type, so then an
// element's text is held to max_construct_bytes as well. Bounded here too, from what libxml2
// reports: the namespace declarations in scope (libxml2 looks every prefix, and every element
// without one, up through all of them) and the distinct names (libxml2 keeps each name it has seen
// in a dictionary whose lookups slow down past ~16,000 of them).
// Refused as well: nesting deeper than XmlLimits::max_depth (as MAX_DEPTH on our sender makes it),
// any entity declaration (no entity expansion at all, so no "billion laughs") and a DTD that
// names an external subset (a consumer that loads it would fetch from the network). No network,
// no DTD loading, no entity substitution (XML_PARSE_NONET without XML_PARSE_NOENT/DTDLOAD).
// Thread-safety: an XmlCheck is one upload's; an XmlSchema is shared, read-only, by any number of
// concurrent validations; SchemaFile is thread-safe.

#include <libxml/xmlschemas.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "plaintext_check.hpp"
#include "transfer/file_util.hpp"
#include "transfer/result.hpp"
#include "xml_construct_limits.hpp"

namespace transfer::receiver {

// Once per process, before any thread parses: libxml2's globals, and an entity loader that never
// uses the network.
void init_xml_library();

// What one upload may make libxml2 hold or do. Defaults measured with bench/xml_limits.sh: with all
// of them near their limit at once one upload's XmlCheck holds 9 MiB (12 MiB beside a thread), and
// no document within them costs more than ~8 times the CPU of plain XML of its size.
struct XmlLimits {
  size_t max_depth = 256;  // elements nested, the root included: libxml2's default limit
  // XML_MAX_ATTRIBUTES: attributes per start tag, namespace declarations and the attribute
  // defaults a DTD declares included. dicttoxml, whose output our sender reproduces, writes at
  // most 2; libxml2's pairwise check costs 10-25 s of CPU for one tag of 160,000.
  size_t max_attributes = 32;
  // XML_MAX_CONSTRUCT: bytes of one tag, comment, PI, CDATA section, DOCTYPE or reference, and
  // with a schema of one element's text. libxml2 allows 10 MB and holds 2 to 2.7 times as much.
  uint64_t max_construct_bytes = 1ULL << 20;
  // XML_MAX_NAMESPACES: namespace declarations in scope at once, on all open
  // elements. libxml2 looks every prefix, and every element without one, up through all of them.
  size_t max_namespaces = 64;
  // XML_MAX_NAMES: distinct names libxml2 keeps (element, attribute, prefix,
  // namespace URI, PI target). Its dictionary's lookups slow down linearly past ~16,000 entries,
  // so its cost grows with their square. Checked once a piece (up to ~16,000 more), and their
  // bytes held to about kMaxNameBytes (libxml2 allocates in growing pools).
  size_t max_names = 100'000;
};

inline constexpr size_t kMaxNameBytes = 1U << 20;

// A compiled XML Schema (XSD 1.0).
class XmlSchema {
 public:
  // kInvalidArgument with libxml2's first messages when the file is not a usable schema.
  static Result<std::shared_ptr<const XmlSchema>> load(const std::string& path);
  ~XmlSchema();
  XmlSchema(const XmlSchema&) = delete;
  XmlSchema& operator=(const XmlSchema&) = delete;
  xmlSchemaPtr get() const { return schema_; }

 private:
  explicit XmlSchema(xmlSchemaPtr schema) : schema_(schema) {}
  xmlSchemaPtr schema_;
};

// XML_SCHEMA, reloaded as the key file is: refresh() re-reads the file when its size, mtime or
// inode changed; a file that no longer loads keeps the schema loaded before and is reported by
// error() until fixed. (Only the named file is watched, not the files it includes or imports.)
class SchemaFile {
 public:
  static Result<std::shared_ptr<SchemaFile>> load(const std::string& path);
  // Ok(true) when a new schema was taken.
  Result<bool> refresh();
  std::shared_ptr<const XmlSchema> current() const;
  std::optional<Error> error() const;
  const std::string& path() const { return path_; }

 private:
  using Stamp = FileChangeStamp;
  SchemaFile(std::string path, std::shared_ptr<const XmlSchema> schema, Stamp stamp)
      : path_(std::move(path)), schema_(std::move(schema)), stamp_(stamp) {}

  std::string path_;
  mutable std::mutex mu_;
  std::shared_ptr<const XmlSchema> schema_;
  Stamp stamp_;
  std::optional<Error> error_;
};

// Well-formed, within the limits, and valid against `schema` when one is given.
class XmlCheck : public PlaintextCheck {
 public:
  explicit XmlCheck(XmlLimits limits, std::shared_ptr<const XmlSchema> schema = nullptr);
  ~XmlCheck() override;
  XmlCheck(const XmlCheck&) = delete;
  XmlCheck& operator=(const XmlCheck&) = delete;

  bool update(const char* data, size_t size) override;
  CheckVerdict finish() override;

  // libxml2's callbacks (C linkage through static functions in the .cpp).
  void on_start_element(int namespaces);
  void on_end_element();
  void on_entity_declaration(const char* name);
  void on_doctype(const char* external_id, const char* system_id);
  void on_parser_error(const void* error);
  void on_schema_error(const void* error);

 private:
  // silence_parser: no more SAX callbacks for the rest of the piece being parsed.
  void refuse(const char* check, const char* reason, std::string message,
              bool silence_parser = true);
  bool decided() const { return verdict_.outcome != CheckOutcome::kPassed; }
  void start();  // at the first byte: an empty plaintext never starts a parser
  void release();
  void refuse_breach(const XmlLimitBreach& breach);
  void check_parser_holdings();

  XmlLimits limits_;
  XmlConstructLimiter limiter_;  // sees every byte before libxml2 does
  std::shared_ptr<const XmlSchema> schema_;
  xmlSAXHandler sax_{};
  xmlSAXHandlerPtr sax_in_use_ = nullptr;  // ours, or the schema validator's plugged over it
  // The user data the parser hands the handler in use. A member, not a local of start():
  // xmlSchemaSAXUnplug writes the original back through the pointer it was given at plug time.
  void* sax_user_ = nullptr;
  xmlParserCtxtPtr parser_ = nullptr;
  xmlSchemaValidCtxtPtr validator_ = nullptr;
  xmlSchemaSAXPlugPtr plug_ = nullptr;
  size_t depth_ = 0;
  bool root_closed_ = false;          // the root element ended
  std::vector<uint32_t> namespaces_;  // declared by each open element
  size_t namespaces_in_scope_ = 0;    // their sum
  std::string schema_error_;          // the validator's first error
  CheckVerdict verdict_;
};

}  // namespace transfer::receiver
