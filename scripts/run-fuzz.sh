#!/bin/sh
# Runs every libFuzzer target of a fuzz build for a bounded time.
#   scripts/run-fuzz.sh BUILD_DIR SECONDS
# First replays tests/fuzz/regressions/TARGET/* (inputs that once crashed),
# then fuzzes from tests/fuzz/corpus/TARGET into a scratch copy, so the
# committed corpus only changes when someone decides it should.
set -eu
build=${1:-build-fuzz}
seconds=${2:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/$build/fuzz-work"
status=0

for bin in "$build"/tests/fuzz/fuzz_*; do
    [ -f "$bin" ] && [ -x "$bin" ] || continue
    name=$(basename "$bin")
    target=${name#fuzz_}
    regress="$root/tests/fuzz/regressions/$target"
    if [ -d "$regress" ] && [ -n "$(ls -A "$regress" 2>/dev/null)" ]; then
        echo "fuzz: $name replaying regressions"
        "$bin" -runs=0 "$regress"/* >"$work.$name.replay.log" 2>&1 || {
            echo "fuzz: $name FAILED on a regression input" >&2
            tail -40 "$work.$name.replay.log" >&2
            status=1
            continue
        }
    fi
    mkdir -p "$work/$target" "$work/crashes-$target"
    seeds="$root/tests/fuzz/corpus/$target"
    echo "fuzz: $name for ${seconds}s"
    if ! "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$work/crashes-$target/" -print_final_stats=1 \
        "$work/$target" ${seeds:+$( [ -d "$seeds" ] && echo "$seeds")} \
        >"$work.$name.log" 2>&1; then
        echo "fuzz: $name FAILED; input kept in $work/crashes-$target/" >&2
        tail -60 "$work.$name.log" >&2
        status=1
    else
        grep -E '^stat::number_of_executed_units' "$work.$name.log" | sed "s/^/fuzz: $name /" || true
    fi
done
exit $status
