# Switchboard: the two commands a newcomer needs are `make demo` and `make test`.

CARGO ?= cargo
ADAPTERS_DIR ?= dist/adapters

.PHONY: demo test adapters build lint bench bench-e2e bench-ingest bench-reload bench-scale bench-triggers clean-demo

## Run a win-back campaign end to end against the platform simulator.
demo: adapters build
	@bash scripts/demo.sh

## Every test: unit, adapter, simulator, end-to-end and sandbox; and the
## JavaScript adapters' own unit tests (Node.js). The PostgreSQL store and
## multi-node tests use the server at 127.0.0.1:5432 (started or installed
## if missing).
test: adapters
	@bash scripts/ensure-postgres.sh
	$(CARGO) test --workspace
	@for dir in plugins/*/; do \
	  if [ -f "$$dir/package.json" ]; then (cd "$$dir" && npm test --silent) || exit 1; fi; \
	done

## Build every adapter for wasm32-wasip2 into $(ADAPTERS_DIR).
adapters:
	@bash scripts/build-adapters.sh $(ADAPTERS_DIR) >/dev/null

## Build the host and the simulator.
build:
	$(CARGO) build --bin switchboard --bin switchboard-simulator

## Formatting and lints, as CI wants them.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Benchmarks (figures recorded in docs/benchmarks.md).
bench: adapters
	$(CARGO) bench -p switchboard-e2e --bench adapter_call
	$(CARGO) bench -p switchboard-e2e --bench adapters
	$(CARGO) bench -p switchboard-store --bench outbox_phases

## End-to-end throughput of the release binaries against a plain reqwest
## loop into the same simulator; last line: `switchboard X msg/s, raw Y
## msg/s, ratio Z`. COUNT=N recipients (default 100000).
bench-e2e:
	@bash scripts/bench-e2e.sh

## Audience ingest speed and peak memory: `switchboard send --dry-run` over
## 100k, 1M and 10M rows (SIZES="…" to choose).
bench-ingest:
	@bash scripts/bench-ingest.sh

## Hot swap: a running host's reload of a new adapter version, timed.
bench-reload:
	@bash scripts/bench-reload.sh

## Scale-out: one, two and three `serve` nodes on one PostgreSQL outbox
## against one on SQLite (COUNT=N recipients, NODES="1 2 3").
bench-scale:
	@bash scripts/bench-scale.sh

## Trigger latency, event to platform, under a steady load of events
## (RATE=events/s, SECONDS=duration).
bench-triggers: adapters
	$(CARGO) bench -p switchboard-e2e --bench trigger_latency

clean-demo:
	rm -rf demo-out
