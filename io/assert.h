#pragma once
// ASSERT is on in every build: a broken invariant stops the process with the
// condition, location and a backtrace instead of corrupting state silently.

namespace xerv::io::detail {
[[noreturn]] void assert_fail(const char* cond, const char* file, int line, const char* fmt, ...)
    __attribute__((format(printf, 4, 5)));
}  // namespace xerv::io::detail

#define ASSERT(cond, ...)                                                                  \
  do {                                                                                     \
    if (__builtin_expect(!(cond), 0))                                                      \
      ::xerv::io::detail::assert_fail(#cond, __FILE__, __LINE__, " " __VA_ARGS__);          \
  } while (0)

#ifdef NDEBUG
#define DEBUG_ASSERT(cond, ...) \
  do {                          \
  } while (0)
#else
#define DEBUG_ASSERT(cond, ...) ASSERT(cond, __VA_ARGS__)
#endif
