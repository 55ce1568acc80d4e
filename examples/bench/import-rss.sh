#!/usr/bin/env bash
# Peak RSS and wall time of `fsbatch import` for N events (default: 200k 2M 20M), against
# the fake in its own process. Inputs are generated on the fly and deleted after each run.
#   examples/bench/import-rss.sh 200000 2000000 20000000
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p fsbatch -p fullstory-batch-fake --bins >&2
bin=target/release
work=$(mktemp -d "${TMPDIR:-/tmp}/fsbatch-bench.XXXXXX")
trap 'kill $fake 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin/fullstory-batch-fake" --port 0 --processing 200ms > "$work/url" 2>/dev/null &
fake=$!
sleep 0.5
url=$(head -1 "$work/url")
for n in "${@:-200000 2000000 20000000}"; do
  for size in $n; do
    python3 - "$size" > "$work/events.jsonl" <<'PY'
import sys
w = sys.stdout.write
for i in range(int(sys.argv[1])):
    w('{"name":"Order Completed","user":{"uid":"user-%d"},"timestamp":"2024-05-01T12:00:00Z","properties":{"order":%d,"total":19.99,"sku":"SKU-%d"}}\n' % (i % 10000, i, i % 313))
PY
    bytes=$(stat -c %s "$work/events.jsonl")
    FULLSTORY_API_KEY=bench XDG_STATE_HOME="$work/state" /usr/bin/time -v \
      "$bin/fsbatch" import "$work/events.jsonl" --base-url "$url" -q --json \
      > "$work/out.json" 2> "$work/time.txt" || true
    rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$work/time.txt")
    wall=$(awk -F': ' '/Elapsed \(wall/ {print $2}' "$work/time.txt")
    cpu_user=$(awk -F': ' '/User time/ {print $2}' "$work/time.txt")
    result=$(python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print(v["result"], v["imports"], len(v["batches"]), json.dumps(v.get("error", "")))' "$work/out.json")
    # The fake keeps every item it was sent (as JSON text): its peak shows it is not the
    # limit (a fake holding items as `Value` trees was OOM-killed at 10.5M events).
    fake_rss=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$fake/status" 2>/dev/null || echo "gone")
    echo "$size events, $((bytes / 1000000)) MB: peak RSS $((rss / 1024)) MiB, wall $wall, user ${cpu_user}s, result: $result; fake peak ${fake_rss} MiB"
    rm -rf "$work/events.jsonl" "$work/state"
  done
done
