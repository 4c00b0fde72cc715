#include "xml_construct_limits.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>

namespace transfer::receiver {
namespace {

constexpr size_t kMaxName = 32;           // bytes of a tag's name kept for messages
constexpr size_t kMaxDeclaration = 1024;  // bytes of the XML declaration read for its encoding

bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_quote(unsigned char c) { return c == '"' || c == '\''; }

// Client bytes for a message: printable ASCII only.
std::string printable(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c < 0x21 || c > 0x7e) c = '?';
  }
  return out;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

bool number_in(std::string_view digits, int low, int high) {
  if (digits.empty() || digits.size() > 2) return false;
  int n = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + (c - '0');
  }
  return n >= low && n <= high;
}

// Encodings in which every byte below 0x80 is that ASCII character: UTF-8 and the single-byte
// supersets of ASCII, under the names libxml2 and iconv know them by.
bool ascii_compatible(std::string_view encoding) {
  const std::string e = upper(encoding);
  if (e == "UTF-8" || e == "UTF8" || e == "US-ASCII" || e == "ASCII" || e == "LATIN1" ||
      e == "ISO-LATIN-1") {
    return true;
  }
  for (std::string_view prefix : {"ISO-8859-", "ISO_8859-", "ISO8859-"}) {
    if (e.compare(0, prefix.size(), prefix) == 0) {
      const std::string_view part = std::string_view(e).substr(prefix.size());
      return number_in(part, 1, 16) && part != "12";  // there is no ISO-8859-12
    }
  }
  for (std::string_view prefix : {"WINDOWS-125", "CP125"}) {
    if (e.compare(0, prefix.size(), prefix) == 0) {
      return number_in(std::string_view(e).substr(prefix.size()), 0, 8) &&
             e.size() == prefix.size() + 1;
    }
  }
  return false;
}

// The encoding pseudo-attribute of an XML declaration's body (after "xml", before "?>"); none when
// it has none or the body does not read as name="value" pairs (libxml2 then refuses the
// declaration itself, before it parses anything further).
std::optional<std::string> declared_encoding(std::string_view body) {
  size_t at = 0;
  auto skip_spaces = [&] {
    while (at < body.size() && is_space(static_cast<unsigned char>(body[at]))) ++at;
  };
  while (true) {
    skip_spaces();
    if (at == body.size()) return std::nullopt;
    const size_t name_start = at;
    while (at < body.size() && body[at] != '=' && !is_space(static_cast<unsigned char>(body[at])))
      ++at;
    const std::string_view name = body.substr(name_start, at - name_start);
    skip_spaces();
    if (at == body.size() || body[at] != '=') return std::nullopt;
    ++at;
    skip_spaces();
    if (at == body.size() || !is_quote(static_cast<unsigned char>(body[at]))) return std::nullopt;
    const char quote = body[at++];
    const size_t end = body.find(quote, at);
    if (end == std::string_view::npos) return std::nullopt;
    if (name == "encoding") return std::string(body.substr(at, end - at));
    at = end + 1;
  }
}

}  // namespace

bool XmlConstructLimiter::update(const char* data, size_t size) {
  if (breach_) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  size_t i = 0;
  while (i < size) {
    // A run of bytes that only adds to the counts, taken at once.
    const size_t run = offset_ >= 4 ? plain_run(p + i, size - i) : 0;
    if (run > 0) {
      take_plain_run(p + i, run);
      i += run;
      if (breach_) return false;
      continue;
    }
    const unsigned char c = p[i++];
    if (offset_ < 4 && !detect_encoding(c)) return false;
    ++offset_;
    if (c == '\n') ++line_;
    if (construct_ != Construct::kNone && ++construct_bytes_ > limits_.max_construct_bytes) {
      fail_construct();
      return false;
    }
    step(c);
    if (breach_) return false;
  }
  return true;
}

// Bytes from `p` on that change no state, only counts: text, a quoted string, the inside of a
// comment, PI or CDATA section up to a byte that may start its terminator.
size_t XmlConstructLimiter::plain_run(const unsigned char* p, size_t n) const {
  const unsigned char* end = p + n;
  const unsigned char* q = p;
  switch (state_) {
    case State::kText:
      while (q < end && *q != '<' && *q != '&') ++q;
      break;
    case State::kQuoted:
      q = static_cast<const unsigned char*>(std::memchr(p, quote_, n));
      if (q == nullptr) q = end;
      break;
    case State::kComment:
      while (q < end && *q != '-' && *q != '>') ++q;
      break;
    case State::kPi:
      if (!decl_) {
        while (q < end && *q != '?' && *q != '>') ++q;
      }
      break;
    case State::kCdata:
      if (run_ == 0) {
        while (q < end && *q != ']' && *q != '>') ++q;
      }
      break;
    default:
      break;
  }
  return static_cast<size_t>(q - p);
}

// Counts a plain run as its bytes one by one would: cut short at the byte that breaks a limit.
void XmlConstructLimiter::take_plain_run(const unsigned char* p, size_t n) {
  const bool text = state_ == State::kText || state_ == State::kCdata;
  const bool construct = construct_ != Construct::kNone;
  uint64_t take = n;
  // Up to and including the byte one over a limit (written so that no sum overflows).
  if (construct && limits_.max_construct_bytes - construct_bytes_ < take) {
    take = limits_.max_construct_bytes - construct_bytes_ + 1;
  }
  if (text && limits_.max_text_bytes > 0 && limits_.max_text_bytes - text_bytes_ < take) {
    take = limits_.max_text_bytes - text_bytes_ + 1;
  }
  line_ += static_cast<uint64_t>(std::count(p, p + take, '\n'));
  offset_ += take;
  if (state_ == State::kComment || state_ == State::kPi) run_ = 0;
  if (construct && (construct_bytes_ += take) > limits_.max_construct_bytes) {
    fail_construct();
    return;
  }
  if (text) count_text(take);
}

bool XmlConstructLimiter::detect_encoding(unsigned char c) {
  // As libxml2 does (xmlDetectCharEncoding) from the first four bytes.
  head_[offset_] = c;
  if (offset_ == 1 &&
      ((head_[0] == 0xfe && head_[1] == 0xff) || (head_[0] == 0xff && head_[1] == 0xfe))) {
    fail(XmlLimitBreach::Kind::kEncoding, "XML in UTF-16 (a byte order mark)");
  } else if (offset_ == 2 && head_[0] == 0xef && head_[1] == 0xbb && head_[2] == 0xbf) {
    document_start_ = 3;  // UTF-8's byte order mark
  } else if (offset_ == 3) {
    const uint32_t w = (uint32_t{head_[0]} << 24) | (uint32_t{head_[1]} << 16) |
                       (uint32_t{head_[2]} << 8) | uint32_t{head_[3]};
    if (w == 0x0000003c || w == 0x3c000000 || w == 0x00003c00 || w == 0x003c0000) {
      fail(XmlLimitBreach::Kind::kEncoding, "XML in UCS-4");
    } else if (w == 0x003c003f || w == 0x3c003f00) {
      fail(XmlLimitBreach::Kind::kEncoding, "XML in UTF-16");
    } else if (w == 0x4c6fa794) {
      fail(XmlLimitBreach::Kind::kEncoding, "XML in EBCDIC");
    }
  }
  return !breach_;
}

void XmlConstructLimiter::step(unsigned char c) {
  switch (state_) {
    case State::kText:
      if (c == '<') {
        begin(Construct::kMarkup);
        state_ = State::kLt;
      } else if (c == '&') {
        begin(Construct::kReference);
        count_text(1);
        state_ = State::kReference;
      } else {
        count_text(1);
      }
      break;
    case State::kReference:
      count_text(1);
      if (c == ';') end_construct();
      break;
    case State::kLt:
      if (c == '/') {
        construct_ = Construct::kEndTag;
        text_bytes_ = 0;
        state_ = State::kEndTag;
      } else if (c == '?') {
        construct_ = Construct::kPi;
        run_ = 0;
        decl_ = construct_start_ == document_start_;
        declaration_.clear();
        state_ = State::kPi;
      } else if (c == '!') {
        word_.clear();
        state_ = State::kBang;
      } else {
        construct_ = Construct::kStartTag;
        text_bytes_ = 0;
        attributes_ = dtd_defaults_;
        name_.clear();
        name_cut_ = false;
        state_ = State::kTagName;
        step(c);
      }
      break;
    case State::kTagName:
      if (is_space(c)) {
        state_ = State::kTagSpace;
      } else if (c == '>') {
        end_start_tag();
      } else if (c == '/') {
        state_ = State::kTagSlash;
      } else if (is_quote(c)) {
        quote(c, State::kTagSpace);  // libxml2 refuses it; its look-ahead takes it as a quote
      } else if (name_.size() < kMaxName) {
        name_ += static_cast<char>(c);
      } else {
        name_cut_ = true;
      }
      break;
    case State::kTagSpace:
      if (is_space(c)) break;
      if (c == '>') {
        end_start_tag();
      } else if (c == '/') {
        state_ = State::kTagSlash;
      } else if (is_quote(c)) {
        quote(c, State::kTagSpace);
      } else {
        add_attribute();
        state_ = State::kAttrName;
      }
      break;
    case State::kAttrName:
      if (c == '=') {
        state_ = State::kAttrEq;
      } else if (is_space(c)) {
        state_ = State::kAttrAfterName;
      } else if (c == '>') {
        end_start_tag();
      } else if (is_quote(c)) {
        quote(c, State::kTagSpace);
      }
      break;
    case State::kAttrAfterName:
      if (c == '=') {
        state_ = State::kAttrEq;
      } else if (!is_space(c)) {
        state_ = State::kTagSpace;  // libxml2 refuses a name without a value
        step(c);
      }
      break;
    case State::kAttrEq:
      if (is_quote(c)) {
        quote(c, State::kTagSpace);
      } else if (!is_space(c)) {
        state_ = State::kTagSpace;  // libxml2 refuses a value without quotes
        step(c);
      }
      break;
    case State::kTagSlash:
      if (c == '>') {
        end_start_tag();
      } else {
        state_ = State::kTagSpace;
        step(c);
      }
      break;
    case State::kEndTag:
      if (c == '>') {
        end_construct();
      } else if (is_quote(c)) {
        quote(c, State::kEndTag);  // libxml2 refuses it; its look-ahead takes it as a quote
      }
      break;
    case State::kQuoted:
      if (c == quote_) state_ = return_;
      break;
    case State::kBang:
      word_ += static_cast<char>(c);
      if (word_ == "--") {
        construct_ = Construct::kComment;
        run_ = 0;
        state_ = State::kComment;
      } else if (word_ == "[CDATA[") {
        construct_ = Construct::kCdata;
        run_ = 0;
        state_ = State::kCdata;
      } else if (word_ == "DOCTYPE") {
        construct_ = Construct::kDoctype;
        state_ = State::kDoctype;
      } else if (std::string_view("--").substr(0, word_.size()) != word_ &&
                 std::string_view("[CDATA[").substr(0, word_.size()) != word_ &&
                 std::string_view("DOCTYPE").substr(0, word_.size()) != word_) {
        construct_ = Construct::kDeclaration;  // libxml2 refuses it
        state_ = State::kBogus;
        step(c);
      }
      break;
    case State::kBogus:
      if (c == '>') end_construct();
      break;
    case State::kComment:
      if (c == '-') {
        if (run_ < 2) ++run_;
      } else if (c == '>' && run_ == 2) {
        end_inner();
      } else {
        run_ = 0;
      }
      break;
    case State::kPi:
      if (decl_) read_declaration(c);
      if (breach_) break;
      if (c == '?') {
        run_ = 1;
      } else if (c == '>' && run_ == 1) {
        if (decl_) check_declaration();
        decl_ = false;
        if (!breach_) end_inner();
      } else {
        run_ = 0;
      }
      break;
    case State::kCdata:
      if (c == ']') {
        ++run_;
      } else if (c == '>' && run_ >= 2) {
        count_text(run_ - 2);  // the ']' before the last two are text
        run_ = 0;
        if (!breach_) end_construct();
      } else {
        count_text(run_ + 1);
        run_ = 0;
      }
      break;
    case State::kDoctype:
      if (c == '[') {
        in_subset_ = true;
        state_ = State::kSubset;
      } else if (c == '>') {
        end_construct();
      } else if (is_quote(c)) {
        quote(c, State::kDoctype);
      }
      break;
    case State::kSubset:
      if (c == '<') {
        state_ = State::kSubsetLt;
      } else if (c == ']') {
        state_ = State::kSubsetClose;
      } else if (is_quote(c)) {
        quote(c, State::kSubset);  // libxml2 refuses it; its look-ahead takes it as a quote
      }
      break;
    case State::kSubsetLt:
      if (c == '!') {
        word_.clear();
        state_ = State::kSubsetBang;
      } else if (c == '?') {
        run_ = 0;
        decl_ = false;
        state_ = State::kPi;
      } else {
        begin_declaration();  // libxml2 refuses it
        step(c);
      }
      break;
    case State::kSubsetBang:
      if (word_.empty() && c == '-') {
        word_ = "-";
      } else if (word_ == "-" && c == '-') {
        run_ = 0;
        state_ = State::kComment;
      } else {
        begin_declaration();
        step(c);
      }
      break;
    case State::kSubsetDecl:
      if (!keyword_done_) {
        if (c >= 'A' && c <= 'Z' && word_.size() < 8) {
          word_ += static_cast<char>(c);
        } else {
          keyword_done_ = true;
          attlist_ = word_ == "ATTLIST";
        }
      }
      if (c == '>') {
        state_ = State::kSubset;
      } else if (is_quote(c)) {
        if (keyword_done_ && attlist_) ++dtd_defaults_;  // a default value: AttValue is quoted
        quote(c, State::kSubsetDecl);
      }
      break;
    case State::kSubsetClose:
      if (c == '>') {
        in_subset_ = false;
        end_construct();
      } else if (c != ']' && !is_space(c)) {
        state_ = State::kSubset;  // libxml2 refuses it
        step(c);
      }
      break;
  }
}

void XmlConstructLimiter::begin(Construct construct) {
  construct_ = construct;
  construct_bytes_ = 1;
  construct_line_ = line_;
  construct_start_ = offset_ - 1;
  if (construct_bytes_ > limits_.max_construct_bytes) fail_construct();
}

void XmlConstructLimiter::begin_declaration() {
  word_.clear();
  keyword_done_ = false;
  attlist_ = false;
  state_ = State::kSubsetDecl;
}

void XmlConstructLimiter::end_construct() {
  construct_ = Construct::kNone;
  state_ = State::kText;
}

void XmlConstructLimiter::end_inner() {
  if (in_subset_) {
    state_ = State::kSubset;  // a comment or PI in the internal subset is part of the DOCTYPE
  } else {
    end_construct();
  }
}

void XmlConstructLimiter::quote(unsigned char c, State back) {
  quote_ = c;
  return_ = back;
  state_ = State::kQuoted;
}

void XmlConstructLimiter::add_attribute() {
  if (++attributes_ > limits_.max_attributes) fail_attributes();
}

void XmlConstructLimiter::end_start_tag() {
  if (attributes_ > limits_.max_attributes) {  // the DTD's defaults alone
    fail_attributes();
    return;
  }
  if (observer_) observer_(attributes_);
  end_construct();
}

void XmlConstructLimiter::count_text(uint64_t n) {
  if (limits_.max_text_bytes == 0) return;
  text_bytes_ += n;
  if (text_bytes_ > limits_.max_text_bytes) {
    fail(XmlLimitBreach::Kind::kText, "text of over " + std::to_string(limits_.max_text_bytes) +
                                          " bytes in one element at line " + std::to_string(line_));
  }
}

void XmlConstructLimiter::read_declaration(unsigned char c) {
  if (declaration_.size() < kMaxDeclaration) {
    declaration_ += static_cast<char>(c);
    // "xml" and a space open the XML declaration; any other PI target does not.
    if (declaration_.size() == 4 && !(declaration_.compare(0, 3, "xml") == 0 &&
                                      is_space(static_cast<unsigned char>(declaration_[3])))) {
      decl_ = false;
    }
    return;
  }
  fail(XmlLimitBreach::Kind::kEncoding,
       "an XML declaration of over " + std::to_string(kMaxDeclaration) + " bytes");
}

void XmlConstructLimiter::check_declaration() {
  // declaration_: what follows "<?", "?>" included.
  if (declaration_.size() < 6 || declaration_.compare(0, 3, "xml") != 0 ||
      !is_space(static_cast<unsigned char>(declaration_[3]))) {
    return;
  }
  const std::string_view body = std::string_view(declaration_).substr(3, declaration_.size() - 5);
  const auto encoding = declared_encoding(body);
  if (encoding && !ascii_compatible(*encoding)) {
    fail(XmlLimitBreach::Kind::kEncoding,
         "XML declaring encoding '" + printable(std::string_view(*encoding).substr(0, kMaxName)) +
             "'");
  }
}

void XmlConstructLimiter::fail_attributes() {
  std::string message = "a start tag <" + printable(name_) + (name_cut_ ? "..." : "") +
                        "> with more than " + std::to_string(limits_.max_attributes) +
                        " attributes and namespace declarations at line " +
                        std::to_string(construct_line_);
  if (dtd_defaults_ > 0) {
    message += " (counting the " + std::to_string(dtd_defaults_) +
               " attribute defaults the DTD declares, which libxml2 may add to any element)";
  }
  fail(XmlLimitBreach::Kind::kAttributes, std::move(message));
}

void XmlConstructLimiter::fail_construct() {
  std::string what;
  switch (construct_) {
    case Construct::kStartTag:
      what = "a start tag <" + printable(name_) + (name_cut_ ? "..." : "") + ">";
      if (state_ == State::kQuoted && return_ == State::kTagSpace)
        what += " (in an attribute value)";
      break;
    case Construct::kEndTag:
      what = "an end tag";
      break;
    case Construct::kComment:
      what = "a comment";
      break;
    case Construct::kPi:
      what = "a processing instruction";
      break;
    case Construct::kCdata:
      what = "a CDATA section";
      break;
    case Construct::kDoctype:
      what = "a DOCTYPE declaration (its internal subset included)";
      break;
    case Construct::kReference:
      what = "an entity or character reference";
      break;
    case Construct::kDeclaration:
      what = "a markup declaration";
      break;
    case Construct::kMarkup:
    case Construct::kNone:
      what = "markup";
      break;
  }
  fail(XmlLimitBreach::Kind::kConstruct, what + " of over " +
                                             std::to_string(limits_.max_construct_bytes) +
                                             " bytes at line " + std::to_string(construct_line_));
}

void XmlConstructLimiter::fail(XmlLimitBreach::Kind kind, std::string message) {
  if (!breach_) breach_ = XmlLimitBreach{kind, std::move(message)};
}

}  // namespace transfer::receiver
