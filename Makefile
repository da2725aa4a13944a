# orderhub: `make run` serves on the in-memory store; `make test` runs everything.
.DEFAULT_GOAL := help
SHELL := /bin/bash
GO ?= go
PKGS := ./...
# go build stamps the commit into the binary (orderhub_build_info); go run
# and go test do not, so they get it here.
BUILDINFO := github.com/orderhub/orderhub/impl/buildinfo
LDFLAGS := -X $(BUILDINFO).version=$(shell git describe --tags --always --dirty 2>/dev/null || echo devel) -X $(BUILDINFO).revision=$(shell git rev-parse HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: generate
generate: ## regenerate generated/ from openapi/orderhub.yaml: the Go code and the partner edition (generated/partner)
	$(GO) generate ./generated/...

.PHONY: check-generated
check-generated: ## fail when generated/ differs from a fresh generation
	scripts/check-generated.sh

.PHONY: run
run: ## serve on 127.0.0.1:8080 with the in-memory store (ORDERHUB_* variables apply)
	ORDERHUB_DEV=1 ORDERHUB_ADDR="$${ORDERHUB_ADDR:-127.0.0.1:8080}" ORDERHUB_ADMIN_TOKEN="$${ORDERHUB_ADMIN_TOKEN:-dev-admin-token}" $(GO) run -ldflags "$(LDFLAGS)" ./impl/cmd/orderhub

.PHONY: build
build: ## the orderhub binary, bin/orderhub, stamped with version and commit; CRYPTO=boringcrypto for the faster-crypto build (cgo, linux amd64/arm64)
	$(if $(filter boringcrypto,$(CRYPTO)),CGO_ENABLED=1 GOEXPERIMENT=boringcrypto,) $(GO) build -ldflags "$(LDFLAGS)" -o bin/orderhub ./impl/cmd/orderhub

.PHONY: docs
docs: ## build the partner edition and its reference page, generated/partner (embedded, served at /docs)
	scripts/build-partner.sh

.PHONY: tools
tools: ## install what the checks need, when missing: redis-server, chromium, the npm tools, oasdiff, staticcheck
	scripts/ensure-redis.sh
	scripts/ensure-chromium.sh
	scripts/ensure-node-tools.sh
	scripts/ensure-go-tools.sh

.PHONY: lint
lint: ## gofmt, go vet, staticcheck, and the contract: Spectral, Redocly, oasdiff breaking changes, TypeScript types
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted" >&2; exit 1; fi
	$(GO) vet $(PKGS)
	cd tests/downstream && $(GO) vet ./...
	scripts/ensure-go-tools.sh
	scripts/tools/bin/staticcheck $(PKGS)
	scripts/lint-spec.sh
	scripts/check-typescript.sh

.PHONY: test
test: ## everything: tools (installed if missing), generated code and partner edition, lint, go test -race
	$(MAKE) --no-print-directory tools
	$(MAKE) --no-print-directory check-generated
	$(MAKE) --no-print-directory lint
	@# The contract suite on Redis Clusters runs beside the rest: the single
	@# node's contract suite is the long pole, and a core would idle. Both
	@# must pass.
	@ORDERHUB_TEST_REDIS=cluster $(GO) test -race -count=1 ./tests/contract > .cluster-test.log 2>&1 & cluster=$$!; \
	  $(GO) test -race -count=1 -ldflags "$(LDFLAGS)" $(PKGS); single=$$?; \
	  (cd tests/downstream && $(GO) test -race -count=1 ./...); downstream=$$?; \
	  wait $$cluster; clustered=$$?; \
	  echo "ORDERHUB_TEST_REDIS=cluster go test -race ./tests/contract:"; cat .cluster-test.log; rm -f .cluster-test.log; \
	  test $$single -eq 0 && test $$downstream -eq 0 && test $$clustered -eq 0

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME each (default 30s); a failing input lands in testdata/fuzz
	GO="$(GO)" scripts/fuzz.sh

.PHONY: soak
soak: ## the reliability and failover tests at soak size: more notifications, fault and kill cycles, tight failover bounds, the ORDERHUB_REDIS_MIN_REPLICAS kill loop and the durability latencies (minutes)
	scripts/ensure-redis.sh
	ORDERHUB_SOAK=1 $(GO) test -race -count=1 -timeout 30m -v ./tests/reliability/ ./tests/failover/

# make bench: BENCH_TIME is the measured time of each cell of the network
# bench per round; CRYPTO=boringcrypto also builds orderhub and the sign-only
# baseline with GOEXPERIMENT=boringcrypto and runs them beside the pure-Go
# build; BENCH_FLAGS passes flags to tests/netbench (-only, -profile, -rounds,
# -out, -compare).
BENCH_TIME ?= 2s
CRYPTO ?= go
BENCH_FLAGS ?=

.PHONY: bench
bench: ## benchmarks: the request path in process (tests/bench), then over loopback against baselines (tests/netbench); BENCH_TIME=2s, CRYPTO=boringcrypto
	scripts/ensure-redis.sh
	$(GO) test -run '^$$' -bench . -benchmem ./tests/bench/
	GO="$(GO)" LDFLAGS="$(LDFLAGS)" BENCH_TIME="$(BENCH_TIME)" CRYPTO="$(CRYPTO)" BENCH_FLAGS="$(BENCH_FLAGS)" scripts/netbench.sh
