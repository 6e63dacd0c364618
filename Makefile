# buzon — the two commands of the README:
#   make run    installs what is missing, builds, starts a demo server on 127.0.0.1:1110
#   make test   installs what is missing, builds, runs every test (ctest)
BUILD      ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS       ?= $(shell nproc)
WERROR     := $(if $(CI),ON,OFF)

.PHONY: all deps build run test unit integration clean

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

unit: build
	@cd $(BUILD) && ctest --output-on-failure -L unit -j $(JOBS)

integration: build
	@cd $(BUILD) && ctest --output-on-failure -L integration

clean:
	rm -rf $(BUILD)
