# pki-agent: `make run` starts the agent on loopback with its embedded
# defaults; `make test` installs what the tests need and runs them all.
GO ?= go
STATE_DIR ?= ./var
GNMI_ADDR ?= 127.0.0.1:9339
NETCONF_ADDR ?= 127.0.0.1:830
# ARGS are more flags for `make run`, e.g. make run ARGS='--tpm sim'.
ARGS ?=
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: run build test deps generate bench microbench lint fuzz faults

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/pki-agent ./cmd/pki-agent
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/pkictl ./cmd/pkictl

# The agent runs in place of the recipe's shell (exec), not under `go run`,
# so Ctrl-C reaches it alone and its clean exit is make's: no
# "make: *** Error 1" after a clean shutdown.
run: build
	exec bin/pki-agent --state-dir $(STATE_DIR) --gnmi-addr $(GNMI_ADDR) --netconf-addr $(NETCONF_ADDR) $(ARGS)

deps:
	./scripts/install-deps.sh

test: deps
	$(GO) vet ./...
	$(GO) test -race -timeout 25m ./...

# The fault suite in its long mode (minutes, bounded): kill -9 during
# writes, a full disk, a login flood, 100 mixed clients, lost updates,
# restart equivalence. `make test` runs its short mode.
faults: deps
	PKI_AGENT_FAULTS=long $(GO) test -race -count=1 -v -timeout 30m -run 'Fault|Flood|RestartEquivalence|NETCONFCommitKeepsGNMISets|WritersLoseNothing' ./cmd/pki-agent/

generate:
	$(GO) generate ./...

# bench/REPORT.md: the agent beside openssl (and its own goals), from one
# run on this machine; BENCH_SHORT=1 takes a few minutes, the full run
# about twenty (the report states how long it took).
bench: build
	$(GO) build -o bin/benchreport ./bench/cmd/benchreport
	./bin/benchreport -agent bin/pki-agent -out bench/REPORT.md

# Every go test benchmark of the module.
microbench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

lint:
	gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')
	$(GO) vet ./...
	yanglint -p yang yang/*.yang
