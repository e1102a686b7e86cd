#pragma once
// DRAINMET_CHECK: for failures that cannot happen unless the program itself is wrong.
// Logs the condition and location to stderr, then aborts. Never use it on user input.

#include <cstdio>
#include <cstdlib>

#define DRAINMET_CHECK(cond)                                                                           \
  do {                                                                                                 \
    if (!(cond)) {                                                                                     \
      std::fprintf(stderr, "level=fatal msg=\"check failed\" cond=\"%s\" at=%s:%d\n", #cond, __FILE__, \
                   __LINE__);                                                                          \
      std::abort();                                                                                    \
    }                                                                                                  \
  } while (0)
