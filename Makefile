# jetfleet: `make dev` runs the fleet with a demo pipeline, `make test` runs every test.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
GO ?= go
BIN := bin/jetfleet
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# golangci-lint, built from the module proxy by scripts/tools.sh. The name
# carries the version, so changing the pin rebuilds it.
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := bin/tools/golangci-lint-$(GOLANGCI_LINT_VERSION)
# DuckDB links statically through cgo.
export CGO_ENABLED := 1

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z/_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: build
build: ## build bin/jetfleet
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/jetfleet

.PHONY: dev
dev: build ## run the whole fleet with demo data on an embedded NATS server
	./$(BIN) dev --demo --nats-config nats.conf

.PHONY: tools
tools: ## install what the tests need beyond Go (Debian's nats-server 2.9, the too-old server; chromium for the console test)
	scripts/tools.sh

$(GOLANGCI_LINT):
	scripts/tools.sh golangci-lint $(GOLANGCI_LINT_VERSION)

.PHONY: lint
lint: $(GOLANGCI_LINT) ## golangci-lint (.golangci.yml: import rules, bugs, formatting)
	$(GOLANGCI_LINT) run ./...

.PHONY: fmt
fmt: $(GOLANGCI_LINT) ## format the tree as lint wants it (gofumpt, gci)
	$(GOLANGCI_LINT) fmt ./...

.PHONY: test
test: tools lint ## lint + go mod tidy check + go vet + every test with the race detector (what CI runs)
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(GO) test -race -timeout 20m ./...

.PHONY: test/pipelines
test/pipelines: build ## run the examples' pipeline tests (jetfleet pipeline test examples/; go test runs them too)
	./$(BIN) pipeline test examples/

.PHONY: test/race
test/race: test ## alias of test

.PHONY: test/short
test/short: ## quick tests without the race detector
	$(GO) test -short ./...

.PHONY: test/long
test/long: ## soak, restart and cluster tests (build tag long)
	$(GO) test -race -tags long -timeout 60m ./...

.PHONY: chaos
chaos: ## fault suite: 200,000 records, workers and server SIGKILLed, summary table (SEED=n repeats a run)
	GO=$(GO) SEED=$(SEED) RECORDS=$(RECORDS) RATE=$(RATE) SYNC=$(SYNC) scripts/chaos.sh

.PHONY: smoke
smoke: build ## the shop demo end to end through the CLI
	scripts/smoke.sh

.PHONY: cluster/up
cluster/up: build ## start a 3-node JetStream cluster on loopback (scripts/cluster/local.sh)
	scripts/cluster/local.sh start

.PHONY: cluster/down
cluster/down: ## stop the loopback cluster (its data stays in .jetfleet/cluster)
	scripts/cluster/local.sh stop

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME each (default 20s)
	scripts/fuzz.sh $(or $(FUZZTIME),20s)

.PHONY: bench
bench: build ## the bench harness, record and bulk mode, reports under bench/results (EVENTS=n, BULK_EVENTS=n)
	./$(BIN) bench --mode record --events $(or $(EVENTS),100000) --report bench/results --json bench/results/last-record.json --log-level warn
	./$(BIN) bench --mode bulk --events $(or $(BULK_EVENTS),1000000) --report bench/results --json bench/results/last-bulk.json --log-level warn

.PHONY: bench/file
bench/file: build ## the shop demo on a file through jetfleet dev and publish --bulk (EVENTS=n, BULK=n), marts checked, with the batch baseline
	scripts/bench-file.sh $(or $(EVENTS),1000000) $(or $(BULK),100)

.PHONY: bench/latency
bench/latency: build ## open-loop latency at RATE records/s (default 5000) for DURATION (default 1m)
	./$(BIN) bench --rate $(or $(RATE),5000) --duration $(or $(DURATION),1m) --report bench/results --log-level warn

.PHONY: bench/go
bench/go: ## Go benchmarks of the hot paths (ITERATIONS=n sets -count)
	$(GO) test -run '^$$' -bench . -benchmem -count $(or $(ITERATIONS),1) ./...

.PHONY: tidy
tidy: ## go mod tidy
	$(GO) mod tidy

.PHONY: clean
clean: ## remove build output and the dev data dir
	rm -rf bin .jetfleet
