#!/bin/sh
# fuzz/run.sh BUILD SECONDS TARGET... - runs each libFuzzer target
# BUILD/fuzz_TARGET for SECONDS seconds (`make fuzz` calls it).
#
# Each target starts from its committed seeds, fuzz/corpus/TARGET/, copied
# to a scratch directory: what a run adds is thrown away, so the committed
# corpus only changes by hand (see README, "Fuzzing").  A target that
# crashes, leaks, hits undefined behaviour, hangs for 10 s or fails a check
# stops; its input is kept as BUILD/artifacts/TARGET-crash-… and its log as
# BUILD/logs/TARGET.log, and this script exits 1 after running the others.
set -eu

build=$1
seconds=$2
shift 2

# Runs one target on a scratch copy of its corpus; returns libFuzzer's status.
run_target() {
        target=$1
        scratch=$(mktemp -d "${TMPDIR:-/tmp}/chimera-fuzz-$target.XXXXXX")
        cp "fuzz/corpus/$target/"* "$scratch/"
        set -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
                -print_final_stats=1 -artifact_prefix="$build/artifacts/$target-"
        if [ -f "fuzz/$target.dict" ]; then
                set -- "$@" -dict="fuzz/$target.dict"
        fi
        rc=0
        "$build/fuzz_$target" "$@" "$scratch" >"$build/logs/$target.log" 2>&1 || rc=$?
        rm -rf "$scratch"
        return $rc
}

mkdir -p "$build/artifacts" "$build/logs"
failed=""
for target in "$@"; do
        log="$build/logs/$target.log"
        if [ ! -d "fuzz/corpus/$target" ] || [ ! -x "$build/fuzz_$target" ]; then
                echo "fuzz: no target \"$target\" (fuzz/corpus/$target, $build/fuzz_$target)" >&2
                failed="$failed $target"
        elif run_target "$target"; then
                # "#12345 DONE cov: 321 ft: 654 corp: 87/4Kb ..." sums the run up.
                summary=$(grep -aE '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
                echo "fuzz: $target: ${seconds}s: ${summary:-ok, see $log}"
        else
                echo "fuzz: $target: FAILED; the end of $log:" >&2
                tail -n 40 "$log" >&2
                failed="$failed $target"
        fi
done
if [ -n "$failed" ]; then
        echo "fuzz: failed:$failed (inputs in $build/artifacts/)" >&2
        exit 1
fi
