#!/usr/bin/env bash
# The docker backend's whole cycle, `bottle start --yes PROFILE -- true`
# (networks, bundle, sidecars ready, agent, teardown), against a
# hand-written script issuing the same docker commands one after another;
# then bottle's own CPU time, time to the agent's first instruction, and
# 20 bottles started at once.
#
# Needs a Docker daemon and busybox-static (for the agent image).
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
bundle=$(docker image ls bottle.local/sidecars --format '{{.Repository}}:{{.Tag}}' | head -1)

cat > "$tmp/by-hand.sh" <<SH
#!/usr/bin/env bash
set -e
s=bench\$\$
st=$tmp/hand-\$s; mkdir -m 700 -p \$st
printf '{"version":1,"slug":"%s","state_dir":"/state","sidecars":{"egress":{"listen":{"network":"tcp","address":"10.213.250.2:3128"},"rules":[]}}}' \$s > \$st/sidecars.json
docker network create --driver bridge --subnet 10.213.250.0/28 --internal --opt com.docker.network.bridge.inhibit_ipv4=true bottle-\$s-internal >/dev/null
docker network create --driver bridge --subnet 10.213.250.16/28 bottle-\$s-egress >/dev/null
docker create --name bottle-\$s-sidecars --network bottle-\$s-internal --ip 10.213.250.2 --user \$(id -u):\$(id -g) --read-only --cap-drop ALL --mount type=bind,src=\$st,dst=/state $bundle sidecars --config /state/sidecars.json >/dev/null
docker network connect bottle-\$s-egress bottle-\$s-sidecars
docker start bottle-\$s-sidecars >/dev/null
until [ -e \$st/sidecars.ready ]; do sleep 0.02; done
docker run --name bottle-\$s-agent --network bottle-\$s-internal --dns 0.0.0.0 --cap-drop NET_RAW -e HTTPS_PROXY=http://proxy.internal:3128 bottle-bench/agent:1 true
docker rm -f bottle-\$s-agent >/dev/null
docker rm -f bottle-\$s-sidecars >/dev/null
docker network rm bottle-\$s-internal >/dev/null
docker network rm bottle-\$s-egress >/dev/null
rm -rf \$st
SH
chmod +x "$tmp/by-hand.sh"

if command -v hyperfine >/dev/null; then
  hyperfine -N --warmup 1 --runs 10 --export-json "$tmp/h.json" \
    "$tmp/bottle start --yes p.star -- true" "$tmp/by-hand.sh" >/dev/null
  python3 - "$tmp/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
b, h = r[0], r[1]
print(f"cycle: bottle median {b['median']*1000:.0f} ms, by hand median {h['median']*1000:.0f} ms, ratio {b['median']/h['median']:.2f}")
print(f"bottle's own CPU time per cycle: user {b['user']*1000:.0f} ms, system {b['system']*1000:.0f} ms")
PY
fi

# Time to the agent's first instruction: until its first output line arrives.
start=$(date +%s%N)
at=$("$tmp/bottle" start --yes p.star -- echo go 2>/dev/null | { read -r _; date +%s%N; })
echo "time to agent exec: $(( (at - start) / 1000000 )) ms"

# 20 bottles at once.
pids=()
t0=$(date +%s%N)
for i in $(seq 20); do
  "$tmp/bottle" start --yes p.star -- sh -c 'hostname -i; sleep 1' > "$tmp/many.$i" 2>"$tmp/many.$i.err" & pids+=($!)
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=$((fail+1)); done
t1=$(date +%s%N)
addrs=$(for i in $(seq 20); do head -1 "$tmp/many.$i"; done | sort -u | wc -l)
left=$(docker ps -aq --filter label=dev.bottle.slug | wc -l)
nets=$(docker network ls -q --filter label=dev.bottle.slug | wc -l)
echo "20 at once: $((20 - fail)) succeeded in $(( (t1 - t0) / 1000000 )) ms, $addrs distinct agent addresses, $left containers and $nets networks left"
[ "$fail" -eq 0 ] && [ "$addrs" -eq 20 ] && [ "$left" -eq 0 ] && [ "$nets" -eq 0 ]
