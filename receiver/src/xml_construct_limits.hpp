#pragma once
// XmlConstructLimiter: a streaming lexical pre-scan of an upload's XML, fed the same bytes as
// libxml2 and before it, that refuses the document as soon as one construct would cost libxml2
// 2.9.14 more than a bounded amount of CPU or memory:
//   - a start tag (or empty-element tag) with more than max_attributes attributes, namespace
//     declarations included (libxml2 checks a tag's attributes for uniqueness pairwise: 160,000
//     attributes cost 10-25 s of CPU). Attribute defaults that a DOCTYPE's internal subset declares
//     (<!ATTLIST e a CDATA "x">) are added by libxml2 to every start tag of that element, so each
//     default declared anywhere in the subset counts towards every start tag (conservative);
//   - one construct of more than max_construct_bytes bytes: a start tag (its attribute values
//     included), an end tag, a comment, a processing instruction, a CDATA section, a DOCTYPE with
//     its internal subset, an entity or character reference (libxml2 reads none of these until
//     it holds the whole of it, up to 10 MB);
//   - with max_text_bytes set, more than that of text in one element: character data, references
//     and CDATA sections between two tags, comments and processing instructions not ending the
//     run (libxml2 streams text, but a schema validator copies an element's text);
//   - bytes that are not in an ASCII-compatible encoding, as libxml2 detects it from the first
//     bytes (UTF-16, UCS-4, EBCDIC) or from the XML declaration (anything but UTF-8, US-ASCII,
//     ISO-8859-n and windows-125n): in those a byte that looks like '<', '>' or a quote may be
//     part of another character, so the scan could not follow the document.
// Contract: on well-formed XML (XML 1.0 with namespaces, as libxml2 reads it) the scan follows
// the document's lexical structure exactly: quotes in tags and in the DOCTYPE, '>' inside
// attribute values, '<' inside comments, CDATA sections and processing instructions, the
// terminators -->, ?>, ]]>, and comments, processing instructions and quoted strings in the
// internal subset. Its count of a start tag's attributes is never below what libxml2 reports for
// that element (attributes, defaults and namespace declarations). The verdict depends only on the
// bytes, never on how they are cut into update() calls. On malformed XML it keeps counting some
// construct at every byte but text (so what libxml2 buffers stays bounded until it stops at its
// own error) and never fails otherwise; which construct it blames may then differ from libxml2's.
// Line numbers count '\n'. Memory: a few hundred bytes, whatever the input.
// Thread-safety: none; one limiter per upload.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>

namespace transfer::receiver {

struct XmlConstructLimits {
  size_t max_attributes = 32;                 // per start tag: attributes + xmlns + DTD defaults
  uint64_t max_construct_bytes = 1ULL << 20;  // one tag, comment, PI, CDATA, DOCTYPE, reference
  uint64_t max_text_bytes = 0;                // text in one element between two tags; 0: no limit
};

struct XmlLimitBreach {
  enum class Kind {
    kAttributes,  // max_attributes
    kConstruct,   // max_construct_bytes
    kText,        // max_text_bytes
    kEncoding,    // not an encoding the scan can follow
  };
  Kind kind;
  // What and where, e.g. "a comment of over 1048576 bytes at line 3"; at most the first 32 bytes
  // of a name or encoding are quoted, anything but printable ASCII as '?'.
  std::string message;
};

class XmlConstructLimiter {
 public:
  explicit XmlConstructLimiter(XmlConstructLimits limits) : limits_(limits) {}

  // The next bytes of the document. Returns false once a limit is broken (breach() says which);
  // the bytes after the one that broke it are not read, and later calls return false at once.
  bool update(const char* data, size_t size);
  const std::optional<XmlLimitBreach>& breach() const { return breach_; }

  // For tests and the fuzzer: called at the end of every start tag the scan reads whole, with the
  // count it held the tag to.
  void observe_start_tags(std::function<void(size_t attributes)> observer) {
    observer_ = std::move(observer);
  }

 private:
  enum class State : uint8_t {
    kText,           // character data (content, prolog, epilog)
    kReference,      // after '&' in text, up to ';'
    kLt,             // after '<'
    kTagName,        // a start tag's name
    kTagSpace,       // in a start tag, between attributes
    kAttrName,       // an attribute's name
    kAttrAfterName,  // between an attribute's name and '='
    kAttrEq,         // after '=', before the value's quote
    kTagSlash,       // after '/' in a start tag
    kEndTag,         // after "</", up to '>'
    kQuoted,         // a quoted string; back to return_ after the closing quote_
    kBang,           // after "<!": "--", "[CDATA[" or "DOCTYPE" follows
    kBogus,          // "<!" followed by none of those: up to '>' (libxml2 refuses it)
    kComment,        // after "<!--", up to "-->"
    kPi,             // after "<?", up to "?>"
    kCdata,          // after "<![CDATA[", up to "]]>"
    kDoctype,        // after "<!DOCTYPE", outside the internal subset
    kSubset,         // in the internal subset, between declarations
    kSubsetLt,       // after '<' in the internal subset
    kSubsetBang,     // after "<!" in the internal subset: "--" or a declaration
    kSubsetDecl,     // a markup declaration (<!ELEMENT, <!ATTLIST, ...), up to '>'
    kSubsetClose,    // after the subset's ']', up to '>'
  };
  // The construct being read, for messages.
  enum class Construct : uint8_t {
    kNone,
    kMarkup,
    kStartTag,
    kEndTag,
    kComment,
    kPi,
    kCdata,
    kDoctype,
    kReference,
    kDeclaration,
  };

  const unsigned char* scan(const unsigned char* p, const unsigned char* end);
  const unsigned char* read_plain_tag(const unsigned char* lt);
  bool detect_encoding(unsigned char c);
  void begin(Construct construct, const unsigned char* first);
  void set_limit(const unsigned char* p);
  void resolve_construct_line();
  void begin_declaration();
  void end_construct();
  void end_inner();
  void end_start_tag();
  void quote(unsigned char c, State back);
  void add_attribute();
  void count_text(uint64_t n);
  // Counts [p, q) as text; returns q, or the byte after the one over max_text_bytes.
  const unsigned char* count_text(const unsigned char* p, const unsigned char* q);
  void read_declaration(unsigned char c);
  void check_declaration();
  void fail_attributes();
  void fail_construct();
  void fail(XmlLimitBreach::Kind kind, std::string message);

  XmlConstructLimits limits_;
  State state_ = State::kText;
  State return_ = State::kText;  // where kQuoted goes back to
  Construct construct_ = Construct::kNone;
  unsigned char quote_ = 0;
  bool in_subset_ = false;     // comments and PIs return to kSubset, and are part of the DOCTYPE
  bool keyword_done_ = false;  // the declaration's keyword (ATTLIST, ELEMENT, ...) is read
  bool attlist_ = false;       // the declaration being read is an <!ATTLIST
  bool decl_ = false;          // the PI being read opens the document: maybe the XML declaration
  bool name_cut_ = false;      // name_ holds only the start of the tag's name
  bool text_over_ = false;     // scan() read the byte one over max_text_bytes
  uint64_t run_ = 0;           // '-', '?' or ']' just before, towards a terminator
  uint64_t offset_ = 0;        // bytes read
  uint64_t line_ = 1;
  uint64_t construct_start_ = 0;  // offset of the construct's first byte
  uint64_t construct_line_ = 1;
  uint64_t text_bytes_ = 0;
  uint64_t document_start_ = 0;  // 3 after UTF-8's byte order mark
  size_t attributes_ = 0;
  size_t dtd_defaults_ = 0;     // default values in the internal subset's ATTLISTs
  unsigned char head_[4] = {};  // the first bytes, for the encoding
  std::string word_;            // after "<!": the keyword so far (at most 8 bytes)
  std::string name_;            // the start tag's name (at most 32 bytes)
  std::string declaration_;     // the XML declaration (at most 1024 bytes)
  // While scan() reads a piece: where it began (line_ and offset_ are there), where it ends, how
  // far the open construct may go, and where it began if in this piece and its line is not known.
  const unsigned char* segment_ = nullptr;
  const unsigned char* segment_end_ = nullptr;
  const unsigned char* limit_ = nullptr;
  const unsigned char* construct_first_ = nullptr;
  std::optional<XmlLimitBreach> breach_;
  std::function<void(size_t)> observer_;
};

}  // namespace transfer::receiver
