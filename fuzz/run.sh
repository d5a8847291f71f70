#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, one after the other, and prints
# how many inputs each executed.
#
#   fuzz/run.sh SECONDS [TARGET...]
#
# The corpus of a target grows in fuzz/corpus/TARGET (git-ignored) and starts from the
# committed seeds in fuzz/seeds/TARGET. A crash stops the script with a non-zero status; the
# input is saved in fuzz/artifacts/TARGET/ (reproduce it with
# `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...`, minimize it with
# `cargo +nightly fuzz tmin TARGET fuzz/artifacts/TARGET/crash-...`).
#
# Environment:
#   FUZZ_RUNS       stop a target after this many inputs, if that comes before SECONDS
#   FUZZ_SANITIZER  none (default), address, ...: as `cargo fuzz run --sanitizer`. The crate
#                   forbids unsafe code, and without AddressSanitizer libFuzzer runs about ten
#                   times more inputs in the same time; use `address` to check the
#                   dependencies' unsafe code too.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a nightly toolchain; without a
# nightly it bootstraps the stable compiler (RUSTC_BOOTSTRAP=1), which is enough for libFuzzer.
set -euo pipefail

if [ $# -lt 1 ] || ! [[ "$1" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 SECONDS [TARGET...]" >&2
    exit 2
fi
seconds=$1
shift

fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
cd "$fuzz_dir/.."
# The fuzz build (instrumented, another toolchain) keeps out of the crate's target directory.
export CARGO_TARGET_DIR="$fuzz_dir/target"

if rustup run nightly rustc --version >/dev/null 2>&1; then
    fuzz() { cargo +nightly fuzz "$@"; }
    toolchain="nightly"
else
    fuzz() { RUSTC_BOOTSTRAP=1 cargo fuzz "$@"; }
    toolchain="stable with RUSTC_BOOTSTRAP=1"
fi

# Longest input per target: a webhook body for the parser; a header, a secret and a body a few
# KiB long for the verifier (longer bodies only hash longer).
max_len() {
    case "$1" in
        signature) echo 4096 ;;
        *) echo 65536 ;;
    esac
}

# --all-features: a target that needs a framework adapter declares `required-features` in
# fuzz/Cargo.toml and is built here like the others.
build_flags=(--all-features --sanitizer "${FUZZ_SANITIZER:-none}")

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(fuzz list --fuzz-dir "$fuzz_dir")
fi

echo "fuzzing ${targets[*]} for ${seconds}s each (${toolchain})"
fuzz build --fuzz-dir "$fuzz_dir" "${build_flags[@]}"

for target in "${targets[@]}"; do
    corpus="$fuzz_dir/corpus/$target"
    seeds="$fuzz_dir/seeds/$target"
    log="$fuzz_dir/artifacts/$target.log"
    mkdir -p "$corpus" "$seeds" "$fuzz_dir/artifacts"
    libfuzzer_args=(
        -max_total_time="$seconds"
        -max_len="$(max_len "$target")"
        -timeout=10
        -print_final_stats=1
    )
    if [ -n "${FUZZ_RUNS:-}" ]; then
        libfuzzer_args+=(-runs="$FUZZ_RUNS")
    fi
    started=$(date +%s)
    # New inputs go to the first directory; the seeds are only read.
    if ! fuzz run --fuzz-dir "$fuzz_dir" "${build_flags[@]}" "$target" "$corpus" "$seeds" \
        -- "${libfuzzer_args[@]}" >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "FAILED: fuzz target '$target' crashed: see $log and fuzz/artifacts/$target/" >&2
        exit 1
    fi
    executed=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
    corpus_size=$(find "$corpus" -type f | wc -l)
    printf '%s: %s executions in %ss, corpus %s inputs\n    %s\n' \
        "$target" "${executed:-?}" "$(($(date +%s) - started))" "$corpus_size" "$done_line"
done
