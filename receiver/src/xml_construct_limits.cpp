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

// The '\n' in [p, end), eight bytes at a time: in x = word ^ "\n\n\n\n\n\n\n\n", a byte is 0
// exactly where word has a '\n', and ~(((x & 0x7f..) + 0x7f..) | x | 0x7f..) has the top bit of
// exactly those bytes set (no carry crosses a byte); a multiplication adds them up.
uint64_t count_lines(const unsigned char* p, const unsigned char* end) {
  constexpr uint64_t kNewlines = 0x0a0a0a0a0a0a0a0aULL;
  constexpr uint64_t kLow7 = 0x7f7f7f7f7f7f7f7fULL;
  uint64_t lines = 0;
  for (; end - p >= 8; p += 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    const uint64_t x = word ^ kNewlines;
    const uint64_t marks = ~(((x & kLow7) + kLow7) | x | kLow7) >> 7;  // 1 in each such byte
    lines += (marks * 0x0101010101010101ULL) >> 56;                    // their sum, in the top byte
  }
  for (; p < end; ++p) lines += *p == '\n' ? 1 : 0;
  return lines;
}

}  // namespace

bool XmlConstructLimiter::update(const char* data, size_t size) {
  if (breach_) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  const unsigned char* const end = p + size;
  while (p < end) {
    const unsigned char* stop = end;
    if (offset_ < 4) {  // one byte at a time until the encoding is known
      if (!detect_encoding(*p)) return false;
      stop = p + 1;
    }
    const unsigned char* q = scan(p, stop);
    if (construct_first_ != nullptr) {  // a construct began in the piece: its line, on the way
      const unsigned char* first = construct_first_;
      resolve_construct_line();
      line_ = construct_line_ + count_lines(first, q);
    } else {
      line_ += count_lines(p, q);
    }
    offset_ += static_cast<uint64_t>(q - p);
    p = q;
    if (text_over_) {
      fail(XmlLimitBreach::Kind::kText, "text of over " + std::to_string(limits_.max_text_bytes) +
                                            " bytes in one element at line " +
                                            std::to_string(line_));
    }
    if (breach_) return false;
  }
  return true;
}

namespace {

// A set of bytes, for the runs scan() reads up to one of them.
struct ByteSet {
  bool has[256] = {};
  constexpr ByteSet(std::string_view bytes, bool spaces) {
    for (char c : bytes) has[static_cast<unsigned char>(c)] = true;
    if (spaces) {
      for (char c : std::string_view(" \t\n\r")) has[static_cast<unsigned char>(c)] = true;
    }
  }
};

constexpr ByteSet kTextEnd("<&", false);
constexpr ByteSet kReferenceEnd(";", false);
constexpr ByteSet kNameEnd(">/\"'", true);
constexpr ByteSet kAttrNameEnd("=>\"'", true);
constexpr ByteSet kEndTagEnd(">\"'", false);
constexpr ByteSet kGt(">", false);
constexpr ByteSet kCommentStop("->", false);
constexpr ByteSet kPiStop("?>", false);
constexpr ByteSet kCdataStop("]>", false);
constexpr ByteSet kDoctypeStop("[>\"'", false);
constexpr ByteSet kSubsetStop("<]\"'", false);
constexpr ByteSet kDeclarationStop(">\"'", false);
constexpr ByteSet kNotSpace = [] {
  ByteSet set("", false);
  for (bool& b : set.has) b = true;
  for (char c : std::string_view(" \t\n\r")) set.has[static_cast<unsigned char>(c)] = false;
  return set;
}();

// The first byte from p on in `stops`, or end.
const unsigned char* find(const unsigned char* p, const unsigned char* end, const ByteSet& stops) {
  while (p < end && !stops.has[*p]) ++p;
  return p;
}

}  // namespace

// Reads [p, end) and returns where it stopped: at end, or after the byte that broke a limit. Each
// state reads as long a run of bytes as it can before it looks at the byte that ends it. An open
// construct's bytes are read up to limit_, one past the last it may have.
const unsigned char* XmlConstructLimiter::scan(const unsigned char* p, const unsigned char* end) {
  segment_ = p;
  segment_end_ = end;
  limit_ = end;
  if (construct_ != Construct::kNone) set_limit(p);
  while (!breach_ && !text_over_) {
    if (p >= limit_) {
      // limit_ is end, or one past the last byte the open construct may have: then a byte there
      // (or read already, when the limit is 0) is one over.
      if (construct_ != Construct::kNone && (p > limit_ || limit_ < end)) fail_construct();
      break;
    }
    const unsigned char* const stop = limit_;
    switch (state_) {
      case State::kText: {
        const unsigned char* q = find(p, stop, kTextEnd);
        p = count_text(p, q);
        if (p == stop || text_over_) break;
        if (*p == '<') {
          begin(Construct::kMarkup, p);
          if (const unsigned char* after = read_plain_tag(p)) {
            p = after;
            break;
          }
          ++p;
          state_ = State::kLt;
        } else {
          begin(Construct::kReference, p);
          state_ = State::kReference;
          p = count_text(p, p + 1);
        }
        break;
      }
      case State::kReference: {
        const unsigned char* q = find(p, stop, kReferenceEnd);
        const bool ends = q < stop;
        p = count_text(p, ends ? q + 1 : q);
        if (ends && !text_over_) end_construct();
        break;
      }
      case State::kLt: {
        const unsigned char c = *p;
        if (c == '/') {
          ++p;
          construct_ = Construct::kEndTag;
          text_bytes_ = 0;
          state_ = State::kEndTag;
        } else if (c == '?') {
          ++p;
          construct_ = Construct::kPi;
          run_ = 0;
          decl_ = construct_start_ == document_start_;
          declaration_.clear();
          state_ = State::kPi;
        } else if (c == '!') {
          ++p;
          word_.clear();
          state_ = State::kBang;
        } else {  // a start tag: c is its name's first byte
          construct_ = Construct::kStartTag;
          text_bytes_ = 0;
          attributes_ = dtd_defaults_;
          name_.clear();
          name_cut_ = false;
          state_ = State::kTagName;
        }
        break;
      }
      case State::kTagName: {
        const unsigned char* q = find(p, stop, kNameEnd);
        const size_t keep = std::min(static_cast<size_t>(q - p), kMaxName - name_.size());
        name_.append(reinterpret_cast<const char*>(p), keep);
        if (keep < static_cast<size_t>(q - p)) name_cut_ = true;
        p = q;
        if (p == stop) break;
        const unsigned char c = *p++;
        if (is_space(c)) {
          state_ = State::kTagSpace;
        } else if (c == '>') {
          end_start_tag();
        } else if (c == '/') {
          state_ = State::kTagSlash;
        } else {
          quote(c, State::kTagSpace);  // libxml2 refuses it; its look-ahead takes it as a quote
        }
        break;
      }
      case State::kTagSpace: {
        p = find(p, stop, kNotSpace);
        if (p == stop) break;
        const unsigned char c = *p++;
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
      }
      case State::kAttrName: {
        p = find(p, stop, kAttrNameEnd);
        if (p == stop) break;
        const unsigned char c = *p++;
        if (c == '=') {
          state_ = State::kAttrEq;
        } else if (is_space(c)) {
          state_ = State::kAttrAfterName;
        } else if (c == '>') {
          end_start_tag();
        } else {
          quote(c, State::kTagSpace);
        }
        break;
      }
      case State::kAttrAfterName:
        p = find(p, stop, kNotSpace);
        if (p == stop) break;
        if (*p == '=') {
          ++p;
          state_ = State::kAttrEq;
        } else {
          state_ = State::kTagSpace;  // libxml2 refuses a name without a value
        }
        break;
      case State::kAttrEq:
        p = find(p, stop, kNotSpace);
        if (p == stop) break;
        if (is_quote(*p)) {
          quote(*p++, State::kTagSpace);
        } else {
          state_ = State::kTagSpace;  // libxml2 refuses a value without quotes
        }
        break;
      case State::kTagSlash:
        if (*p == '>') {
          ++p;
          end_start_tag();
        } else {
          state_ = State::kTagSpace;
        }
        break;
      case State::kEndTag: {
        p = find(p, stop, kEndTagEnd);
        if (p == stop) break;
        const unsigned char c = *p++;
        if (c == '>') {
          end_construct();
        } else {
          quote(c, State::kEndTag);  // libxml2 refuses it; its look-ahead takes it as a quote
        }
        break;
      }
      case State::kQuoted: {
        const void* q = std::memchr(p, quote_, static_cast<size_t>(stop - p));
        if (q == nullptr) {
          p = stop;
        } else {
          p = static_cast<const unsigned char*>(q) + 1;
          state_ = return_;
        }
        break;
      }
      case State::kBang: {
        word_ += static_cast<char>(*p);
        auto starts = [this](std::string_view word) {
          return word.substr(0, word_.size()) == word_;
        };
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
        } else if (!starts("--") && !starts("[CDATA[") && !starts("DOCTYPE")) {
          construct_ = Construct::kDeclaration;  // libxml2 refuses it
          state_ = State::kBogus;
          break;  // the byte is read again as kBogus's
        }
        ++p;
        break;
      }
      case State::kBogus:
        p = find(p, stop, kGt);
        if (p == stop) break;
        ++p;
        end_construct();
        break;
      case State::kComment: {
        const unsigned char c = *p++;
        if (c == '-') {
          if (run_ < 2) ++run_;
        } else if (c == '>' && run_ == 2) {
          end_inner();
        } else {
          run_ = 0;
          p = find(p, stop, kCommentStop);
        }
        break;
      }
      case State::kPi: {
        const unsigned char c = *p++;
        if (decl_) {
          read_declaration(c);
          if (breach_) break;
        }
        if (c == '?') {
          run_ = 1;
        } else if (c == '>' && run_ == 1) {
          if (decl_) check_declaration();
          decl_ = false;
          if (!breach_) end_inner();
        } else {
          run_ = 0;
          if (!decl_) p = find(p, stop, kPiStop);
        }
        break;
      }
      case State::kCdata: {
        const unsigned char c = *p;
        if (c == ']') {
          ++p;
          ++run_;
        } else if (c == '>' && run_ >= 2) {
          ++p;
          count_text(run_ - 2);  // the ']' before the last two are text
          run_ = 0;
          if (!text_over_) end_construct();
        } else {
          // The ']' held back are text after all, and so is all up to the next ']' or '>'.
          if (run_ > 0) {
            count_text(run_);
            run_ = 0;
            if (text_over_) break;
          }
          p = count_text(p, find(p + 1, stop, kCdataStop));
        }
        break;
      }
      case State::kDoctype: {
        p = find(p, stop, kDoctypeStop);
        if (p == stop) break;
        const unsigned char c = *p++;
        if (c == '[') {
          in_subset_ = true;
          state_ = State::kSubset;
        } else if (c == '>') {
          end_construct();
        } else {
          quote(c, State::kDoctype);
        }
        break;
      }
      case State::kSubset: {
        p = find(p, stop, kSubsetStop);
        if (p == stop) break;
        const unsigned char c = *p++;
        if (c == '<') {
          state_ = State::kSubsetLt;
        } else if (c == ']') {
          state_ = State::kSubsetClose;
        } else {
          quote(c, State::kSubset);  // libxml2 refuses it; its look-ahead takes it as a quote
        }
        break;
      }
      case State::kSubsetLt:
        if (*p == '!') {
          ++p;
          word_.clear();
          state_ = State::kSubsetBang;
        } else if (*p == '?') {
          ++p;
          run_ = 0;
          decl_ = false;
          state_ = State::kPi;
        } else {
          begin_declaration();  // libxml2 refuses it
        }
        break;
      case State::kSubsetBang:
        if (word_.empty() && *p == '-') {
          ++p;
          word_ = "-";
        } else if (word_ == "-" && *p == '-') {
          ++p;
          run_ = 0;
          state_ = State::kComment;
        } else {
          begin_declaration();
        }
        break;
      case State::kSubsetDecl: {
        const unsigned char c = *p;
        if (!keyword_done_) {
          if (c >= 'A' && c <= 'Z' && word_.size() < 8) {
            word_ += static_cast<char>(c);
            ++p;
            break;
          }
          keyword_done_ = true;
          attlist_ = word_ == "ATTLIST";
        }
        p = find(p, stop, kDeclarationStop);
        if (p == stop) break;
        const unsigned char d = *p++;
        if (d == '>') {
          state_ = State::kSubset;
        } else {
          if (attlist_) ++dtd_defaults_;  // a default value: in an ATTLIST, AttValue is quoted
          quote(d, State::kSubsetDecl);
        }
        break;
      }
      case State::kSubsetClose: {
        p = find(p, stop, kNotSpace);
        if (p == stop) break;
        const unsigned char c = *p;
        if (c == '>') {
          ++p;
          in_subset_ = false;
          end_construct();
        } else if (c == ']') {
          ++p;
        } else {
          state_ = State::kSubset;  // libxml2 refuses it
        }
        break;
      }
    }
  }
  return p;
}

// The common case at once: a start tag of name="value" pairs (or an end tag) all within limit_,
// read with the effects the states would have. Anything else (a tag cut by the piece's end, a
// quote out of place, a name without a value, ...) returns nullptr, and the states read it from
// its '<' again (a breach found on the way is the one they would find, on the same bytes).
const unsigned char* XmlConstructLimiter::read_plain_tag(const unsigned char* lt) {
  const unsigned char* const stop = limit_;
  const unsigned char* q = lt + 1;
  if (q == stop) return nullptr;
  if (*q == '/') {
    q = find(q + 1, stop, kEndTagEnd);
    if (q == stop || *q != '>') return nullptr;
    text_bytes_ = 0;
    end_construct();
    return q + 1;
  }
  if (kNameEnd.has[*q] || *q == '?' || *q == '!') return nullptr;
  const unsigned char* name_end = find(q, stop, kNameEnd);
  if (name_end == stop) return nullptr;
  construct_ = Construct::kStartTag;
  text_bytes_ = 0;
  attributes_ = dtd_defaults_;
  // The name is copied only for a message.
  const unsigned char* const name = q;
  auto keep_name = [&] {
    const auto length = static_cast<size_t>(name_end - name);
    name_.assign(reinterpret_cast<const char*>(name), std::min(length, kMaxName));
    name_cut_ = length > kMaxName;
  };
  q = name_end;
  while (true) {
    q = find(q, stop, kNotSpace);
    if (q == stop) return nullptr;
    if (*q == '>') {
      ++q;
      break;
    }
    if (*q == '/') {
      if (q + 1 == stop || q[1] != '>') return nullptr;
      q += 2;
      break;
    }
    if (is_quote(*q)) return nullptr;
    if (attributes_ + 1 > limits_.max_attributes) keep_name();
    add_attribute();
    if (breach_) return nullptr;
    q = find(q + 1, stop, kAttrNameEnd);
    if (q == stop || *q != '=') return nullptr;
    q = find(q + 1, stop, kNotSpace);
    if (q == stop || !is_quote(*q)) return nullptr;
    const void* close = std::memchr(q + 1, *q, static_cast<size_t>(stop - q - 1));
    if (close == nullptr) return nullptr;
    q = static_cast<const unsigned char*>(close) + 1;
  }
  if (attributes_ > limits_.max_attributes) keep_name();
  end_start_tag();
  return breach_ ? nullptr : q;
}

void XmlConstructLimiter::set_limit(const unsigned char* p) {
  // Bytes of the open construct read before p, and how many more it may have.
  const uint64_t read = offset_ + static_cast<uint64_t>(p - segment_) - construct_start_;
  const uint64_t room =
      read >= limits_.max_construct_bytes ? 0 : limits_.max_construct_bytes - read;
  limit_ = room < static_cast<uint64_t>(segment_end_ - p) ? p + room : segment_end_;
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

void XmlConstructLimiter::begin(Construct construct, const unsigned char* first) {
  construct_ = construct;
  construct_start_ = offset_ + static_cast<uint64_t>(first - segment_);
  construct_first_ = first;  // its line is counted when needed: at a breach, or the piece's end
  set_limit(first);
}

void XmlConstructLimiter::resolve_construct_line() {
  if (construct_first_ == nullptr) return;
  construct_line_ = line_ + count_lines(segment_, construct_first_);  // line_: at segment_
  construct_first_ = nullptr;
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
  limit_ = segment_end_;
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
  if (limits_.max_text_bytes - text_bytes_ < n) text_over_ = true;
  text_bytes_ += n;
}

const unsigned char* XmlConstructLimiter::count_text(const unsigned char* p,
                                                     const unsigned char* q) {
  if (limits_.max_text_bytes == 0) return q;
  const auto n = static_cast<uint64_t>(q - p);
  if (limits_.max_text_bytes - text_bytes_ < n) {  // up to the byte one over
    q = p + (limits_.max_text_bytes - text_bytes_ + 1);
    text_over_ = true;
  }
  text_bytes_ += static_cast<uint64_t>(q - p);
  return q;
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
  resolve_construct_line();
  std::string message = "a start tag <" + printable(name_) + (name_cut_ ? "..." : "") +
                        "> holding more than " + std::to_string(limits_.max_attributes) +
                        " attributes and namespace declarations at line " +
                        std::to_string(construct_line_);
  if (dtd_defaults_ > 0) {
    message += " (counting the " + std::to_string(dtd_defaults_) +
               " attribute defaults the DTD declares, which libxml2 may add to any element)";
  }
  fail(XmlLimitBreach::Kind::kAttributes, std::move(message));
}

void XmlConstructLimiter::fail_construct() {
  resolve_construct_line();
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
