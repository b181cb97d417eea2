#!/usr/bin/env bash
# Whole-process timing and peak memory of `bottle start --dry-run
# --format=json` on the shipped profile, run from an empty directory.
# Targets on a 2-core machine: median under 10 ms, peak RSS under 30 MiB.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/bottle" ./cmd/bottle)
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
peak=0
for _ in $(seq 20); do
  kb=$(/usr/bin/time -f %M "$tmp/bottle" start --dry-run --format=json 2>&1 >/dev/null | tail -1)
  [ "$kb" -gt "$peak" ] && peak=$kb
done
echo "dry-run peak RSS: $((peak / 1024)) MiB ($peak KiB, max of 20 runs)"
