# Initial cache for the fuzz build (cmake -C fuzz/cache.cmake -S . -B build-fuzz -G Ninja).
# clang 14 for libFuzzer; every library instrumented for coverage, ASan and UBSan; fuzz/compat
# first on the include path for std::expected (see fuzz/compat/expected); Asio 1.22 only detects
# co_await on clang through <experimental/coroutine>, so it is told (clang 14 has the C++20 kind).
set(CMAKE_CXX_COMPILER clang++-14 CACHE STRING "")
set(CMAKE_BUILD_TYPE RelWithDebInfo CACHE STRING "")
set(BUZON_FUZZ ON CACHE BOOL "")
set(BUZON_TESTS OFF CACHE BOOL "")
get_filename_component(_buzon_fuzz_dir "${CMAKE_CURRENT_LIST_DIR}" ABSOLUTE)
set(CMAKE_CXX_FLAGS
    "-isystem ${_buzon_fuzz_dir}/compat -DASIO_HAS_CO_AWAIT=1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -gline-tables-only"
    CACHE STRING "")
