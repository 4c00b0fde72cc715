#pragma once
// Prometheus metrics (text exposition format 0.0.4) without a client library: counters, gauges
// and histograms in labelled families, updated from any thread, rendered on a scrape.
//
//   MetricsRegistry registry;
//   auto& uploads = registry.counter("receiver_uploads_total", "Uploads answered", {"outcome", "code"});
//   uploads.with({"accepted", "201"}).add();
//   registry.render();  // the body of GET /metrics
//
// Families are registered before use and live as long as the registry; a child (one label
// combination) is created on its first use and never removed, so keep label values to small
// fixed sets (outcomes, status codes, key indexes), never names of files.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace transfer {

class Counter {
 public:
  void add(double v = 1) { value_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v);
  struct Snapshot {
    std::vector<uint64_t> cumulative;  // per bound, then +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot snapshot() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative), last is +Inf
  double sum_ = 0;
};

// One metric name with its children, one per combination of label values.
template <typename M>
class Family {
 public:
  using Factory = std::function<std::unique_ptr<M>()>;
  Family(std::vector<std::string> label_names, Factory make)
      : label_names_(std::move(label_names)), make_(std::move(make)) {}
  // The child for these label values (as many as the family has label names).
  M& with(const std::vector<std::string>& label_values);
  M& get() { return with({}); }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Calls f(label values, metric) for every child, in label order.
  void each(const std::function<void(const std::vector<std::string>&, const M&)>& f) const;

 private:
  std::vector<std::string> label_names_;
  Factory make_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<M>> children_;
};

class MetricsRegistry {
 public:
  Family<Counter>& counter(const std::string& name, const std::string& help,
                           std::vector<std::string> labels = {});
  Family<Gauge>& gauge(const std::string& name, const std::string& help,
                       std::vector<std::string> labels = {});
  Family<Histogram>& histogram(const std::string& name, const std::string& help,
                               std::vector<double> bounds, std::vector<std::string> labels = {});
  // A gauge read when scraped (free bytes, backlog); `read` must be thread-safe.
  void gauge_callback(const std::string& name, const std::string& help, std::function<double()> read);
  // A counter kept elsewhere (an atomic of another part), read when scraped; thread-safe `read`.
  void counter_callback(const std::string& name, const std::string& help, std::function<double()> read);

  // The exposition text, families in registration order.
  std::string render() const;

 private:
  struct Entry;
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<Entry>> entries_;
};

// Content-Type of render()'s text.
inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// Upper bounds in seconds for request and upload latency histograms (1 ms .. 60 s).
std::vector<double> latency_buckets();

}  // namespace transfer
