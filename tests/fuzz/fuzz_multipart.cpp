// libFuzzer target: the streaming multipart/form-data parser on untrusted upload bodies. The
// first byte picks the chunk size. Invariant: part data never exceeds the body's length and
// framing is the same whatever the chunking (checked against one-shot parsing).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "transfer/multipart.hpp"

using namespace transfer;

namespace {
struct Outcome {
  bool ok = false;
  std::string data;
  int parts = 0;
};

Outcome parse(const char* body, size_t len, size_t chunk) {
  Outcome o;
  MultipartParser p("BOUNDARY",
                    {[&](const MultipartPart&) {
                       ++o.parts;
                       return ok_status();
                     },
                     [&](const char* d, size_t n) {
                       o.data.append(d, n);
                       return ok_status();
                     },
                     [] { return ok_status(); }},
                    1024);
  for (size_t i = 0; i < len; i += chunk) {
    if (!p.feed(body + i, std::min(chunk, len - i))) return o;
  }
  o.ok = p.finish().ok();
  return o;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const char* body = reinterpret_cast<const char*>(data + 1);
  const size_t len = size - 1;
  const Outcome chunked = parse(body, len, 1 + data[0] % 61);
  const Outcome whole = parse(body, len, len == 0 ? 1 : len);
  if (chunked.data.size() > len) std::abort();
  if (chunked.ok != whole.ok) std::abort();
  if (chunked.ok && (chunked.data != whole.data || chunked.parts != whole.parts)) std::abort();
  return 0;
}
