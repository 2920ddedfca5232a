# slabfuse: `just --list` explains every recipe.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Build everything (release: the daemon, the examples, the benches).
build:
    cargo build --workspace --release --all-targets

# Run every test: unit, simulated kernel, real mounts, proofs, loom model.
test:
    cargo build -p slabfuse-memfs --bin slabfuse-memfs
    cargo test --workspace --no-fail-fast
    just test-loom

# The pool's free list under the loom model checker (its own target dir).
test-loom:
    RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p slabfuse-pool --release --test loom

# Format check and clippy with warnings as errors, on all targets.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo clippy -p slabfuse-pool -p slabfuse --features slabfuse/defmt,slabfuse-pool/defmt -- -D warnings

# Mount memfs in the foreground at ./mnt with the defaults; Ctrl-C unmounts.
run *ARGS:
    cargo build --release -p slabfuse-memfs --bin slabfuse-memfs
    mkdir -p mnt
    ./target/release/slabfuse-memfs -f {{ARGS}} mnt

# Benchmarks: microbenchmarks of the pool and the runtime's hot path.
bench *ARGS:
    cargo bench -p slabfuse-pool --bench pool {{ARGS}}
    cargo bench -p slabfuse --bench hot_path {{ARGS}}

# Fuzz the message parser for SECONDS with cargo fuzz (nightly).
fuzz SECONDS="60":
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    cd tests/fuzz && cargo +nightly fuzz run parse -- -max_total_time={{SECONDS}}
