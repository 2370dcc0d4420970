#pragma once
// What the benchmarks of the real `xerv serve` share: the server they run and
// the run directory, cleaned up on every way out (a failure, SIGINT/SIGTERM),
// and /metrics read back as numbers.

#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "tests/integration/xerv_process.h"

namespace xerv::perf::serve {

inline const char* g_bench = "bench";  // the program's name, for messages
inline std::unique_ptr<testing::xerv_process> g_server;
inline std::string g_run_dir;
inline volatile sig_atomic_t g_signal = 0;

inline void on_signal(int sig) { g_signal = sig; }

inline void cleanup() {
  if (g_server && !g_server->exited()) {
    g_server->signal(SIGTERM);
    g_server->wait_exit(std::chrono::seconds(15));
  }
  g_server.reset();  // SIGKILL if still running; removes its log
  std::error_code ec;
  if (!g_run_dir.empty()) std::filesystem::remove_all(g_run_dir, ec);
  g_run_dir.clear();
}

// Prints why and the server log's tail, cleans up, exits 1 (threads die with the process).
[[noreturn]] inline void fail(const std::string& why) {
  fprintf(stderr, "%s: %s\n", g_bench, why.c_str());
  if (g_server) {
    std::string log = g_server->log();
    log.erase(0, log.size() > 4000 ? log.size() - 4000 : 0);
    fprintf(stderr, "%s: server log (tail):\n%s\n", g_bench, log.c_str());
  }
  cleanup();
  exit(1);
}

inline void check_signal() {
  if (g_signal) fail("interrupted by signal " + std::to_string(int(g_signal)));
}

// Every sample of a /metrics body, label sets summed: name -> value.
inline std::map<std::string, double> parse_metrics(const std::string& body) {
  std::map<std::string, double> out;
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    size_t name_end = line.find_first_of("{ ");
    size_t value_at = line.rfind(' ');
    if (name_end == std::string::npos || value_at == std::string::npos) continue;
    out[line.substr(0, name_end)] += strtod(line.c_str() + value_at + 1, nullptr);
  }
  return out;
}

inline double metric(const std::map<std::string, double>& m, const char* name) {
  auto it = m.find(name);
  return it == m.end() ? 0 : it->second;
}

}  // namespace xerv::perf::serve
