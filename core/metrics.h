#pragma once
// Metrics: families are declared once (usually as namespace-scope objects) and
// every shard keeps its own series in thread-local storage: plain numbers, no
// atomics, no locks. A scrape asks every shard for a snapshot by message and sums
// them; render() writes the Prometheus text exposition format (version 0.0.4).

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace xerv::core {

enum class metric_type { counter, gauge, histogram };

struct metric_family_def {
  std::string name;
  std::string help;
  metric_type type;
  std::vector<std::string> label_names;
  std::vector<double> buckets;  // histograms: upper bounds, ascending, without +Inf
};

struct series_value {
  double value = 0;                // counter / gauge
  std::vector<uint64_t> buckets;   // histogram: non-cumulative counts per bound, plus +Inf
  double sum = 0;
  uint64_t count = 0;
};

// One shard's (or the merged) values: family id -> label key -> value. Label keys
// are the label values joined with '\x1f'.
struct metrics_snapshot {
  std::vector<std::map<std::string, series_value, std::less<>>> families;
  void merge(const metrics_snapshot& other);
};

class metric_family {
 public:
  metric_family(metric_family_def def);
  metric_family(const metric_family&) = delete;
  metric_family& operator=(const metric_family&) = delete;

  const metric_family_def& def() const;
  uint32_t id() const { return _id; }

 protected:
  // The calling thread's series for these label values (created on first use).
  series_value& series(std::initializer_list<std::string_view> labels);
  uint32_t _id;
};

class counter : public metric_family {
 public:
  counter(std::string name, std::string help, std::vector<std::string> labels = {});
  void inc(std::initializer_list<std::string_view> labels = {}, double by = 1) { series(labels).value += by; }
};

class gauge : public metric_family {
 public:
  gauge(std::string name, std::string help, std::vector<std::string> labels = {});
  void add(double by, std::initializer_list<std::string_view> labels = {}) { series(labels).value += by; }
  void set(double v, std::initializer_list<std::string_view> labels = {}) { series(labels).value = v; }
};

class histogram : public metric_family {
 public:
  histogram(std::string name, std::string help, std::vector<double> buckets, std::vector<std::string> labels = {});
  void observe(double v, std::initializer_list<std::string_view> labels = {});
};

// Default latency buckets in seconds: 100 µs to 10 s.
std::vector<double> latency_buckets();

// This thread's values (call it on each shard, e.g. through invoke_on_all).
metrics_snapshot snapshot_this_thread();

// Prometheus text format for the merged values of every family.
std::string render_prometheus(const metrics_snapshot& merged);

}  // namespace xerv::core
