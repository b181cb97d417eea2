#!/usr/bin/env bash
# Whole-process timing and peak memory of `bottle start --dry-run
# --format=json` on the shipped profile, run from an empty directory, and
# the start-up cost of `bottle version` and of the dry run side by side
# with a static hello world (bench/hello) in one run. Target: both within
# 2 times the hello world's time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && CGO_ENABLED=0 go build -o "$tmp/bottle" ./cmd/bottle && CGO_ENABLED=0 go build -o "$tmp/hello" ./bench/hello)
mkdir "$tmp/work"
cd "$tmp/work"
export XDG_STATE_HOME="$tmp/state"

if command -v hyperfine >/dev/null; then
  hyperfine -N --warmup 20 --runs 300 --export-json "$tmp/h.json" "$tmp/bottle start --dry-run --format=json" >/dev/null
  python3 - "$tmp/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"dry-run wall time: median {r['median']*1000:.2f} ms, mean {r['mean']*1000:.2f} ms, min {r['min']*1000:.2f} ms, max {r['max']*1000:.2f} ms")
PY
else
  echo "hyperfine not found (apt-get install hyperfine); timing 100 runs with date"
  start=$(date +%s%N)
  for _ in $(seq 100); do "$tmp/bottle" start --dry-run --format=json >/dev/null; done
  end=$(date +%s%N)
  echo "dry-run wall time: mean $(( (end - start) / 100000 ))e-2 ms"
fi
# Start-up cost, paired: hello, version, dry run, in turn, 200 times.
for _ in $(seq 200); do
  a=$(date +%s%N); "$tmp/hello" >/dev/null
  b=$(date +%s%N); "$tmp/bottle" version >/dev/null
  c=$(date +%s%N); "$tmp/bottle" start --dry-run --format=json >/dev/null
  d=$(date +%s%N)
  echo "$((b - a)) $((c - b)) $((d - c))"
done > "$tmp/startup"
python3 - "$tmp/startup" <<'PY'
import statistics, sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
h, v, d = (statistics.median(r[i] for r in rows) / 1e6 for i in range(3))
print(f"start-up: hello {h:.2f} ms, bottle version {v:.2f} ms ({v/h:.1f}x), dry run {d:.2f} ms ({d/h:.1f}x)")
PY
peak=0
for _ in $(seq 20); do
  kb=$(/usr/bin/time -f %M "$tmp/bottle" start --dry-run --format=json 2>&1 >/dev/null | tail -1)
  [ "$kb" -gt "$peak" ] && peak=$kb
done
echo "dry-run peak RSS: $((peak / 1024)) MiB ($peak KiB, max of 20 runs)"
