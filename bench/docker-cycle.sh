#!/usr/bin/env bash
# The docker backend's whole cycle, `bottle start --yes PROFILE -- true`
# (socket volume, bundle and agent, sidecars ready, teardown), side by side
# in one run with `docker run --rm --network none IMAGE true` on the same
# image: the target is at most 1.5 times as long. Then bottle's own CPU
# time, time to the agent's first byte through the egress proxy, and 20
# bottles started at once, with nothing left behind.
#
# Needs a Docker daemon and busybox-static (for the agent image). Timings
# use hyperfine when present, else paired runs timed with date.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export XDG_STATE_HOME=$tmp/state XDG_CONFIG_HOME=$tmp/config
(cd "$root" && CGO_ENABLED=0 go build -o "$tmp/bottle" ./cmd/bottle)
export BOTTLE_SIDECAR_BINARY=$tmp/bottle

mkdir "$tmp/img"
cp "$(command -v busybox)" "$tmp/img/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n' > "$tmp/img/Dockerfile"
docker build -q -t bottle-bench/agent:1 "$tmp/img" >/dev/null
cat > "$tmp/p.star" <<'STAR'
docker(image = "bottle-bench/agent:1")
allow("api.example.com")
STAR
cd "$tmp"
"$tmp/bottle" start --yes p.star -- true   # builds the bundle image once

runs=10
if command -v hyperfine >/dev/null; then
  hyperfine -N --warmup 1 --runs $runs --export-json "$tmp/h.json" \
    "$tmp/bottle start --yes p.star -- true" "docker run --rm --network none bottle-bench/agent:1 true" >/dev/null
  python3 - "$tmp/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
b, d = r[0], r[1]
print(f"cycle: bottle median {b['median']*1000:.0f} ms, docker run median {d['median']*1000:.0f} ms, ratio {b['median']/d['median']:.2f}")
print(f"bottle's own CPU time per cycle: user {b['user']*1000:.0f} ms, system {b['system']*1000:.0f} ms")
PY
else
  # Paired runs, A B A B ..., each timed with date; medians and the
  # median of the per-pair ratios.
  for i in $(seq $runs); do
    s=$(date +%s%N); "$tmp/bottle" start --yes p.star -- true 2>/dev/null; e=$(date +%s%N)
    s2=$(date +%s%N); docker run --rm --network none bottle-bench/agent:1 true; e2=$(date +%s%N)
    echo "$(( (e - s) / 1000000 )) $(( (e2 - s2) / 1000000 ))"
  done > "$tmp/pairs"
  python3 - "$tmp/pairs" <<'PY'
import statistics, sys
pairs = [tuple(map(int, l.split())) for l in open(sys.argv[1])]
b = statistics.median(p[0] for p in pairs); d = statistics.median(p[1] for p in pairs)
r = statistics.median(p[0] / p[1] for p in pairs)
print(f"cycle: bottle median {b:.0f} ms, docker run --network none median {d:.0f} ms, ratio of medians {b/d:.2f}, median pair ratio {r:.2f}")
PY
fi

# Time to the agent's first byte through the proxy: from the start until
# the agent has opened a connection through the egress sidecar and got
# its first byte back (a 403 from the proxy for a host no rule allows).
start=$(date +%s%N)
at=$("$tmp/bottle" start --yes p.star -- sh -c 'printf "GET http://denied.example/ HTTP/1.0\r\n\r\n" | nc 127.0.0.1 3128 | head -c 1' 2>/dev/null | { head -c 1 >/dev/null; date +%s%N; })
echo "time to the agent's first byte through the proxy: $(( (at - start) / 1000000 )) ms"

# 20 bottles at once.
pids=()
t0=$(date +%s%N)
for i in $(seq 20); do
  "$tmp/bottle" start --yes p.star -- sh -c 'hostname; sleep 1' > "$tmp/many.$i" 2>"$tmp/many.$i.err" & pids+=($!)
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=$((fail+1)); done
t1=$(date +%s%N)
names=$(for i in $(seq 20); do head -1 "$tmp/many.$i"; done | sort -u | wc -l)
left=$(docker ps -aq --filter label=dev.bottle.slug | wc -l)
vols=$(docker volume ls -q --filter label=dev.bottle.slug | wc -l)
nets=$(docker network ls -q --filter label=dev.bottle.slug | wc -l)
echo "20 at once: $((20 - fail)) succeeded in $(( (t1 - t0) / 1000000 )) ms, $names distinct agents, $left containers, $vols volumes and $nets networks left"
[ "$fail" -eq 0 ] && [ "$names" -eq 20 ] && [ "$left" -eq 0 ] && [ "$vols" -eq 0 ] && [ "$nets" -eq 0 ]
