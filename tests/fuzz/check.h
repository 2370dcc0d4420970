#pragma once
// A fuzz target's invariant: when it does not hold, say which one and trap, so
// libFuzzer saves the input (assert() is compiled out of release builds).

#include <cstdio>

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "invariant failed: %s at line %d\n", #cond, __LINE__); \
      __builtin_trap();                                                      \
    }                                                                        \
  } while (0)
