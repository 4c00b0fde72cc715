#include "transfer/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <charconv>
#include <variant>

namespace transfer {
namespace {

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  // Shortest text that reads back as the same double; integers without an exponent.
  const auto r = (v == std::floor(v) && std::fabs(v) < 1e15)
                     ? std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(v))
                     : std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string escape_label(const std::string& v) {
  std::string out;
  for (const char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string escape_help(const std::string& v) {
  std::string out;
  for (const char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

// {a="x",b="y"} with an optional extra label (le for histogram buckets).
std::string label_text(const std::vector<std::string>& names, const std::vector<std::string>& values,
                       const std::string& extra_name = {}, const std::string& extra_value = {}) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    out += out.empty() ? "{" : ",";
    out += names[i] + "=\"" + escape_label(values[i]) + "\"";
  }
  if (!extra_name.empty()) {
    out += out.empty() ? "{" : ",";
    out += extra_name + "=\"" + extra_value + "\"";
  }
  return out.empty() ? out : out + "}";
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {
  std::sort(bounds_.begin(), bounds_.end());
}

void Histogram::observe(double v) {
  const auto i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  std::lock_guard lock(mu_);
  ++counts_[i];
  sum_ += v;
}

Histogram::Snapshot Histogram::snapshot() const {
  std::lock_guard lock(mu_);
  Snapshot s;
  uint64_t running = 0;
  for (const uint64_t c : counts_) {
    running += c;
    s.cumulative.push_back(running);
  }
  s.sum = sum_;
  s.count = running;
  return s;
}

template <typename M>
M& Family<M>::with(const std::vector<std::string>& label_values) {
  std::lock_guard lock(mu_);
  auto& slot = children_[label_values];
  if (!slot) slot = make_();
  return *slot;
}

template <typename M>
void Family<M>::each(const std::function<void(const std::vector<std::string>&, const M&)>& f) const {
  std::lock_guard lock(mu_);
  for (const auto& [labels, metric] : children_) f(labels, *metric);
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

struct MetricsRegistry::Entry {
  struct CounterRead {
    std::function<double()> read;
  };
  std::string name;
  std::string help;
  std::variant<std::unique_ptr<Family<Counter>>, std::unique_ptr<Family<Gauge>>,
               std::unique_ptr<Family<Histogram>>, std::function<double()>, CounterRead>
      metric;
};

Family<Counter>& MetricsRegistry::counter(const std::string& name, const std::string& help,
                                          std::vector<std::string> labels) {
  auto family = std::make_unique<Family<Counter>>(std::move(labels), [] { return std::make_unique<Counter>(); });
  auto& ref = *family;
  std::lock_guard lock(mu_);
  entries_.push_back(std::make_shared<Entry>(Entry{name, help, std::move(family)}));
  return ref;
}

Family<Gauge>& MetricsRegistry::gauge(const std::string& name, const std::string& help,
                                      std::vector<std::string> labels) {
  auto family = std::make_unique<Family<Gauge>>(std::move(labels), [] { return std::make_unique<Gauge>(); });
  auto& ref = *family;
  std::lock_guard lock(mu_);
  entries_.push_back(std::make_shared<Entry>(Entry{name, help, std::move(family)}));
  return ref;
}

Family<Histogram>& MetricsRegistry::histogram(const std::string& name, const std::string& help,
                                              std::vector<double> bounds, std::vector<std::string> labels) {
  auto family = std::make_unique<Family<Histogram>>(
      std::move(labels), [bounds] { return std::make_unique<Histogram>(bounds); });
  auto& ref = *family;
  std::lock_guard lock(mu_);
  entries_.push_back(std::make_shared<Entry>(Entry{name, help, std::move(family)}));
  return ref;
}

void MetricsRegistry::gauge_callback(const std::string& name, const std::string& help,
                                     std::function<double()> read) {
  std::lock_guard lock(mu_);
  entries_.push_back(std::make_shared<Entry>(Entry{name, help, std::move(read)}));
}

void MetricsRegistry::counter_callback(const std::string& name, const std::string& help,
                                       std::function<double()> read) {
  std::lock_guard lock(mu_);
  entries_.push_back(std::make_shared<Entry>(Entry{name, help, Entry::CounterRead{std::move(read)}}));
}

std::string MetricsRegistry::render() const {
  std::vector<std::shared_ptr<Entry>> entries;
  {
    std::lock_guard lock(mu_);
    entries = entries_;
  }
  std::string out;
  for (const auto& e : entries) {
    auto head = [&](const char* type) {
      out += "# HELP " + e->name + " " + escape_help(e->help) + "\n# TYPE " + e->name + " " + type + "\n";
    };
    if (auto* c = std::get_if<std::unique_ptr<Family<Counter>>>(&e->metric)) {
      head("counter");
      (*c)->each([&](const std::vector<std::string>& labels, const Counter& m) {
        out += e->name + label_text((*c)->label_names(), labels) + " " + format_value(m.value()) + "\n";
      });
    } else if (auto* g = std::get_if<std::unique_ptr<Family<Gauge>>>(&e->metric)) {
      head("gauge");
      (*g)->each([&](const std::vector<std::string>& labels, const Gauge& m) {
        out += e->name + label_text((*g)->label_names(), labels) + " " + format_value(m.value()) + "\n";
      });
    } else if (auto* h = std::get_if<std::unique_ptr<Family<Histogram>>>(&e->metric)) {
      head("histogram");
      (*h)->each([&](const std::vector<std::string>& labels, const Histogram& m) {
        const auto s = m.snapshot();
        const auto& names = (*h)->label_names();
        for (size_t i = 0; i <= m.bounds().size(); ++i) {
          const std::string le = i < m.bounds().size() ? format_value(m.bounds()[i]) : "+Inf";
          out += e->name + "_bucket" + label_text(names, labels, "le", le) + " " +
                 format_value(static_cast<double>(s.cumulative[i])) + "\n";
        }
        out += e->name + "_sum" + label_text(names, labels) + " " + format_value(s.sum) + "\n";
        out += e->name + "_count" + label_text(names, labels) + " " +
               format_value(static_cast<double>(s.count)) + "\n";
      });
    } else if (auto* f = std::get_if<std::function<double()>>(&e->metric)) {
      head("gauge");
      out += e->name + " " + format_value((*f)()) + "\n";
    } else if (auto* r = std::get_if<Entry::CounterRead>(&e->metric)) {
      head("counter");
      out += e->name + " " + format_value(r->read()) + "\n";
    }
  }
  return out;
}

std::vector<double> latency_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

}  // namespace transfer
