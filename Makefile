# nomarch: `make demo` to see it run, `make test` to check it. Both install what they need.
.PHONY: all deps build test sealed lint unit schemas demo sim bench fuzz clean

CARGO ?= cargo

all: build

deps:
	@bash scripts/deps.sh

build: deps
	$(CARGO) build --workspace --locked

# The whole suite: formatting, lints, unit, integration and end-to-end tests. Tests that need
# etcd start their own on a free loopback port.
test: deps lint unit

# `make test` in a copy of the repository made in an empty folder, traced: fails if anything
# outside the repository is read or a Debian package make deps does not install is used (CI).
sealed: deps
	bash scripts/sealed-run.sh make test

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
	$(CARGO) run --locked -p nomad-sim

# Benchmarks: figures next to a floor measured in the same run; never pass/fail.
bench: deps
	$(CARGO) build --release --locked -p bench -p nomad-sim -p controller
	./target/release/bench --out bench/results.json

# Fuzzes the manifest and webhook parsers and the API's request pieces (FUZZ_SECONDS each; nightly toolchain and
# cargo-fuzz, installed here if missing). New inputs land in fuzz/corpus/, which `make test`
# replays on stable; a crash is saved under fuzz/artifacts/.
FUZZ_SECONDS ?= 120
fuzz: deps
	@rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for target in manifest webhook api; do \
		cargo +nightly fuzz run -O $$target corpus/$$target -- \
			-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=1024 -max_len=65536 || exit 1; \
	done

clean:
	$(CARGO) clean
	rm -rf .demo
