#include "xml_check.hpp"

#include <libxml/SAX2.h>
#include <libxml/dict.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/xmlerror.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "transfer/file_util.hpp"

namespace transfer::receiver {
namespace {

std::string trimmed(const char* text) {
  std::string s = text != nullptr ? text : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The client's bytes in a message (an entity's name, a DTD's address, libxml2's message quoting a
// name or a value): at most `max` bytes of them.
std::string clipped(const char* text, size_t max) {
  std::string s = trimmed(text);
  if (s.size() <= max) return s;
  while (max > 0 && (static_cast<unsigned char>(s[max]) & 0xc0) == 0x80) --max;  // whole UTF-8
  return s.substr(0, max) + "...";
}

XmlCheck* self_of(void* user) { return static_cast<XmlCheck*>(user); }

void sax_start_element(void* user, const xmlChar*, const xmlChar*, const xmlChar*,
                       int nb_namespaces, const xmlChar**, int, int, const xmlChar**) {
  self_of(user)->on_start_element(nb_namespaces);
}
void sax_end_element(void* user, const xmlChar*, const xmlChar*, const xmlChar*) {
  self_of(user)->on_end_element();
}
void sax_entity_declaration(void* user, const xmlChar* name, int, const xmlChar*, const xmlChar*,
                            xmlChar*) {
  self_of(user)->on_entity_declaration(reinterpret_cast<const char*>(name));
}
void sax_unparsed_entity_declaration(void* user, const xmlChar* name, const xmlChar*,
                                     const xmlChar*, const xmlChar*) {
  self_of(user)->on_entity_declaration(reinterpret_cast<const char*>(name));
}
void sax_internal_subset(void* user, const xmlChar*, const xmlChar* external_id,
                         const xmlChar* system_id) {
  self_of(user)->on_doctype(reinterpret_cast<const char*>(external_id),
                            reinterpret_cast<const char*>(system_id));
}
// Parser errors come with the parser context, whose _private is the check: the user data the
// parser passes is the schema plug's, not ours, when a schema is plugged in.
void parser_error(void*, xmlErrorPtr error) {
  if (error == nullptr || error->ctxt == nullptr) return;
  auto* parser = static_cast<xmlParserCtxtPtr>(error->ctxt);
  if (parser->_private != nullptr) static_cast<XmlCheck*>(parser->_private)->on_parser_error(error);
}
void schema_error(void* user, xmlErrorPtr error) { self_of(user)->on_schema_error(error); }
// Errors libxml2 raises without a parser context (the input's encoding conversion failing: "I/O
// error : encoder error") go to the thread's handler; it is this check's while it feeds the parser.
void thread_error(void* user, xmlErrorPtr error) { self_of(user)->on_parser_error(error); }

// Routes the thread's libxml2 errors to `check` for as long as it lives (an upload runs on one
// thread at a time).
class ThreadErrors {
 public:
  explicit ThreadErrors(XmlCheck* check) { xmlSetStructuredErrorFunc(check, thread_error); }
  ~ThreadErrors() { xmlSetStructuredErrorFunc(nullptr, nullptr); }
  ThreadErrors(const ThreadErrors&) = delete;
  ThreadErrors& operator=(const ThreadErrors&) = delete;
};

void collect_message(void* user, xmlErrorPtr error) {
  auto* messages = static_cast<std::vector<std::string>*>(user);
  if (error == nullptr || error->level < XML_ERR_ERROR || messages->size() >= 3) return;
  std::string where = error->line > 0 ? " (line " + std::to_string(error->line) + ")" : "";
  messages->push_back(trimmed(error->message) + where);
}

// libxml2 is fed at most this at a time, whatever the pieces the plaintext comes in: it copies
// each into its input buffer, so what it holds beyond one construct stays small.
constexpr size_t kFeedBytes = 64 * 1024;

const char* option_of(XmlLimitBreach::Kind kind) {
  switch (kind) {
    case XmlLimitBreach::Kind::kAttributes:
      return "XML_MAX_ATTRIBUTES";
    case XmlLimitBreach::Kind::kConstruct:
    case XmlLimitBreach::Kind::kText:
      return "XML_MAX_CONSTRUCT";
    case XmlLimitBreach::Kind::kEncoding:
      break;
  }
  return "";
}

}  // namespace

void init_xml_library() {
  xmlInitParser();
  xmlSetExternalEntityLoader(xmlNoNetExternalEntityLoader);
}

// --- XmlSchema ---------------------------------------------------------------------------------

Result<std::shared_ptr<const XmlSchema>> XmlSchema::load(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_error("XML_SCHEMA cannot be read:", path, errno);
  if (!S_ISREG(st.st_mode))
    return make_error(ErrorCode::kInvalidArgument, "XML_SCHEMA " + path + " is not a regular file");
  std::vector<std::string> messages;
  xmlSchemaParserCtxtPtr parser = xmlSchemaNewParserCtxt(path.c_str());
  if (parser == nullptr)
    return make_error(ErrorCode::kInvalidArgument,
                      "XML_SCHEMA " + path + ": cannot start libxml2's schema parser");
  xmlSchemaSetParserStructuredErrors(parser, collect_message, &messages);
  // The schema document's own parse errors go to the thread's handler, not the schema parser's.
  xmlSetStructuredErrorFunc(&messages, collect_message);
  xmlSchemaPtr schema = xmlSchemaParse(parser);
  xmlSetStructuredErrorFunc(nullptr, nullptr);
  xmlSchemaFreeParserCtxt(parser);
  if (schema == nullptr) {
    std::string why;
    for (const auto& m : messages) why += (why.empty() ? "" : "; ") + m;
    return make_error(ErrorCode::kInvalidArgument, "XML_SCHEMA " + path +
                                                       " is not a usable XML Schema: " +
                                                       (why.empty() ? "libxml2 refused it" : why));
  }
  return std::shared_ptr<const XmlSchema>(new XmlSchema(schema));
}

XmlSchema::~XmlSchema() { xmlSchemaFree(schema_); }

// --- SchemaFile --------------------------------------------------------------------------------

Result<std::shared_ptr<SchemaFile>> SchemaFile::load(const std::string& path) {
  const Stamp stamp = file_change_stamp(path).value_or(Stamp{});
  auto schema = XmlSchema::load(path);
  if (!schema) return schema.error();
  return std::shared_ptr<SchemaFile>(new SchemaFile(path, std::move(*schema), stamp));
}

Result<bool> SchemaFile::refresh() {
  const Stamp stamp = file_change_stamp(path_).value_or(Stamp{});
  {
    std::lock_guard lock(mu_);
    if (stamp == stamp_) {
      if (error_) return *error_;
      return false;
    }
  }
  auto schema = XmlSchema::load(path_);  // outside the lock: uploads keep taking the old one
  std::lock_guard lock(mu_);
  stamp_ = stamp;
  if (!schema) {
    error_ = schema.error();
    return schema.error();
  }
  schema_ = std::move(*schema);
  error_.reset();
  return true;
}

std::shared_ptr<const XmlSchema> SchemaFile::current() const {
  std::lock_guard lock(mu_);
  return schema_;
}

std::optional<Error> SchemaFile::error() const {
  std::lock_guard lock(mu_);
  return error_;
}

// --- XmlCheck ----------------------------------------------------------------------------------

XmlCheck::XmlCheck(XmlLimits limits, std::shared_ptr<const XmlSchema> schema)
    : limits_(limits),
      limiter_(XmlConstructLimits{limits.max_attributes, limits.max_construct_bytes,
                                  schema ? limits.max_construct_bytes : 0}),
      schema_(std::move(schema)) {
  sax_.initialized = XML_SAX2_MAGIC;  // SAX2 callbacks; nothing that builds a tree, no text
  sax_.startElementNs = sax_start_element;
  sax_.endElementNs = sax_end_element;
  sax_.entityDecl = sax_entity_declaration;
  sax_.unparsedEntityDecl = sax_unparsed_entity_declaration;
  sax_.internalSubset = sax_internal_subset;
  sax_.serror = parser_error;
}

XmlCheck::~XmlCheck() { release(); }

void XmlCheck::release() {
  if (parser_ != nullptr) {
    // Entity declarations make libxml2 build a document for "expat compatibility in SAX mode",
    // which the parser context does not own (found by fuzz_content_checks).
    if (parser_->myDoc != nullptr) xmlFreeDoc(parser_->myDoc);
    parser_->myDoc = nullptr;
    xmlFreeParserCtxt(parser_);
    parser_ = nullptr;
  }
  if (plug_ != nullptr) {
    xmlSchemaSAXUnplug(plug_);
    plug_ = nullptr;
  }
  if (validator_ != nullptr) {
    xmlSchemaFreeValidCtxt(validator_);
    validator_ = nullptr;
  }
}

void XmlCheck::start() {
  sax_in_use_ = &sax_;
  sax_user_ = this;
  if (schema_) {
    validator_ = xmlSchemaNewValidCtxt(schema_->get());
    if (validator_ == nullptr) {
      refuse("schema", "internal", "the schema validator could not start (out of memory?)");
      return;
    }
    xmlSchemaSetValidStructuredErrors(validator_, schema_error, this);
    // The plug puts the validator's handler in front of ours (ours are still called) and
    // replaces sax_in_use_ and sax_user_; the parser copies the handler it is given. Unplugging
    // writes both back, so they must outlive the plug (a local here was written after its frame
    // was gone: a corrupted stack, found by fuzz_content_checks).
    plug_ = xmlSchemaSAXPlug(validator_, &sax_in_use_, &sax_user_);
    if (plug_ == nullptr) {
      refuse("schema", "internal", "the schema validator could not be attached to the parser");
      return;
    }
    sax_in_use_->serror = parser_error;
  }
  // The first bytes go to the parser after _private is set, so every error finds this check.
  parser_ = xmlCreatePushParserCtxt(sax_in_use_, sax_user_, nullptr, 0, "upload");
  if (parser_ == nullptr) {
    refuse("xml", "internal", "the XML parser could not start (out of memory?)");
    return;
  }
  parser_->_private = this;
  xmlCtxtUseOptions(parser_, XML_PARSE_NONET | XML_PARSE_NOWARNING);
  // libxml2 allows 10 MB of names; it checks at each new pool, so it may hold up to ~1.3 times
  // this before a name is refused ("Memory allocation failed", read as too_many_names).
  xmlDictSetLimit(parser_->dict, kMaxNameBytes);
}

bool XmlCheck::update(const char* data, size_t size) {
  if (decided()) return false;
  if (size == 0) return true;
  // The whole piece is scanned first: libxml2 never sees the bytes of a document it refuses.
  if (!limiter_.update(data, size)) {
    refuse_breach(*limiter_.breach());
    return false;
  }
  if (parser_ == nullptr) {
    start();
    if (decided()) return false;
  }
  ThreadErrors errors(this);
  while (size > 0 && !decided()) {
    const size_t n = std::min(size, kFeedBytes);
    xmlParseChunk(parser_, data, static_cast<int>(n), 0);
    data += n;
    size -= n;
    if (parser_->wellFormed == 0 && !decided()) {
      refuse("xml", "not_wellformed",
             "not well-formed XML at line " + std::to_string(xmlSAX2GetLineNumber(parser_)) +
                 ": the parser stopped");
    }
    check_parser_holdings();
  }
  return !decided();
}

void XmlCheck::refuse_breach(const XmlLimitBreach& breach) {
  switch (breach.kind) {
    case XmlLimitBreach::Kind::kAttributes:
      refuse("xml", "too_many_attributes",
             "XML with " + breach.message + " (" + option_of(breach.kind) + ")");
      break;
    case XmlLimitBreach::Kind::kConstruct:
      refuse("xml", "construct_too_large",
             "XML with " + breach.message + " (" + option_of(breach.kind) +
                 "; libxml2 holds a construct whole before it reads it)");
      break;
    case XmlLimitBreach::Kind::kText:
      refuse("schema", "text_too_large",
             "XML " + breach.message + " (" + option_of(breach.kind) +
                 ": the limit while validating against a schema, which copies an element's text)");
      break;
    case XmlLimitBreach::Kind::kEncoding:
      refuse("xml", "encoding",
             breach.message +
                 ": only UTF-8 and encodings whose ASCII bytes are ASCII (US-ASCII, ISO-8859-n, "
                 "windows-125n) are accepted");
      break;
  }
}

// What the limiter cannot see from the bytes alone: how much libxml2 holds. After each piece fed
// (kFeedBytes), so the names may go up to ~16,000 over max_names before they are refused.
void XmlCheck::check_parser_holdings() {
  if (decided() || parser_ == nullptr) return;
  // Input libxml2 keeps unparsed, waiting for the end of a construct. Within the limits on
  // well-formed XML; over them only where libxml2's look-ahead differs from XML (a quote in a PI
  // in the internal subset makes it wait for a matching quote) or on malformed XML.
  const xmlParserInputPtr input = parser_->input;
  if (input != nullptr && input->cur != nullptr && input->end != nullptr) {
    const auto held = static_cast<uint64_t>(input->end - input->cur);
    // Twice: libxml2 holds a single-byte encoding converted to UTF-8 (up to 2 bytes a byte).
    if (held > 2 * limits_.max_construct_bytes + kFeedBytes) {
      refuse("xml", "construct_too_large",
             "XML for which libxml2 holds over " + std::to_string(held) +
                 " bytes unparsed at line " + std::to_string(xmlSAX2GetLineNumber(parser_)) +
                 " (XML_MAX_CONSTRUCT; it waits for the end of a construct)");
      return;
    }
  }
  if (parser_->dict != nullptr &&
      xmlDictSize(parser_->dict) > static_cast<int>(limits_.max_names)) {
    refuse("xml", "too_many_names",
           "XML with more than " + std::to_string(limits_.max_names) + " distinct names at line " +
               std::to_string(xmlSAX2GetLineNumber(parser_)) +
               " (XML_MAX_NAMES; libxml2 keeps every element, attribute and namespace name it has "
               "seen)");
  }
}

CheckVerdict XmlCheck::finish() {
  if (!decided()) {
    if (parser_ == nullptr) {
      refuse("xml", "not_wellformed",
             "not well-formed XML at line 1, column 1: the document is empty");
    } else {
      ThreadErrors errors(this);
      xmlParseChunk(parser_, nullptr, 0, 1);
      if (parser_->wellFormed == 0 && !decided()) {
        refuse("xml", "not_wellformed",
               "not well-formed XML at the end of the document: the parser stopped");
      }
      // libxml2 halts on some errors without marking the document (an encoding it cannot convert):
      // a document is only whole once its root element has ended.
      if (!decided() && !root_closed_) {
        refuse("xml", "not_wellformed",
               "not well-formed XML at line " + std::to_string(xmlSAX2GetLineNumber(parser_)) +
                   ", column " + std::to_string(xmlSAX2GetColumnNumber(parser_)) +
                   ": the root element does not end");
      }
      if (!decided() && !schema_error_.empty()) refuse("schema", "invalid", schema_error_);
      if (!decided() && validator_ != nullptr && xmlSchemaIsValid(validator_) != 1) {
        refuse("schema", "invalid", "not valid against the schema: the validator refused it");
      }
    }
  }
  release();
  return verdict_;
}

void XmlCheck::refuse(const char* check, const char* reason, std::string message,
                      bool silence_parser) {
  if (decided()) return;
  verdict_.outcome = CheckOutcome::kRefused;
  verdict_.check = check;
  verdict_.reason = reason;
  verdict_.message = std::move(message);
  // Not xmlStopParser(): in libxml2 2.9.14 it frees the input under a parse in progress (a SAX
  // callback inside xmlParseCharData, or an error handler, reads freed memory afterwards; found
  // by ThreadSanitizer and the fuzzer). The parser finishes the piece it was given without
  // calling us any more, and update() feeds it nothing further.
  if (silence_parser && parser_ != nullptr) parser_->disableSAX = 1;
}

void XmlCheck::on_start_element(int namespaces) {
  if (++depth_ > limits_.max_depth) {
    refuse("xml", "too_deep",
           "XML nested deeper than " + std::to_string(limits_.max_depth) + " elements at line " +
               std::to_string(xmlSAX2GetLineNumber(parser_)) +
               " (XML_MAX_DEPTH; libxml2 reads at most 256 by default)");
    return;
  }
  const auto declared = static_cast<uint32_t>(std::max(namespaces, 0));
  namespaces_.push_back(declared);
  namespaces_in_scope_ += declared;
  if (namespaces_in_scope_ > limits_.max_namespaces) {
    refuse("xml", "too_many_namespaces",
           "XML with more than " + std::to_string(limits_.max_namespaces) +
               " namespace declarations in scope at line " +
               std::to_string(xmlSAX2GetLineNumber(parser_)) +
               " (XML_MAX_NAMESPACES; libxml2 looks every prefix up through all of them)");
  }
}

void XmlCheck::on_end_element() {
  if (!namespaces_.empty()) {
    namespaces_in_scope_ -= namespaces_.back();
    namespaces_.pop_back();
  }
  if (depth_ > 0 && --depth_ == 0) root_closed_ = true;
}

void XmlCheck::on_entity_declaration(const char* name) {
  refuse("xml", "entity",
         "XML declaring an entity ('" + clipped(name, 64) + "') at line " +
             std::to_string(xmlSAX2GetLineNumber(parser_)) +
             ": entity declarations are not accepted");
}

void XmlCheck::on_doctype(const char* external_id, const char* system_id) {
  if (external_id == nullptr && system_id == nullptr) return;
  refuse("xml", "external_dtd",
         "XML whose DOCTYPE names an external DTD ('" +
             clipped(system_id != nullptr ? system_id : external_id, 64) + "') at line " +
             std::to_string(xmlSAX2GetLineNumber(parser_)) + ": external DTDs are not accepted");
}

void XmlCheck::on_parser_error(const void* raw) {
  const auto* error = static_cast<const xmlError*>(raw);
  // Namespace errors and other non-fatal ones pass (our sender and the old one write element
  // names with a colon and no namespace declared, as dicttoxml does); an input that cannot be
  // decoded does not.
  const bool decoding = error->domain == XML_FROM_IO || error->domain == XML_FROM_I18N;
  if (decided() || (error->level != XML_ERR_FATAL && !(decoding && error->level >= XML_ERR_ERROR)))
    return;
  if (error->code == XML_ERR_NO_MEMORY && parser_ != nullptr && parser_->dict != nullptr &&
      xmlDictGetUsage(parser_->dict) > kMaxNameBytes) {
    refuse("xml", "too_many_names",
           "XML with over " + std::to_string(kMaxNameBytes) + " bytes of distinct names at line " +
               std::to_string(xmlSAX2GetLineNumber(parser_)) +
               " (libxml2 keeps every element, attribute and namespace name it has seen)",
           /*silence_parser=*/false);
    return;
  }
  const long line =
      error->line > 0 ? error->line : (parser_ != nullptr ? xmlSAX2GetLineNumber(parser_) : 0);
  const long column =
      error->line > 0 ? error->int2 : (parser_ != nullptr ? xmlSAX2GetColumnNumber(parser_) : 0);
  // libxml2 itself stops calling SAX after a fatal error; update() stops feeding it.
  refuse("xml", "not_wellformed",
         "not well-formed XML at line " + std::to_string(line) + ", column " +
             std::to_string(column) + ": " + clipped(error->message, 256),
         /*silence_parser=*/false);
}

void XmlCheck::on_schema_error(const void* raw) {
  const auto* error = static_cast<const xmlError*>(raw);
  if (decided() || !schema_error_.empty() || error->level < XML_ERR_ERROR) return;
  // The first error is kept and the parse goes on: a document that turns out not to be XML at all
  // is refused for that. The validator plugged into a push parser knows no position; the parser's
  // is where it is.
  const long line =
      error->line > 0 ? error->line : (parser_ != nullptr ? xmlSAX2GetLineNumber(parser_) : 0);
  const long column = parser_ != nullptr ? xmlSAX2GetColumnNumber(parser_) : 0;
  schema_error_ = "not valid against the schema at line " + std::to_string(line) + ", column " +
                  std::to_string(column) + ": " + clipped(error->message, 256);
}

}  // namespace transfer::receiver
