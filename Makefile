# dockcast — see README.md. Targets: build run test bench stack stack-down.
SHELL := /usr/bin/env bash
GO ?= go
MODULES := shared publisher gateway
BIN := $(CURDIR)/bin
export CGO_ENABLED ?= 0

.PHONY: build run test test-deps lint bench bench-tools stack stack-down clean scale-demo

build:
	@mkdir -p $(BIN)
	cd publisher && $(GO) build -trimpath -o $(BIN)/publisher ./cmd/publisher
	cd gateway && $(GO) build -trimpath -o $(BIN)/gateway ./cmd/gateway
	cd publisher && $(GO) build -trimpath -o $(BIN)/nats-server github.com/nats-io/nats-server/v2

# The main job on one machine: the publisher with its embedded JetStream
# server, then the gateway; Ctrl-C stops both.
run: build
	@./scripts/run.sh

# Every test of every module, with the race detector (which needs cgo).
test: test-deps build lint
	@for m in $(MODULES); do \
		echo "== go test $$m"; \
		(cd $$m && CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 25m ./...) || exit 1; \
	done

# Benchmarks (figures: docs/benchmarks.md, docs/benchmarks-fanout.md,
# docs/benchmarks-page.md and docs/scaling.md). BENCH_QUICK=1 for a short run. fanbench runs the
# gateway side by side with NATS' WebSocket listener and Centrifugo (built
# into bin/tools when missing) and the publisher beside raw JetStream
# publishes; see gateway/cmd/fanbench/doc.go for its variables.
Q = $(if $(BENCH_QUICK),1,)
bench: test-deps build bench-tools
	cd publisher && $(GO) test -run '^$$' -bench 'WriterBurst|RawAsyncPublish|R3' -benchtime $(if $(Q),10000x,100000x) -count $(if $(Q),1,3) ./stream/
	cd publisher && $(GO) test -run '^$$' -bench DockerRunToStream -benchtime $(if $(Q),5x,30x) ./app/
	cd gateway && $(GO) build -o $(BIN)/fanbench ./cmd/fanbench
	BENCH_QUICK=$(BENCH_QUICK) $(BIN)/fanbench
	cd gateway && $(GO) test -run '^$$' -bench DockerEventsUntilOnly -benchtime $(if $(Q),1x,5x) ./app/
	cd gateway && $(GO) test -run '^$$' -bench Page -benchtime 1x -timeout 15m ./e2e/
	cd gateway && DOCKCAST_SCREENSHOT=1 $(GO) test -count=1 -run TestPageScreenshot ./e2e/
	cd publisher && BENCH_QUICK=$(Q) $(GO) test -run '^$$' -bench Sourcing -benchtime 1x -timeout 60m ./embedded/

# The scale demonstration (figures: docs/scaling.md): a 3-node central
# cluster, DEMO_PUBLISHERS edge publishers on stand-in engines, DEMO_GATEWAYS
# gateways, DEMO_CLIENTS WebSocket clients, all on 127.0.0.x; see
# gateway/cmd/scaledemo for its variables. Heavy: run it alone.
scale-demo: build
	cd gateway && $(GO) run ./cmd/scaledemo

bench-tools:
	@./scripts/bench-tools.sh

test-deps:
	@./scripts/test-deps.sh

lint:
	@for m in $(MODULES); do (cd $$m && $(GO) vet ./...) || exit 1; done
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The docker-compose stack: three images built locally FROM scratch from
# bin/ (no registry), then `docker compose up` (v2) or `docker-compose` (v1).
# DOCKCAST_PORT (default 8080) is the page's port on 127.0.0.1.
DOCKCAST_PROJECT ?= dockcast
stack: build
	@./scripts/stack-images.sh
	@./scripts/compose.sh -p $(DOCKCAST_PROJECT) up -d
	@echo "dockcast is up: http://127.0.0.1:$${DOCKCAST_PORT:-8080}  (make stack-down stops it)"

stack-down:
	@./scripts/compose.sh -p $(DOCKCAST_PROJECT) down

clean:
	rm -rf $(BIN)
