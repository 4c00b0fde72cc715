#include "destinations_watch.hpp"

namespace transfer::sender {

DestinationsWatch::DestinationsWatch(std::string file, const std::vector<Destination>& destinations,
                                     double period_s)
    : period_s_(period_s) {
  if (file.empty()) return;  // nothing to reload from
  paths_.push_back(std::move(file));
  for (const auto& d : destinations) {
    for (const auto& [field, path] : d.files()) {
      if (field != "key_file") paths_.push_back(path);
    }
  }
  last_ = stamps();
}

DestinationsWatch::Stamps DestinationsWatch::stamps() const {
  Stamps out;
  out.reserve(paths_.size());
  for (const auto& p : paths_) out.push_back(file_change_stamp(p));
  return out;
}

bool DestinationsWatch::changed(double now_s) {
  if (paths_.empty() || now_s < next_look_s_) return false;
  next_look_s_ = now_s + period_s_;
  Stamps now = stamps();
  if (now == last_) return false;
  last_ = std::move(now);
  return true;
}

}  // namespace transfer::sender
