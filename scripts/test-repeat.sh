#!/usr/bin/env bash
# Run the whole suite N times, each on a fresh clone of HEAD (as CI does), and count the runs that
# pass; keep every failed run's log. LOAD=1 keeps both CPUs busy beside the suite (as on a shared
# CI machine). A flaky test is a defect: this finds them, it never retries one.
#
#   scripts/test-repeat.sh 20          # make test-repeat N=20
#   LOAD=1 scripts/test-repeat.sh 5    # make test-repeat N=5 LOAD=1
set -uo pipefail
runs=${1:-20}
top=$(git rev-parse --show-toplevel)
work=$(mktemp -d)
logs="$top/.cache/test-repeat"
mkdir -p "$logs"
# ../shared beside the clone, as CI lays it, when the checkout has one.
[ -d "$top/../shared" ] && ln -s "$(cd "$top/../shared" && pwd)" "$work/shared"
burners=()
if [ "${LOAD:-0}" = 1 ]; then
    for _ in $(seq "$(nproc)"); do
        (while :; do :; done) &
        burners+=($!)
    done
fi
trap 'kill "${burners[@]}" 2>/dev/null; rm -rf "$work"' EXIT
passed=0
for run in $(seq "$runs"); do
    rm -rf "$work/repo"
    git clone -q "$top" "$work/repo"
    started=$(date +%s)
    if (cd "$work/repo" && CI=true make test </dev/null >"$work/run.log" 2>&1); then
        passed=$((passed + 1))
        result=passed
    else
        result=FAILED
        cp "$work/run.log" "$logs/run-$run.log"
    fi
    summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed)' "$work/run.log" | tail -1)
    echo "run $run/$runs ($(git -C "$work/repo" rev-parse --short HEAD)): $result in $(($(date +%s) - started)) s: $summary"
done
echo "$passed of $runs runs passed${LOAD:+ (LOAD=$LOAD)}; failed runs' logs in $logs"
[ "$passed" -eq "$runs" ]
