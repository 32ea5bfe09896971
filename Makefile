# etcd-release developer entry points. Logic lives in Go (src/); these targets only wire it up.
SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/bin

.PHONY: all build test test-unit vet deploy destroy cluster cluster-down bench-put bench-roll bench-deploy clean

all: build

build: ## build etcd_ctl into bin/
	$(GO) build -o $(BIN)/etcd_ctl ./src/etcd_ctl

vet:
	$(GO) vet ./...

test: ## everything CI runs (unit + integration against real etcd_ctl processes)
	scripts/test

test-unit: ## fast tests only
	$(GO) test -short ./...

deploy: ## the main job: deploy manifests/etcd.yml with the local director (started if needed); OPS="-o file ..." adds ops files
	scripts/deploy $(OPS)

destroy: ## delete the etcd deployment and stop the local director
	scripts/destroy

cluster: build ## start a local 3-member TLS cluster of etcd_ctl processes on loopback
	scripts/local-cluster up

cluster-down:
	scripts/local-cluster down

bench-put: ## put throughput of etcd_ctl vs a plain etcd server, and etcd_ctl's extra memory
	$(GO) run ./src/bench/cmd/bench-put

clean:
	rm -rf $(BIN) .cache

bench-roll: ## rolling restart stall with vs without leadership transfer; keep-data restart vs wipe+resync
	$(GO) run ./src/bench/cmd/bench-roll

.PHONY: bench-resync
BENCH_RESYNC_MIB ?= 64,1024
bench-resync: ## keep-data restart vs wipe-rejoin of one member for 64 MiB and 1 GiB side by side (BENCH_RESYNC_MIB to change)
	$(GO) run ./src/bench/cmd/bench-roll -skip-roll -data-mib $(BENCH_RESYNC_MIB)

.PHONY: acceptance
acceptance: ## acceptance suite against the local director (started if needed); ACCEPTANCE_LABELS=ci runs the CI subset
	acceptance-tests/run-local

bench-deploy: ## local director: 3-member TLS deploy to all running, rolling update, delete (needs scripts/deploy first)
	$(GO) run ./src/bench/cmd/bench-deploy

.PHONY: bench-churn bench-defrag
bench-churn: ## keyspace maintenance: db and in-use size over time under a fixed churn against a small quota
	$(GO) run ./src/bench/cmd/bench-churn $(ARGS)

bench-defrag: ## cluster-wide defragmentation under load: failed writes, longest stall, p99 vs no defragmentation
	$(GO) run ./src/bench/cmd/bench-defrag $(ARGS)
.PHONY: bench-backup
bench-backup: ## verified snapshot of a 1 GiB keyspace vs copying the db file, puts during it, restore of 3 members
	$(GO) run ./src/bench/cmd/bench-backup

.PHONY: campaign
CYCLES ?= 20
campaign: ## fault campaign on the local director: every fault CYCLES times on 3 and 5 TLS members under load; SEED replays, FAULTS and SIZES narrow; prints the results table
	CAMPAIGN_CYCLES=$(CYCLES) CAMPAIGN_SEED=$(SEED) CAMPAIGN_FAULTS="$(FAULTS)" CAMPAIGN_SIZES=$(SIZES) \
	ACCEPTANCE_LABELS=campaign ACCEPTANCE_TIMEOUT=$${ACCEPTANCE_TIMEOUT:-12h} acceptance-tests/run-local
