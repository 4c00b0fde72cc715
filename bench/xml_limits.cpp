// What one hostile but keyed upload costs the receiver's XML check (XmlCheck, as the receiver
// builds it with default limits): CPU seconds and peak RSS, one case per process (ru_maxrss and
// VmHWM are per-process high-water marks). Not a test: a measuring tool for the issue's figures.
// The same file builds against the code before the limits (XmlLimits{} and XmlCheck only).
//
//   build/bin/xml_limits_bench CASE SIZE [PIECE_BYTES] [options]
//
// CASE and SIZE (the document is generated piece by piece, never held whole):
//   attributes N      <a a0="" a1="" ... a(N-1)=""/>: a start tag with N attributes
//   comment B         <!-- B bytes of x --> in <r>
//   attribute B       <a v="B bytes of x"/> in <r>
//   pi B              <?pi B bytes of x?> in <r>
//   cdata B           <![CDATA[B bytes of x]]> in <r>
//   text B            <a>B bytes of x</a> in <r>
//   text_utf8 B       <a>B bytes of U+00E9</a> in <r> (libxml2's slow path: text reported in
//                     300-byte pieces)
//   unique_names N    N empty elements, each with a name of its own (libxml2 keeps every name it
//                     has seen in its dictionary)
//   attlist_defaults N  a DOCTYPE whose internal subset gives element <e> N attributes with
//                     default values, then --repeat empty <e/> (libxml2 adds the defaults to each)
//   ns_scope N        --ns-levels nested elements each declaring --ns-per-level namespaces, then N
//                     empty elements each with 32 attributes of a prefix declared nowhere (libxml2
//                     looks each one up through every namespace in scope)
//   ns_scope_declared N  the same with prefixes the outermost element declares
//   ns_scope_plain N  the same with N elements <z/> (no prefix, no default namespace declared)
//   file 0            the file --path=PATH (e.g. what bench/make_xml_upload.py writes)
// Options:
//   --repeat=R        the construct R times over (default 1; attlist_defaults: 100)
//   --fill=STRING     repeat STRING instead of x (e.g. '>xxx', or a UTF-8 character)
//   --ns-levels=L --ns-per-level=K   for ns_scope* (default 255 and 32)
//   --name-length=K   for unique_names: each name padded to K bytes
//   --schema          validate against a schema with <a> an xs:string in <r> (or anything)
//   --beside          through check_beside (a thread and a queue of up to 2 MiB, as the receiver
//                     does from 8 MiB)
// PIECE_BYTES: how the plaintext is fed (default 262144, check_beside's piece). cpu_s includes
// making the document (copies, about a millisecond a megabyte).
// Prints one line: case=... verdict=... cpu_s=... rss_start_kib=... peak_rss_kib=...
// peak_over_start_kib=... bytes=... and the refusal message.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>

#include "xml_check.hpp"

namespace {

using transfer::receiver::CheckVerdict;
using transfer::receiver::PlaintextCheck;

long status_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0) return std::strtol(line.c_str() + n + 1, nullptr, 10);
  }
  return -1;
}

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Feeds the check in pieces of `piece` bytes, whatever the pieces emit() is given.
class Feeder {
 public:
  Feeder(PlaintextCheck& check, size_t piece) : check_(check), piece_(piece) {}
  void emit(const std::string& s) { emit_raw(s.data(), s.size()); }
  void repeat(const std::string& unit, uint64_t bytes) {
    std::string block;
    while (block.size() < (1u << 16)) block += unit;
    for (uint64_t left = bytes; left > 0;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left, block.size()));
      emit_raw(block.data(), n);
      left -= n;
    }
  }
  void flush() {
    if (!buffer_.empty() && wants_more_)
      wants_more_ = check_.update(buffer_.data(), buffer_.size());
    buffer_.clear();
  }
  uint64_t bytes() const { return bytes_; }  // the document's, fed or not

 private:
  void emit_raw(const char* data, size_t n) {
    bytes_ += n;
    while (n > 0) {
      const size_t take = std::min(n, piece_ - buffer_.size());
      buffer_.append(data, take);
      data += take;
      n -= take;
      if (buffer_.size() == piece_) flush();
    }
  }
  PlaintextCheck& check_;
  size_t piece_;
  std::string buffer_;
  bool wants_more_ = true;
  uint64_t bytes_ = 0;
};

constexpr const char* kSchema = R"(<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="r"><xs:complexType><xs:sequence>
    <xs:element name="a" type="xs:string" minOccurs="0" maxOccurs="unbounded"/>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>)";
constexpr const char* kAnySchema = R"(<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="e"><xs:complexType><xs:sequence>
    <xs:any processContents="skip" minOccurs="0" maxOccurs="unbounded"/>
  </xs:sequence><xs:anyAttribute processContents="skip"/></xs:complexType></xs:element>
</xs:schema>)";

std::shared_ptr<const transfer::receiver::XmlSchema> load_schema(const char* text) {
  char path[] = "/tmp/xml_limits_bench.XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0 || ::write(fd, text, std::strlen(text)) < 0) std::abort();
  ::close(fd);
  auto schema = transfer::receiver::XmlSchema::load(path);
  ::unlink(path);
  if (!schema) {
    std::fprintf(stderr, "%s\n", schema.error().message.c_str());
    std::exit(2);
  }
  return *schema;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s CASE SIZE [PIECE_BYTES] [options]\n", argv[0]);
    return 2;
  }
  const std::string kind = argv[1];
  const uint64_t size = std::strtoull(argv[2], nullptr, 10);
  size_t piece = 256 * 1024;
  bool with_schema = false;
  bool beside = false;
  std::string fill = "x";
  uint64_t repeat = kind == "attlist_defaults" ? 100 : 1;
  int ns_levels = 255;
  int ns_per_level = 32;
  size_t name_length = 0;
  std::string path;
  for (int i = 3; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&arg](const char* option) -> const char* {
      const size_t n = std::strlen(option);
      return arg.compare(0, n, option) == 0 ? arg.c_str() + n : nullptr;
    };
    if (arg == "--schema") {
      with_schema = true;
    } else if (arg == "--beside") {
      beside = true;
    } else if (value("--fill=") != nullptr) {
      fill = value("--fill=");
    } else if (value("--repeat=") != nullptr) {
      repeat = std::strtoull(value("--repeat="), nullptr, 10);
    } else if (value("--ns-levels=") != nullptr) {
      ns_levels = std::atoi(value("--ns-levels="));
    } else if (value("--ns-per-level=") != nullptr) {
      ns_per_level = std::atoi(value("--ns-per-level="));
    } else if (value("--path=") != nullptr) {
      path = value("--path=");
    } else if (value("--name-length=") != nullptr) {
      name_length = std::strtoull(value("--name-length="), nullptr, 10);
    } else {
      piece = std::strtoull(arg.c_str(), nullptr, 10);
    }
  }
  transfer::receiver::init_xml_library();
  auto schema =
      with_schema ? load_schema(kind.rfind("ns_scope", 0) == 0 ? kAnySchema : kSchema) : nullptr;

  std::unique_ptr<PlaintextCheck> check =
      std::make_unique<transfer::receiver::XmlCheck>(transfer::receiver::XmlLimits{}, schema);
  if (beside) check = transfer::receiver::check_beside(std::move(check));
  const long rss_start = status_kib("VmRSS:");
  const double cpu_start = cpu_seconds();
  uint64_t bytes = 0;
  {
    Feeder f(*check, piece);
    // A construct: open + SIZE bytes of the filler + close, R times over, in <r>.
    auto constructs = [&](const std::string& open, const std::string& unit,
                          const std::string& close) {
      f.emit("<r>");
      for (uint64_t i = 0; i < repeat; ++i) {
        f.emit(open);
        f.repeat(unit, size);
        f.emit(close);
      }
      f.emit("</r>");
    };
    if (kind == "file") {
      std::ifstream in(path, std::ios::binary);
      std::string block(1 << 16, '\0');
      while (in.read(block.data(), static_cast<std::streamsize>(block.size())) || in.gcount() > 0) {
        f.emit(block.substr(0, static_cast<size_t>(in.gcount())));
      }
    } else if (kind == "attributes") {
      std::string tag = "<a";
      for (uint64_t i = 0; i < size; ++i) tag += " a" + std::to_string(i) + "=\"\"";
      tag += "/>";
      if (repeat > 1) f.emit("<r>");
      for (uint64_t i = 0; i < repeat; ++i) f.emit(tag);
      if (repeat > 1) f.emit("</r>");
    } else if (kind == "comment") {
      constructs("<!--", fill, "-->");
    } else if (kind == "attribute") {
      constructs("<a v=\"", fill, "\"/>");
    } else if (kind == "pi") {
      constructs("<?pi ", fill, "?>");
    } else if (kind == "cdata") {
      constructs("<![CDATA[", fill, "]]>");
    } else if (kind == "text") {
      constructs("<a>", fill, "</a>");
    } else if (kind == "text_utf8") {
      constructs("<a>", "\xc3\xa9", "</a>");
    } else if (kind == "ns_scope" || kind == "ns_scope_declared" || kind == "ns_scope_plain") {
      for (int d = 0; d < ns_levels; ++d) {
        f.emit("<e");
        for (int k = 0; k < ns_per_level; ++k) {
          f.emit(" xmlns:p" + std::to_string(d) + "_" + std::to_string(k) + "=\"u\"");
        }
        f.emit(">");
      }
      std::string tag = "<z";
      const std::string prefix = kind == "ns_scope" ? " q" : " p0_";
      for (int k = 0; k < 32 && kind != "ns_scope_plain"; ++k) {
        tag += prefix + std::to_string(k) + ":a=\"\"";
      }
      tag += "/>";
      for (uint64_t i = 0; i < size; ++i) f.emit(tag);
      for (int d = 0; d < ns_levels; ++d) f.emit("</e>");
    } else if (kind == "unique_names") {
      f.emit("<r>");
      for (uint64_t i = 0; i < size; ++i) {
        std::string name = "n" + std::to_string(i);
        if (name.size() < name_length) name.append(name_length - name.size(), 'x');
        f.emit("<" + name + "/>");
      }
      f.emit("</r>");
    } else if (kind == "attlist_defaults") {
      f.emit("<!DOCTYPE r [<!ATTLIST e");
      for (uint64_t i = 0; i < size; ++i) f.emit(" a" + std::to_string(i) + " CDATA \"\"");
      f.emit(">]><r>");
      for (uint64_t i = 0; i < repeat; ++i) f.emit("<e/>");
      f.emit("</r>");
    } else {
      std::fprintf(stderr, "unknown case %s\n", kind.c_str());
      return 2;
    }
    f.flush();
    bytes = f.bytes();
  }
  const CheckVerdict v = check->finish();
  const double cpu = cpu_seconds() - cpu_start;
  const long peak = status_kib("VmHWM:");
  std::printf(
      "case=%s size=%llu repeat=%llu piece=%zu schema=%d beside=%d verdict=%s cpu_s=%.2f "
      "rss_start_kib=%ld peak_rss_kib=%ld peak_over_start_kib=%ld bytes=%llu message=\"%s\"\n",
      kind.c_str(), static_cast<unsigned long long>(size), static_cast<unsigned long long>(repeat),
      piece, with_schema ? 1 : 0, beside ? 1 : 0,
      v.passed() ? "passed" : (v.check + "/" + v.reason).c_str(), cpu, rss_start, peak,
      peak - rss_start, static_cast<unsigned long long>(bytes), v.message.substr(0, 160).c_str());
  return 0;
}
