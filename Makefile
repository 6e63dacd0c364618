# buzon — the two commands of the README:
#   make run    installs what is missing, builds, starts a demo server on 127.0.0.1:1110
#   make test   installs what is missing, builds, runs every test (ctest)
BUILD      ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS       ?= $(shell nproc)
WERROR     := $(if $(CI),ON,OFF)

.PHONY: all deps build run test unit integration bench clean deb install

all: build

deps:
	@bash scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DBUZON_WERROR=$(WERROR) >/dev/null
	@ninja -C $(BUILD) -j $(JOBS)

run: build
	@bash scripts/run-demo $(BUILD)/buzon

# After the normal ctest run, `make test` also runs the reliability builds (docs/RELIABILITY.md):
# every test under ASan+UBSan, each fuzz target for CI_FUZZ_SECONDS, the threaded parts under TSan.
# SANITIZE=0 skips them (a developer's quick run); each part prints its wall time.
T0 := $(shell date +%s)
test: build
	@echo "make test: build $$(( $$(date +%s) - $(T0) )) s"
	@t=$$(date +%s); cd $(BUILD) && ctest --output-on-failure --timeout 900 -j $(JOBS); rc=$$?; \
	  echo "make test: ctest $$(( $$(date +%s) - t )) s"; exit $$rc
ifneq ($(SANITIZE),0)
	@$(MAKE) --no-print-directory sanitize
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(CI_FUZZ_SECONDS)
	@$(MAKE) --no-print-directory tsan
endif
	@echo "make test: all passed in $$(( $$(date +%s) - $(T0) )) s"

unit: build
	@cd $(BUILD) && ctest --output-on-failure -L unit -j $(JOBS)

integration: build
	@cd $(BUILD) && ctest --output-on-failure -L integration

# Benchmarks side by side with a private Dovecot and Postfix (issue 6): writes docs/benchmarks.md.
# QUICK=1 runs a reduced version of every workload (< 2 min) and writes $(BUILD)/bench/benchmarks-quick.md.
bench: build
	@ninja -C $(BUILD) -j $(JOBS) buzon_loadgen
	@python3 bench/run --build $(BUILD) $(if $(QUICK),--quick)

# Debian package (issue 7): a Release build of its own in $(BUILD)-deb, then CPack; the .deb is in
# $(BUILD)-deb/packages/. Install it with `dpkg -i` (creates the buzon user, keeps a changed config).
deb: deps
	@cmake -S . -B $(BUILD)-deb -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUZON_TESTS=OFF -DBUZON_WERROR=$(WERROR) >/dev/null
	@ninja -C $(BUILD)-deb -j $(JOBS) buzon
	@cd $(BUILD)-deb && cpack -G DEB -B packages >/dev/null
	@ls $(BUILD)-deb/packages/*.deb

# For systems without dpkg: binary, units, config (never overwritten) and docs under PREFIX.
PREFIX ?= /usr/local
install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD)

# ---- Reliability (issue 9, fuzz/README.md, docs/RELIABILITY.md) ----------------------------------
#   make sanitize  ONE clang-19 build ($(SAN_BUILD), fuzz/cache.cmake: ASan+UBSan+libFuzzer coverage)
#                  of everything: buzon, the unit tests and the fuzz targets; then the WHOLE ctest
#                  suite (unit, integration, e2e) against it. Reports of the servers the integration
#                  tests start go to $(SAN_BUILD)/sanitizer-logs (each fails its test); any report
#                  there fails the run.
#   make tsan      the threaded parts under ThreadSanitizer (g++, $(TSAN_BUILD), only the targets it
#                  runs): the thread-related unit tests, then the real binary in
#                  test_reliability_threads.py and test_reliability_queue_crash.py
#   make fuzz      each libFuzzer target for FUZZ_SECONDS (in $(SAN_BUILD)); FUZZ_TARGETS=...
#   make stress    reliability tests x STRESS_SCALE, tsan, fuzz STRESS_FUZZ_SECONDS each
# `make test` runs sanitize, fuzz (CI_FUZZ_SECONDS each) and tsan after the normal ctest run;
# `make test SANITIZE=0` does not.
SAN_BUILD           ?= build-san
TSAN_BUILD          ?= build-tsan
FUZZ_BUILD          ?= $(SAN_BUILD)
SAN_JOBS            ?= 2
FUZZ_SECONDS        ?= 60
CI_FUZZ_SECONDS     ?= 5
STRESS_SCALE        ?= 10
STRESS_FUZZ_SECONDS ?= 600
# The unit-test binaries with threads of their own (metrics, worker pool, maildrop and spool locks,
# the relay, the connection limiter).
TSAN_UNIT           ?= core_test store_test queue_test relay_test server_test
SAN_LOGS  = $(abspath $(SAN_BUILD))/sanitizer-logs
TSAN_LOGS = $(abspath $(TSAN_BUILD))/sanitizer-logs
SAN_ENV := BUZON_SANITIZER=asan+ubsan \
           ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:strict_init_order=1:check_initialization_order=1 \
           UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
TSAN_ENV := BUZON_SANITIZER=tsan TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
# Fails (and shows them) when sanitizer reports were written below $(1).
check_reports = if [ -n "$$(find $(1) -type f 2>/dev/null)" ]; then \
	  for f in $$(find $(1) -type f); do echo "=== $$f"; tail -c 8000 $$f; done; \
	  echo "sanitizer reports in $(1)"; exit 1; fi

.PHONY: sanitize tsan fuzz stress
sanitize: deps
	@t=$$(date +%s); \
	  { [ -f $(SAN_BUILD)/build.ninja ] || cmake -C fuzz/cache.cmake -S . -B $(SAN_BUILD) -G Ninja >/dev/null; } && \
	  nice ninja -C $(SAN_BUILD) -j $(SAN_JOBS) && echo "make test: sanitize build $$(( $$(date +%s) - t )) s"
	@rm -rf $(SAN_LOGS)
	@t=$$(date +%s); cd $(SAN_BUILD) && $(SAN_ENV) BUZON_SANITIZER_LOG_DIR=$(SAN_LOGS) \
	  ctest --output-on-failure --timeout 900 -j $(SAN_JOBS); rc=$$?; \
	  echo "make test: sanitize ctest (ASan+UBSan) $$(( $$(date +%s) - t )) s"; \
	  $(call check_reports,$(SAN_LOGS)); exit $$rc

tsan: deps
	@t=$$(date +%s); \
	  cmake -S . -B $(TSAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBUZON_WERROR=OFF -DCMAKE_CXX_FLAGS_DEBUG=-g1 \
	  -DCMAKE_CXX_FLAGS="-O1 -fsanitize=thread -fno-omit-frame-pointer -Wno-tsan" >/dev/null && \
	  nice ninja -C $(TSAN_BUILD) -j $(SAN_JOBS) buzon $(TSAN_UNIT) && echo "make test: tsan build $$(( $$(date +%s) - t )) s"
	@rm -rf $(TSAN_LOGS)
	@t=$$(date +%s); for u in $(TSAN_UNIT); do \
	  $(TSAN_ENV) $(TSAN_BUILD)/$$u --gtest_brief=1 || { echo "tsan: $$u failed"; exit 1; }; done; \
	  cd tests/integration && BUZON_BIN=$(abspath $(TSAN_BUILD))/buzon BUZON_SOURCE_DIR=$(CURDIR) \
	  $(TSAN_ENV) BUZON_SANITIZER_LOG_DIR=$(TSAN_LOGS) /usr/bin/python3 -m pytest -q -p no:cacheprovider \
	  test_reliability_threads.py test_reliability_queue_crash.py; rc=$$?; \
	  echo "make test: tsan tests $$(( $$(date +%s) - t )) s"; \
	  $(call check_reports,$(TSAN_LOGS)); exit $$rc

fuzz: deps
	@t=$$(date +%s); FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_JOBS=$(SAN_JOBS) bash fuzz/run $(FUZZ_SECONDS) $(FUZZ_TARGETS); rc=$$?; \
	  echo "make test: fuzz $$(( $$(date +%s) - t )) s"; exit $$rc

stress: build
	@cd $(BUILD) && BUZON_STRESS_SCALE=$(STRESS_SCALE) ctest --output-on-failure --timeout 7200 -L reliability
	@$(MAKE) --no-print-directory tsan BUZON_STRESS_SCALE=$(STRESS_SCALE)
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(STRESS_FUZZ_SECONDS)
