#include "core/metrics.h"

#include <cmath>
#include <cstdio>
#include <memory>

#include "io/assert.h"

namespace xerv::core {
namespace {

constexpr char k_sep = '\x1f';

// Families are registered during static initialisation and start-up, before any
// shard runs; afterwards the table is only read.
std::vector<std::unique_ptr<metric_family_def>>& family_table() {
  static std::vector<std::unique_ptr<metric_family_def>> table;
  return table;
}

thread_local metrics_snapshot t_values;

// Label values escape \\, " and newline; HELP text only \\ and newline (format 0.0.4).
void append_escaped(std::string& out, std::string_view v, bool quotes = true) {
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"' && quotes) out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
}

void append_number(std::string& out, double v) {
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  char buf[32];
  if (v == std::floor(v) && std::fabs(v) < 1e15) snprintf(buf, sizeof buf, "%.0f", v);
  else snprintf(buf, sizeof buf, "%.9g", v);
  out += buf;
}

// name{a="x",b="y"[,extra]} — labels from the joined key.
void append_series_name(std::string& out, const std::string& name, const metric_family_def& def, std::string_view key,
                        std::string_view extra_label = {}, std::string_view extra_value = {}) {
  out += name;
  if (def.label_names.empty() && extra_label.empty()) return;
  out += '{';
  size_t pos = 0;
  for (size_t i = 0; i < def.label_names.size(); ++i) {
    size_t end = key.find(k_sep, pos);
    if (end == std::string_view::npos) end = key.size();
    if (i) out += ',';
    out += def.label_names[i];
    out += "=\"";
    append_escaped(out, key.substr(pos, end - pos));
    out += '"';
    pos = end + 1;
  }
  if (!extra_label.empty()) {
    if (!def.label_names.empty()) out += ',';
    out += extra_label;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

const char* type_name(metric_type t) {
  switch (t) {
    case metric_type::counter: return "counter";
    case metric_type::gauge: return "gauge";
    case metric_type::histogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

metric_family::metric_family(metric_family_def def) {
  ASSERT(def.type != metric_type::counter || def.name.ends_with("_total"), "counter %s must end in _total",
         def.name.c_str());
  for (auto& f : family_table()) ASSERT(f->name != def.name, "metric %s declared twice", def.name.c_str());
  _id = static_cast<uint32_t>(family_table().size());
  family_table().push_back(std::make_unique<metric_family_def>(std::move(def)));
}

const metric_family_def& metric_family::def() const { return *family_table()[_id]; }

series_value& metric_family::series(std::initializer_list<std::string_view> labels) {
  auto& fams = t_values.families;
  if (fams.size() <= _id) fams.resize(family_table().size());
  auto& m = fams[_id];
  DEBUG_ASSERT(labels.size() == def().label_names.size(), "label count for %s", def().name.c_str());
  // Build the key on the stack; the map lookup is heterogeneous, so a hit allocates nothing.
  char buf[256];
  size_t n = 0;
  bool fits = true;
  for (auto it = labels.begin(); it != labels.end(); ++it) {
    if (it != labels.begin()) {
      if (n < sizeof buf) buf[n] = k_sep;
      ++n;
    }
    if (n + it->size() <= sizeof buf) std::copy(it->begin(), it->end(), buf + n);
    else fits = false;
    n += it->size();
  }
  std::string long_key;
  std::string_view key;
  if (fits && n <= sizeof buf) {
    key = std::string_view(buf, n);
  } else {
    for (auto it = labels.begin(); it != labels.end(); ++it) {
      if (it != labels.begin()) long_key += k_sep;
      long_key.append(*it);
    }
    key = long_key;
  }
  auto found = m.find(key);
  if (found != m.end()) return found->second;
  series_value fresh;
  if (def().type == metric_type::histogram) fresh.buckets.assign(def().buckets.size() + 1, 0);
  return m.emplace(std::string(key), std::move(fresh)).first->second;
}

counter::counter(std::string name, std::string help, std::vector<std::string> labels)
    : metric_family({std::move(name), std::move(help), metric_type::counter, std::move(labels), {}}) {}

gauge::gauge(std::string name, std::string help, std::vector<std::string> labels)
    : metric_family({std::move(name), std::move(help), metric_type::gauge, std::move(labels), {}}) {}

histogram::histogram(std::string name, std::string help, std::vector<double> buckets, std::vector<std::string> labels)
    : metric_family({std::move(name), std::move(help), metric_type::histogram, std::move(labels), std::move(buckets)}) {
  const auto& b = def().buckets;
  for (size_t i = 1; i < b.size(); ++i) ASSERT(b[i - 1] < b[i], "buckets of %s must ascend", def().name.c_str());
}

void histogram::observe(double v, std::initializer_list<std::string_view> labels) {
  series_value& s = series(labels);
  const auto& bounds = def().buckets;
  size_t i = 0;
  while (i < bounds.size() && v > bounds[i]) ++i;
  ++s.buckets[i];
  s.sum += v;
  ++s.count;
}

std::vector<double> latency_buckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

metrics_snapshot snapshot_this_thread() {
  metrics_snapshot s = t_values;
  s.families.resize(family_table().size());
  return s;
}

void metrics_snapshot::merge(const metrics_snapshot& other) {
  if (families.size() < other.families.size()) families.resize(other.families.size());
  for (size_t f = 0; f < other.families.size(); ++f) {
    for (const auto& [key, v] : other.families[f]) {
      auto [it, fresh] = families[f].try_emplace(key, v);
      if (fresh) continue;
      series_value& mine = it->second;
      mine.value += v.value;
      mine.sum += v.sum;
      mine.count += v.count;
      if (mine.buckets.size() < v.buckets.size()) mine.buckets.resize(v.buckets.size(), 0);
      for (size_t i = 0; i < v.buckets.size(); ++i) mine.buckets[i] += v.buckets[i];
    }
  }
}

std::string render_prometheus(const metrics_snapshot& merged) {
  std::string out;
  out.reserve(4096);
  const auto& table = family_table();
  for (size_t f = 0; f < table.size(); ++f) {
    const metric_family_def& def = *table[f];
    out += "# HELP " + def.name + " ";
    append_escaped(out, def.help, false);
    out += "\n# TYPE " + def.name + " " + type_name(def.type) + "\n";
    static const std::map<std::string, series_value, std::less<>> empty;
    const auto& series = f < merged.families.size() ? merged.families[f] : empty;
    if (series.empty() && def.label_names.empty()) {
      // An unlabelled family reads 0 before its first event.
      if (def.type == metric_type::histogram) {
        append_series_name(out, def.name + "_bucket", def, "", "le", "+Inf");
        out += " 0\n" + def.name + "_sum 0\n" + def.name + "_count 0\n";
      } else {
        out += def.name + " 0\n";
      }
      continue;
    }
    for (const auto& [key, v] : series) {
      if (def.type != metric_type::histogram) {
        append_series_name(out, def.name, def, key);
        out += ' ';
        append_number(out, v.value);
        out += '\n';
        continue;
      }
      uint64_t cumulative = 0;
      for (size_t i = 0; i <= def.buckets.size(); ++i) {
        cumulative += i < v.buckets.size() ? v.buckets[i] : 0;
        std::string le;
        if (i < def.buckets.size()) append_number(le, def.buckets[i]);
        else le = "+Inf";
        append_series_name(out, def.name + "_bucket", def, key, "le", le);
        out += ' ' + std::to_string(cumulative) + '\n';
      }
      append_series_name(out, def.name + "_sum", def, key);
      out += ' ';
      append_number(out, v.sum);
      out += '\n';
      append_series_name(out, def.name + "_count", def, key);
      out += ' ' + std::to_string(v.count) + '\n';
    }
  }
  return out;
}

}  // namespace xerv::core
