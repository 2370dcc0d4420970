#pragma once
// Process log. On a shard, a line is formatted into the shard's own buffer and the
// buffer is written to stderr through the shard's ring once per loop iteration, so
// logging never blocks a shard; if stderr cannot keep up, the buffer is capped and
// the lines that did not fit are counted and reported as dropped. Off a shard (the
// main thread before start, helper threads), lines are written directly.

#include <cstdarg>
#include <optional>
#include <string_view>

namespace xerv::io {

enum class log_level { debug, info, warn, error };
enum class log_format { pretty, compact, json };

void set_log_level(log_level level);
void set_log_format(log_format format);
bool log_enabled(log_level level);
void log(log_level level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void vlog(log_level level, const char* fmt, va_list args);

// "debug", "info", "warn"/"warning", "error" ("trace" counts as debug). Also accepts
// RUST_LOG-style lists ("xerv=debug", "warn,xerv=debug"): the xerv entry wins.
std::optional<log_level> parse_log_level(std::string_view text);
const char* to_string(log_level level);
std::optional<log_format> parse_log_format(std::string_view text);

}  // namespace xerv::io

#define XLOG(level, ...)                                                     \
  do {                                                                       \
    if (::xerv::io::log_enabled(::xerv::io::log_level::level))               \
      ::xerv::io::log(::xerv::io::log_level::level, __VA_ARGS__);            \
  } while (0)
