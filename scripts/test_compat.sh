#!/usr/bin/env bash
# The version matrix: unit + integration tests on each older Airflow line, COMPAT_JOBS lines at a
# time (default 4: all of them). The tests wait on emulated generations and triggers more than they
# compute (one line alone keeps 0.4 of a core busy), so four lines share the 2 cores well; each
# line's output goes to .compat-logs/<line>.log and is printed whole when the line ends, so the
# runs' lines do not interleave.
set -uo pipefail
jobs="${COMPAT_JOBS:-4}"
make="${MAKE:-make}"
mkdir -p .compat-logs
failed=()
versions=("$@")

run_line() {
    local v="$1" start rc
    start=$(date +%s)
    "$make" --no-print-directory "compat-$v" >".compat-logs/$v.log" 2>&1
    rc=$?
    echo "== test-compat: Airflow $v took $(( $(date +%s) - start )) s (exit $rc)" >>".compat-logs/$v.log"
    return "$rc"
}

for ((i = 0; i < ${#versions[@]}; i += jobs)); do
    batch=("${versions[@]:i:jobs}")
    pids=()
    for v in "${batch[@]}"; do
        run_line "$v" &
        pids+=("$!")
    done
    for k in "${!batch[@]}"; do
        if ! wait "${pids[$k]}"; then
            failed+=("${batch[$k]}")
        fi
        cat ".compat-logs/${batch[$k]}.log"
    done
done

if ((${#failed[@]})); then
    echo "== test-compat: FAILED on Airflow ${failed[*]}"
    exit 1
fi
echo "== test-compat: passed on Airflow ${versions[*]}"
