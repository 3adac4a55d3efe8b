#!/usr/bin/env bash
# Usage: fuzz/run.sh [SECONDS]
#
# What CI runs after the tests (see README "Testing"): builds the fuzz
# targets with cargo fuzz (libFuzzer) on the stable toolchain, replays every
# input under fuzz/regressions/<target>/, then fuzzes each target for SECONDS
# (default 30), starting from the committed corpus in fuzz/corpus/<target>/.
# Exits non-zero if any input crashes (a panic, a failed invariant, a
# timeout); crashing inputs are saved under fuzz/artifacts/<target>/.
#
# Stable has no -Z flags, so the targets are built with `--sanitizer none`:
# the sanitizer-coverage instrumentation libFuzzer needs is a stable codegen
# option (-Cpasses=sancov-module), and the code under test has no `unsafe`,
# so AddressSanitizer would add little but a 2x slowdown. Debug assertions
# and overflow checks are on (cargo fuzz's default).
#
# The committed corpus is only read: what a run finds goes to a scratch
# directory. To grow the corpus, fuzz longer by hand and minimize it into
# fuzz/corpus/<target>/ with `cargo fuzz cmin` (see README).
set -euo pipefail
cd "$(dirname "$0")"

secs="${1:-30}"
case "$secs" in
    '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

cargo_fuzz_version=0.13.2
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz $cargo_fuzz_version"
    cargo install cargo-fuzz --locked --version "$cargo_fuzz_version"
fi

targets=(http_route parse_request session_frames session_core stream_reply)

# libFuzzer options per target: how long an input may be, and a dictionary.
options() {
    case "$1" in
        http_route) echo "-max_len=10000 -dict=dict/http.dict" ;;
        parse_request) echo "-max_len=4096 -dict=dict/json.dict" ;;
        session_frames) echo "-max_len=8192 -dict=dict/json.dict" ;;
        session_core) echo "-max_len=12000" ;;
        stream_reply) echo "-max_len=8192 -dict=dict/resp.dict" ;;
    esac
}

echo "== fuzz: build (cargo fuzz, --sanitizer none)"
start=$SECONDS
cargo fuzz build --sanitizer none
echo "== fuzz: built in $((SECONDS - start)) s"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()

for t in "${targets[@]}"; do
    if [ -d "regressions/$t" ] && [ -n "$(ls -A "regressions/$t")" ]; then
        echo "== fuzz: $t: replaying regressions/$t ($(ls "regressions/$t" | wc -l) inputs)"
        if ! cargo fuzz run --sanitizer none "$t" "regressions/$t" -- -runs=0 $(options "$t"); then
            failed+=("$t (regression)")
        fi
    fi
done

for t in "${targets[@]}"; do
    echo "== fuzz: $t for ${secs} s from corpus/$t ($(ls "corpus/$t" | wc -l) inputs)"
    mkdir -p "$scratch/$t"
    # The scratch directory comes first: libFuzzer writes new inputs there.
    if ! cargo fuzz run --sanitizer none "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 $(options "$t") 2>"$scratch/$t.log"; then
        failed+=("$t")
        tail -n 60 "$scratch/$t.log"
    fi
    # The last status line and the final stats: coverage, executions, exec/s.
    grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$scratch/$t.log" | tail -n 1 || true
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' \
        "$scratch/$t.log" || true
done

echo "== fuzz: done in $((SECONDS - start)) s"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "== fuzz: CRASHED: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
