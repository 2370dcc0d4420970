#pragma once
// Shared benchmark harness: runs our implementation and a baseline several times,
// alternating them so slow drift on the machine (another build, thermal changes)
// hits both sides alike, then prints one JSON line per benchmark to stdout and a
// readable summary to stderr. Figures are "higher is better" rates; compare the
// ratio ours/baseline across machines, not the absolute numbers.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace xerv::perf {

using fields = std::vector<std::pair<std::string, double>>;

// One measured run. The checksum comes from the work itself (echoed bytes, reply
// values), so the compiler cannot drop the work and a wrong result is visible.
struct run_result {
  double value = 0;
  uint64_t checksum = 0;
  fields extra;  // per-run figures such as latency percentiles; medians are reported
};

struct spread {
  double median = 0, min = 0, max = 0;
};

inline spread summarize(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return {median, v.front(), v.back()};
}

// Log-linear latency histogram: 16 sub-buckets per power of two (about 6 %
// resolution), values in ns, percentiles in µs.
struct histogram {
  std::array<uint64_t, 1024> counts{};
  uint64_t total = 0, max = 0;

  static size_t index(uint64_t v) {
    if (v < 16) return v;
    unsigned msb = 63 - static_cast<unsigned>(std::countl_zero(v));
    return (msb - 3) * 16 + ((v >> (msb - 4)) & 15);
  }
  static uint64_t lower_bound(size_t i) {
    if (i < 16) return i;
    size_t msb = i / 16 + 3;
    return (16 + i % 16) << (msb - 4);
  }
  void record(uint64_t v) {
    ++counts[index(v)];
    ++total;
    max = std::max(max, v);
  }
  void merge(const histogram& o) {
    for (size_t i = 0; i < counts.size(); ++i) counts[i] += o.counts[i];
    total += o.total;
    max = std::max(max, o.max);
  }
  double percentile_us(double p) const {
    uint64_t want = static_cast<uint64_t>(p * static_cast<double>(total)), seen = 0;
    for (size_t i = 0; i < counts.size(); ++i) {
      seen += counts[i];
      if (seen > want) return static_cast<double>(lower_bound(i)) / 1000.0;
    }
    return 0;
  }
};

// A non-blocking TCP_NODELAY connection to 127.0.0.1:port; -1 on failure.
inline int connect_loopback(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

struct comparison {
  std::string name, unit;
  int runs = 0;
  spread ours, baseline;
  uint64_t checksum = 0;
  fields extra;  // parameters and medians of the per-run extras ("ours_p50_us", ...)
};

inline void add_medians(fields& out, const char* prefix, const std::vector<run_result>& rs) {
  if (rs.empty()) return;
  for (size_t i = 0; i < rs.front().extra.size(); ++i) {
    std::vector<double> v;
    for (const auto& r : rs) v.push_back(r.extra.at(i).second);
    out.emplace_back(prefix + rs.front().extra[i].first, summarize(v).median);
  }
}

// The comparison of runs made already (pairs a[i], b[i]), e.g. by coroutines
// that compare() cannot drive.
inline comparison compare_runs(std::string name, std::string unit, const std::vector<run_result>& a,
                               const std::vector<run_result>& b) {
  comparison c{std::move(name), std::move(unit), int(a.size()), {}, {}, 0, {}};
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) c.checksum = c.checksum * 31 + a[i].checksum * 7 + b[i].checksum;
  auto values = [](const std::vector<run_result>& rs) {
    std::vector<double> v;
    for (const auto& r : rs) v.push_back(r.value);
    return v;
  };
  c.ours = summarize(values(a));
  c.baseline = summarize(values(b));
  add_medians(c.extra, "ours_", a);
  add_medians(c.extra, "baseline_", b);
  return c;
}

template <class Ours, class Baseline>
comparison compare(std::string name, std::string unit, int runs, Ours&& ours, Baseline&& baseline) {
  std::vector<run_result> a, b;
  for (int i = 0; i < runs; ++i) {
    a.push_back(ours());
    b.push_back(baseline());
  }
  return compare_runs(std::move(name), std::move(unit), a, b);
}

inline std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos)
      return line.substr(line.find(':') + 2);
  return "unknown";
}

inline std::string kernel() {
  utsname u{};
  return uname(&u) == 0 ? std::string(u.sysname) + " " + u.release : "unknown";
}

inline std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (static_cast<unsigned char>(ch) >= 0x20) out += ch;
  }
  return out + "\"";
}

inline void emit(const comparison& c) {
  double ratio = c.baseline.median > 0 ? c.ours.median / c.baseline.median : 0;
  printf("{\"name\":%s,\"unit\":%s,\"runs\":%d,\"median\":%.10g,\"min\":%.10g,\"max\":%.10g,"
         "\"baseline_median\":%.10g,\"baseline_min\":%.10g,\"baseline_max\":%.10g,\"ratio\":%.4f,\"checksum\":%llu",
         json_string(c.name).c_str(), json_string(c.unit).c_str(), c.runs, c.ours.median, c.ours.min, c.ours.max,
         c.baseline.median, c.baseline.min, c.baseline.max, ratio, static_cast<unsigned long long>(c.checksum));
  for (const auto& [k, v] : c.extra) printf(",%s:%.10g", json_string(k).c_str(), v);
  printf(",\"cpu\":%s,\"kernel\":%s}\n", json_string(cpu_model()).c_str(), json_string(kernel()).c_str());
  fflush(stdout);
  fprintf(stderr, "%-28s ours %.4g %s [%.4g..%.4g]  baseline %.4g [%.4g..%.4g]  ratio %.3f\n", c.name.c_str(),
          c.ours.median, c.unit.c_str(), c.ours.min, c.ours.max, c.baseline.median, c.baseline.min, c.baseline.max,
          ratio);
}

// "--flag": present or not. "--key N": a number, or `fallback` when absent.
inline bool has_flag(int argc, char** argv, const char* flag) {
  for (int i = 1; i < argc; ++i)
    if (strcmp(argv[i], flag) == 0) return true;
  return false;
}
inline double arg_number(int argc, char** argv, const char* key, double fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (strcmp(argv[i], key) == 0) return strtod(argv[i + 1], nullptr);
  return fallback;
}
inline std::string arg_string(int argc, char** argv, const char* key, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (strcmp(argv[i], key) == 0) return argv[i + 1];
  return fallback;
}

// A figure of a comparison's `extra` by name (0 when absent).
inline double field_of(const comparison& c, const std::string& key) {
  for (const auto& [k, v] : c.extra)
    if (k == key) return v;
  return 0;
}

}  // namespace xerv::perf
