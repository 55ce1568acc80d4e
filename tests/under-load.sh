#!/usr/bin/env bash
# Runs the README's test command N times, each under a CPU load of every core, and prints a
# one-line tally. A test that fails on a busy machine fails here; each run's log is kept.
#
#   tests/under-load.sh [RUNS] [--quiet]      (RUNS defaults to 10; --quiet: no load)
#
# The load is `stress-ng --cpu N` when stress-ng is installed (Debian: apt-get install
# stress-ng), otherwise one busy shell loop per core.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=10
load=yes
for arg in "$@"; do
  case "$arg" in
    --quiet) load=no ;;
    ''|*[!0-9]*) echo "usage: $0 [RUNS] [--quiet]" >&2; exit 2 ;;
    *) runs=$arg ;;
  esac
done

logs=$(mktemp -d "${TMPDIR:-/tmp}/under-load.XXXXXX")
echo "building once (not timed, not loaded); logs in $logs"
cargo test --workspace --no-run >"$logs/build.log" 2>&1 || { tail -n 40 "$logs/build.log"; exit 1; }

hogs=()
stop_load() { [ ${#hogs[@]} -eq 0 ] || kill "${hogs[@]}" 2>/dev/null || true; }
trap stop_load EXIT
if [ "$load" = yes ]; then
  cores=$(nproc)
  if command -v stress-ng >/dev/null; then
    stress-ng --cpu "$cores" --quiet & hogs+=($!)
    what="stress-ng --cpu $cores"
  else
    for _ in $(seq "$cores"); do (while :; do :; done) & hogs+=($!); done
    what="$cores busy loops"
  fi
else
  what="no load"
fi

passed=0 failed=0
declare -A failures=()
for run in $(seq "$runs"); do
  start=$SECONDS
  if cargo test --workspace --no-fail-fast >"$logs/run-$run.log" 2>&1; then
    passed=$((passed + 1))
    echo "run $run: ok in $((SECONDS - start)) s"
  else
    failed=$((failed + 1))
    names=$(grep -E '^test .* \.\.\. FAILED$' "$logs/run-$run.log" | awk '{print $2}' | sort -u | tr '\n' ' ')
    echo "run $run: FAILED in $((SECONDS - start)) s: ${names:-(see $logs/run-$run.log)}"
    for name in $names; do failures[$name]=$(( ${failures[$name]:-0} + 1 )); done
  fi
done

stop_load
for name in "${!failures[@]}"; do echo "  $name failed in ${failures[$name]} of $runs runs"; done
echo "under load ($what): $passed passed, $failed failed"
[ "$failed" -eq 0 ]
