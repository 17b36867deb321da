# nomarch: `make demo` to see it run, `make test` to check it. Both install what they need.
.PHONY: all deps build test lint unit schemas demo sim bench clean

CARGO ?= cargo

all: build

deps:
	@bash scripts/deps.sh

build: deps
	$(CARGO) build --workspace --locked

# The whole suite: formatting, lints, unit, integration and end-to-end tests. Tests that need
# etcd start their own on a free loopback port.
test: deps lint unit

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit:
	$(CARGO) test --workspace --locked

# Regenerates crds/schemas/ (JSON Schemas and REFERENCE.md) from the types.
schemas:
	NOMARCH_WRITE_SCHEMAS=1 $(CARGO) test -p crds --test schemas --locked

demo: build
	@bash scripts/demo.sh

# nomad-sim on the default ports with the default cluster (3 workers, 2 hubs).
sim: deps
	$(CARGO) run --locked -p e2e --bin nomad-sim

# Benchmarks: figures next to a floor measured in the same run; never pass/fail.
bench: deps
	$(CARGO) build --release --locked -p bench -p e2e -p controller
	./target/release/bench --out bench/results.json

clean:
	$(CARGO) clean
	rm -rf .demo
