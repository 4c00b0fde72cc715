// json2xml_tool: the JSON -> XML converter as a filter, for tests (the oracle comparison in
// tests/interop/test_xml_mapping.py): JSON on stdin (read whole), XML on stdout, the mapping
// options as flags.
//   json2xml_tool [--root=NAME] [--item-name=NAME] [--type-attrs=on|off] [--item-wrap=on|off]
//                 [--pretty=on|off] [--declaration=on|off] [--cdata=on|off] [--max-depth=N]
//                 [--batch]
// Exit 0: converted; 1: the input was refused (message on stderr); 2: bad flags or names.
// --batch converts many documents in one run (a test compares thousands): stdin is a sequence
// of "<length>\n<JSON bytes>", stdout gets for each "ok <length>\n<XML>" or "error <length>\n
// <message>"; exit 0 unless the framing or stdout fails.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "transfer/json_to_xml.hpp"

namespace {

bool on_off(std::string_view value, bool& out) {
  if (value == "on") {
    out = true;
  } else if (value == "off") {
    out = false;
  } else {
    return false;
  }
  return true;
}

bool read_all(std::string& out) {
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n == 0) return true;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    out.append(buf, static_cast<size_t>(n));
  }
}

bool put(std::string_view bytes) {
  return std::fwrite(bytes.data(), 1, bytes.size(), stdout) == bytes.size();
}

int batch(const transfer::JsonToXmlOptions& options, const std::string& input) {
  size_t pos = 0;
  for (int n = 0; pos < input.size(); ++n) {
    const size_t nl = input.find('\n', pos);
    if (nl == std::string::npos) return 2;
    const size_t len = std::strtoull(input.c_str() + pos, nullptr, 10);
    pos = nl + 1;
    if (len > input.size() - pos) return 2;
    auto xml = transfer::json_to_xml(std::string_view(input).substr(pos, len), options,
                                     "doc" + std::to_string(n));
    pos += len;
    const std::string& body = xml ? *xml : xml.error().message;
    if (!put((xml ? "ok " : "error ") + std::to_string(body.size()) + "\n") || !put(body)) return 1;
  }
  return std::fflush(stdout) == 0 ? 0 : 1;
}

int usage(const std::string& why) {
  std::fprintf(stderr, "json2xml_tool: %s\n", why.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  transfer::JsonToXmlOptions options;
  bool batched = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg(argv[i]);
    if (arg == "--batch") {
      batched = true;
      continue;
    }
    const size_t eq = arg.find('=');
    if (arg.rfind("--", 0) != 0 || eq == std::string_view::npos)
      return usage("bad argument " + std::string(arg));
    const std::string_view name = arg.substr(2, eq - 2);
    const std::string_view value = arg.substr(eq + 1);
    bool ok = true;
    if (name == "root") {
      options.root = value;
    } else if (name == "item-name") {
      options.item_name = value;
    } else if (name == "type-attrs") {
      ok = on_off(value, options.type_attrs);
    } else if (name == "item-wrap") {
      ok = on_off(value, options.item_wrap);
    } else if (name == "pretty") {
      ok = on_off(value, options.pretty);
    } else if (name == "declaration") {
      ok = on_off(value, options.declaration);
    } else if (name == "cdata") {
      ok = on_off(value, options.cdata);
    } else if (name == "max-depth") {
      options.max_depth = std::strtoull(std::string(value).c_str(), nullptr, 10);
    } else {
      return usage("unknown option --" + std::string(name));
    }
    if (!ok) return usage("--" + std::string(name) + " takes on or off");
  }
  if (auto st = transfer::check_json_to_xml_options(options); !st) return usage(st.error().message);
  std::string json;
  if (!read_all(json)) return usage(std::string("stdin: ") + std::strerror(errno));
  if (batched) return batch(options, json);
  auto xml = transfer::json_to_xml(json, options, "stdin");
  if (!xml) {
    std::fprintf(stderr, "%s\n", xml.error().message.c_str());
    return 1;
  }
  return put(*xml) && std::fflush(stdout) == 0 ? 0 : 1;
}
