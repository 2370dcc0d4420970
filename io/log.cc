#include "io/log.h"

#include <execinfo.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "io/assert.h"
#include "io/reactor.h"
#include "io/shard_id.h"
#include "io/strings.h"

namespace xerv::io {
namespace {
log_level g_level = log_level::info;
log_format g_format = log_format::pretty;
const char* const k_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
const char* const k_json_names[] = {"debug", "info", "warn", "error"};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::optional<log_level> one_level(std::string_view s) {
  s = trim(s);
  if (s == "trace" || s == "debug") return log_level::debug;
  if (s == "info") return log_level::info;
  if (s == "warn" || s == "warning") return log_level::warn;
  if (s == "error") return log_level::error;
  return std::nullopt;
}
}  // namespace

void set_log_level(log_level level) { g_level = level; }
void set_log_format(log_format format) { g_format = format; }
bool log_enabled(log_level level) { return level >= g_level; }

std::optional<log_level> parse_log_level(std::string_view text) {
  std::optional<log_level> plain, ours;
  bool any = false;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = trim(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    if (item.empty()) continue;
    any = true;
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      plain = one_level(item);
      if (!plain) return std::nullopt;
    } else if (trim(item.substr(0, eq)) == "xerv") {
      ours = one_level(item.substr(eq + 1));
      if (!ours) return std::nullopt;
    }  // other crates' directives are irrelevant to us
  }
  if (!any) return std::nullopt;
  if (ours) return ours;
  if (plain) return plain;
  return log_level::info;
}

std::optional<log_format> parse_log_format(std::string_view text) {
  if (text == "pretty") return log_format::pretty;
  if (text == "compact") return log_format::compact;
  if (text == "json") return log_format::json;
  return std::nullopt;
}

void vlog(log_level level, const char* fmt, va_list args) {
  char msg[2048];
  int m = vsnprintf(msg, sizeof msg, fmt, args);
  if (m < 0) return;
  std::string_view text(msg, std::min<size_t>(static_cast<size_t>(m), sizeof msg - 1));

  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t{};
  gmtime_r(&ts.tv_sec, &t);
  int shard = current_shard_or_minus_one();
  char head[160];
  std::string line;
  line.reserve(text.size() + 96);
  switch (g_format) {
    case log_format::pretty: {
      char who[24];
      if (shard >= 0) snprintf(who, sizeof who, "shard %d", shard);
      else snprintf(who, sizeof who, "main");
      snprintf(head, sizeof head, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ %-5s [%s] ", t.tm_year + 1900, t.tm_mon + 1,
               t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, ts.tv_nsec / 1000, k_names[int(level)], who);
      line += head;
      line += text;
      break;
    }
    case log_format::compact:
      snprintf(head, sizeof head, "%02d:%02d:%02d.%03ld %c %d ", t.tm_hour, t.tm_min, t.tm_sec, ts.tv_nsec / 1000000,
               k_names[int(level)][0], shard);
      line += head;
      line += text;
      break;
    case log_format::json:
      snprintf(head, sizeof head, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ\",\"level\":\"%s\",\"shard\":%d,\"msg\":\"",
               t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, ts.tv_nsec / 1000,
               k_json_names[int(level)], shard);
      line += head;
      append_json_escaped(line, text);
      line += "\"}";
      break;
  }
  line += '\n';
  if (on_shard()) {
    this_reactor().append_log(line);
    return;
  }
  // One write(2) per line keeps lines whole when several threads log at once.
  ssize_t w = ::write(STDERR_FILENO, line.data(), line.size());
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
  if (on_shard()) this_reactor().flush_log_now();  // keep the lines that led here
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

const char* to_string(log_level level) {
  switch (level) {
    case log_level::debug: return "debug";
    case log_level::info: return "info";
    case log_level::warn: return "warn";
    case log_level::error: return "error";
  }
  return "info";
}

}  // namespace xerv::io
