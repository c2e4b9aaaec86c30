# edgerec: `make demo` runs the recorder on a test camera; `make test` runs every check CI runs.
.PHONY: deps build release demo test lint bench clean

deps:
	bash scripts/deps.sh

build: deps
	cargo build

release: deps
	cargo build --release

demo: release
	bash scripts/demo.sh

lint: deps
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

# Integration tests record in real time; they run side by side (they mostly wait on the clock).
test: lint
	cargo test --lib --bins
	cargo test --test recording -- --test-threads 8

bench: release
	bash bench/record.sh 4 60

clean:
	cargo clean
	rm -rf demo-data
