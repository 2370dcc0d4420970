#include "io/log.h"

#include <execinfo.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "io/assert.h"
#include "io/shard_id.h"

namespace xerv::io {
namespace {
log_level g_level = log_level::info;
const char* const k_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
}  // namespace

void set_log_level(log_level level) { g_level = level; }
bool log_enabled(log_level level) { return level >= g_level; }

void vlog(log_level level, const char* fmt, va_list args) {
  char line[2048];
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t{};
  gmtime_r(&ts.tv_sec, &t);
  int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ %-5s [shard %d] ", t.tm_year + 1900,
                   t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, ts.tv_nsec / 1000,
                   k_names[static_cast<int>(level)], current_shard_or_minus_one());
  if (n < 0) return;
  int m = vsnprintf(line + n, sizeof line - static_cast<size_t>(n) - 1, fmt, args);
  if (m < 0) return;
  size_t len = static_cast<size_t>(n) + std::min<size_t>(static_cast<size_t>(m), sizeof line - n - 2);
  line[len++] = '\n';
  // One write(2) per line keeps lines whole when shards log concurrently.
  ssize_t w = ::write(STDERR_FILENO, line, len);
  (void)w;  // Nothing useful to do if stderr is gone.
}

void log(log_level level, const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vlog(level, fmt, args);
  va_end(args);
}

namespace detail {
void assert_fail(const char* cond, const char* file, int line, const char* fmt, ...) {
  fprintf(stderr, "ASSERTION FAILED: %s at %s:%d: ", cond, file, line);
  va_list args;
  va_start(args, fmt);
  vfprintf(stderr, fmt, args);
  va_end(args);
  fputc('\n', stderr);
  void* frames[64];
  int count = backtrace(frames, 64);
  backtrace_symbols_fd(frames, count, STDERR_FILENO);
  abort();
}
}  // namespace detail

}  // namespace xerv::io
