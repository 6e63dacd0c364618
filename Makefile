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

test: build
	@cd $(BUILD) && ctest --output-on-failure --timeout 900 -j $(JOBS)
ifneq ($(SANITIZE),0)
ifneq ($(FULL),)
	@$(MAKE) --no-print-directory sanitize fuzz FUZZ_SECONDS=$(CI_FUZZ_SECONDS)
endif
endif

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

# ---- Reliability (issue 9, fuzz/README.md) ----------------------------------------------------
#   make sanitize  unit tests under ASan+UBSan (g++, $(ASAN_BUILD)); any report fails
#   make tsan      the server under ThreadSanitizer ($(TSAN_BUILD)): the unit tests, then the
#                  real binary hammered by tests/integration/test_reliability_threads.py
#   make fuzz      each libFuzzer target for FUZZ_SECONDS (clang 19, $(FUZZ_BUILD)); FUZZ_TARGETS=...
#   make stress    reliability tests x STRESS_SCALE, tsan, fuzz STRESS_FUZZ_SECONDS each
# `make test FULL=1` also runs sanitize and fuzz (CI_FUZZ_SECONDS each) after the normal ctest run;
# plain `make test` (CI) does not yet: the sanitizer build doubles CI time (see the issue note).
ASAN_BUILD          ?= build-asan
TSAN_BUILD          ?= build-tsan
FUZZ_BUILD          ?= build-fuzz
SAN_JOBS            ?= 2
FUZZ_SECONDS        ?= 60
CI_FUZZ_SECONDS     ?= 10
STRESS_SCALE        ?= 10
STRESS_FUZZ_SECONDS ?= 600
SAN_ENV := ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:strict_init_order=1 \
           UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
TSAN_ENV := TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

.PHONY: sanitize tsan fuzz stress
sanitize: deps
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBUZON_WERROR=OFF -DCMAKE_CXX_FLAGS_DEBUG=-g1 \
	  -DCMAKE_CXX_FLAGS="-O0 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" >/dev/null
	@ninja -C $(ASAN_BUILD) -j $(SAN_JOBS)
	@cd $(ASAN_BUILD) && $(SAN_ENV) ctest --output-on-failure --timeout 900 -L unit -j $(SAN_JOBS)

tsan: deps
	@cmake -S . -B $(TSAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBUZON_WERROR=OFF \
	  -DCMAKE_CXX_FLAGS="-O1 -fsanitize=thread -fno-omit-frame-pointer" >/dev/null
	@ninja -C $(TSAN_BUILD) -j $(SAN_JOBS)
	@cd $(TSAN_BUILD) && $(TSAN_ENV) ctest --output-on-failure --timeout 900 -L unit -j $(SAN_JOBS)
	@cd tests/integration && BUZON_BIN=$(abspath $(TSAN_BUILD))/buzon TSAN_OPTIONS=halt_on_error=0:second_deadlock_stack=1 \
	  /usr/bin/python3 -m pytest -q -p no:cacheprovider test_reliability_threads.py

fuzz: deps
	@FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_JOBS=$(SAN_JOBS) bash fuzz/run $(FUZZ_SECONDS) $(FUZZ_TARGETS)

stress: build
	@cd $(BUILD) && BUZON_STRESS_SCALE=$(STRESS_SCALE) ctest --output-on-failure --timeout 7200 -L reliability
	@$(MAKE) --no-print-directory tsan
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(STRESS_FUZZ_SECONDS)
