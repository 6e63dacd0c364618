// fuzz/fuzz_check.hpp — the one assertion the fuzz targets use for their invariants.
//
// A broken invariant prints what was expected and aborts, which libFuzzer reports as a crash and
// saves the input (crash-<sha1>) for a regression test.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond, what)                                                                 \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      std::fprintf(stderr, "\nFUZZ_CHECK failed at %s:%d: %s\n  invariant: %s\n", __FILE__,   \
                   __LINE__, #cond, what);                                                     \
      std::abort();                                                                            \
    }                                                                                          \
  } while (0)
