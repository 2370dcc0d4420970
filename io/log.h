#pragma once
// Minimal process log used by the runtime. Lines carry the shard id so that
// interleaved output from several shards can be told apart. (The HTTP issue
// replaces the sink with per-shard non-blocking buffers; callers keep this API.)

#include <cstdarg>

namespace xerv::io {

enum class log_level { debug, info, warn, error };

void set_log_level(log_level level);
bool log_enabled(log_level level);
void log(log_level level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void vlog(log_level level, const char* fmt, va_list args);

}  // namespace xerv::io

#define XLOG(level, ...)                                                     \
  do {                                                                       \
    if (::xerv::io::log_enabled(::xerv::io::log_level::level))               \
      ::xerv::io::log(::xerv::io::log_level::level, __VA_ARGS__);            \
  } while (0)
