# Initial cache for the fuzz build: cmake -C fuzz/cache.cmake -S . -B build-fuzz -G Ninja
# (fuzz/run does this). Every library is instrumented for libFuzzer coverage, ASan and UBSan.
#
# Why clang 19 (Debian 12's clang-19 + libclang-rt-19-dev, from scripts/install-deps) and not 14:
# libFuzzer needs clang (LLVM 14 dropped GCC's -fsanitize-coverage=trace-pc), and clang 14 cannot
# compile this C++23 code over libstdc++ 12: <expected> needs __cpp_concepts >= 202002 and
# conditionally trivial destructors (P0848, clang 16), and lambdas capturing structured bindings
# (P1091, clang 16) are in use. clang 19 is the newest in Debian 12 and accepts what g++ 12 accepts.
# Asio 1.22 detects co_await on clang only through <experimental/coroutine>, so it is told.
set(CMAKE_CXX_COMPILER clang++-19 CACHE STRING "")
set(CMAKE_BUILD_TYPE RelWithDebInfo CACHE STRING "")
# -O1 (not -O2) halves compile time at nearly the same fuzzing speed; asserts stay on (no NDEBUG).
set(CMAKE_CXX_FLAGS_RELWITHDEBINFO "-O1" CACHE STRING "")
set(BUZON_FUZZ ON CACHE BOOL "")
set(BUZON_TESTS OFF CACHE BOOL "")
set(CMAKE_CXX_FLAGS
    "-DASIO_HAS_CO_AWAIT=1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -gline-tables-only"
    CACHE STRING "")
