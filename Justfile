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

# Format check, clippy -D warnings on all targets (std, defmt, appliance), docs.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo clippy -p slabfuse-pool -p slabfuse --features slabfuse/defmt,slabfuse-pool/defmt -- -D warnings
    CARGO_TARGET_DIR=target/appliance cargo clippy --profile appliance -p slabfuse-memfs \
        --bin slabfuse-memfs-appliance --no-default-features --features appliance \
        --target x86_64-unknown-linux-gnu -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

# Mount memfs in the foreground at ./mnt with the defaults; Ctrl-C unmounts.
run *ARGS:
    cargo build --release -p slabfuse-memfs --bin slabfuse-memfs
    mkdir -p mnt
    exec "${CARGO_TARGET_DIR:-target}/release/slabfuse-memfs" -f {{ARGS}} mnt

# The full run: the microbenchmarks, then fio and a metadata test on
# slabfuse-memfs, tmpfs and the peers in ../shared/peers (3 repetitions) and
# a --max-message sweep. quick: one block size, one repetition. Results:
# target/bench/results.{json,md}, *.svg, raw/. ARGS go to slabfuse-bench
# (`just bench full --help`).
# Benchmarks as root: `just bench` (< 10 min on 2 cores), `just bench quick` (< 1 min).
bench MODE="full" *ARGS: _bench-deps
    cargo build --release -p slabfuse-memfs --bin slabfuse-memfs -p slabfuse-tests --bin slabfuse-bench
    {{ if MODE == "quick" { "true" } else { "cargo bench -p slabfuse-pool --bench pool --no-run && cargo bench -p slabfuse --bench hot_path --no-run" } }}
    "${CARGO_TARGET_DIR:-target}/release/slabfuse-bench" {{MODE}} {{ARGS}}

# The divan microbenchmarks alone (pool, runtime hot path); ARGS go to divan.
microbench *ARGS:
    cargo bench -p slabfuse-pool --bench pool -- {{ARGS}}
    cargo bench -p slabfuse --bench hot_path -- {{ARGS}}

# What `just bench` needs from Debian: fio, and fuse3, libfuse3-dev and
# pkg-config for the libfuse peer; installed when missing.
_bench-deps:
    #!/usr/bin/env bash
    set -euo pipefail
    missing=()
    command -v fio >/dev/null || missing+=(fio)
    command -v fusermount3 >/dev/null || missing+=(fuse3)
    command -v pkg-config >/dev/null || missing+=(pkg-config)
    [ -e /usr/include/fuse3/fuse_lowlevel.h ] || missing+=(libfuse3-dev)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]}"
        apt-get install -y "${missing[@]}" || { apt-get update && apt-get install -y "${missing[@]}"; }
    fi

# Fuzz the message parser for SECONDS with cargo fuzz (nightly).
fuzz SECONDS="60":
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    cd tests/fuzz && cargo +nightly fuzz run parse -- -max_total_time={{SECONDS}}

# The static appliance image (no libc, no std, defmt logs; linker/): builds
# target/appliance/slabfuse-memfs (stripped) and its unstripped twin
# slabfuse-memfs.elf (for defmt-print), and prints the image's path last.
appliance:
    DEFMT_LOG=info CARGO_TARGET_DIR=target/appliance RUSTFLAGS="-C relocation-model=static -C target-feature=+crt-static" \
        cargo rustc -p slabfuse-memfs --bin slabfuse-memfs-appliance \
        --no-default-features --features appliance --profile appliance \
        --target x86_64-unknown-linux-gnu -- \
        -C link-arg=-nostartfiles -C link-arg=-nostdlib -C link-arg=-static \
        -C link-arg=-Wl,-T,{{justfile_directory()}}/linker/appliance.ld \
        -C link-arg=-Wl,-z,noexecstack,-z,norelro -C link-arg=-Wl,--build-id=sha1
    cp target/appliance/x86_64-unknown-linux-gnu/appliance/slabfuse-memfs-appliance target/appliance/slabfuse-memfs.elf
    strip --strip-all -R .defmt -R .comment -o target/appliance/slabfuse-memfs target/appliance/slabfuse-memfs.elf
    @echo "{{justfile_directory()}}/target/appliance/slabfuse-memfs"

# Run the appliance image in the foreground with ARGS (it mounts: root),
# its defmt log decoded by defmt-print; Ctrl-C unmounts.
appliance-log *ARGS:
    just appliance >/dev/null
    ./target/appliance/slabfuse-memfs {{ARGS}} 2>&1 >/dev/null \
        | (trap '' INT; exec defmt-print -e target/appliance/slabfuse-memfs.elf)
