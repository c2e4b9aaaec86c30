# edgerec: `make demo` runs the recorder on a test camera; `make test` runs every check CI runs.
.PHONY: deps build release demo test lint bench clean cross-aarch64

deps:
	bash .ci/deps.sh

build: deps
	cargo build

release: deps
	cargo build --release

demo: release
	bash .ci/demo.sh

lint: deps
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --no-default-features --lib --bins -- -D warnings
	bash .ci/check-supply-chain.sh

# Integration tests record in real time; they run side by side (they mostly wait on the clock).
test: lint
	cargo test --lib --bins
	cargo build --bins
	bash .ci/check-packaging.sh
	cargo test --test playback_rules
	cargo test --test recording --test systemd --test playback --test mqtt --test upload --test evr --test motion --test motion_detector --test probe --test export --test ui --test audio --test cloud -- --test-threads 12
	# The same recording, playback, MQTT and upload tests with the other RTSP client.
	EDGEREC_TEST_SOURCE=rtspsrc cargo test --test recording --test playback --test mqtt --test upload -- --test-threads 12

bench: release
	bash bench/record.sh 4 60
	bash bench/playback.sh
	bash bench/upload.sh
	bash bench/cloud.sh
	bash bench/motion.sh
	bash bench/export.sh

clean:
	cargo clean
	rm -rf demo-data

# aarch64 without Docker (Debian multiarch), checked under qemu-user; see .ci/cross-aarch64.sh.
cross-aarch64:
	cargo build --release --no-default-features --features upload,mqtt,ui --bin edgerec
	bash .ci/cross-aarch64.sh --record
