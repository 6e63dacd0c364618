# Initial cache for the sanitizer build: cmake -C fuzz/cache.cmake -S . -B build-san -G Ninja
# (`make sanitize` and fuzz/run do this). ONE build serves three purposes: every library is
# instrumented for libFuzzer coverage, ASan and UBSan, so the same objects link into the fuzz
# targets (with -fsanitize=fuzzer), the unit tests and the buzon binary that the integration tests
# run (docs/RELIABILITY.md). The coverage callbacks of fuzzer-no-link cost little outside a fuzzer
# (the sanitizer runtime provides them).
#
# Why clang 19 (Debian 12's clang-19 + libclang-rt-19-dev, from scripts/install-deps) and not 14:
# libFuzzer needs clang (LLVM 14 dropped GCC's -fsanitize-coverage=trace-pc), and clang 14 cannot
# compile this C++23 code over libstdc++ 12: <expected> needs __cpp_concepts >= 202002 and
# conditionally trivial destructors (P0848, clang 16), and lambdas capturing structured bindings
# (P1091, clang 16) are in use. clang 19 is the newest in Debian 12 and accepts what g++ 12 accepts.
# Asio 1.22 detects co_await on clang only through <experimental/coroutine>, so it is told.
set(CMAKE_CXX_COMPILER clang++-19 CACHE STRING "")
set(CMAKE_BUILD_TYPE RelWithDebInfo CACHE STRING "")
# -O0: under ASan+UBSan+coverage it compiles 2.3x faster than -O1 (smtp/server_session.cpp: 13 s
# against 30 s of CPU), which is what keeps `make test` within its CI budget (docs/RELIABILITY.md);
# fuzzing runs slower. For a long campaign use a build of its own with
# -DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1. Asserts stay on (no NDEBUG).
set(CMAKE_CXX_FLAGS_RELWITHDEBINFO "-O0" CACHE STRING "")
set(BUZON_FUZZ ON CACHE BOOL "")
set(BUZON_TESTS ON CACHE BOOL "")
set(CMAKE_CXX_FLAGS
    "-DASIO_HAS_CO_AWAIT=1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -gline-tables-only"
    CACHE STRING "")
