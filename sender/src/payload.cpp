#include "payload.hpp"

namespace transfer::sender {

Status TeeXmlSink::write(const char* data, size_t size) {
  hash_.update(data, size);
  for (XmlSink* sink : sinks_) {
    if (auto st = sink->write(data, size); !st) return st;
  }
  return ok_status();
}

Status TeeXmlSink::reset() {
  hash_ = Sha256();
  for (XmlSink* sink : sinks_) {
    if (auto st = sink->reset(); !st) return st;
  }
  return ok_status();
}

}  // namespace transfer::sender
