#!/usr/bin/env bash
# The egress proxy side by side with squid, Debian's classic forward
# proxy, and with direct connections, in one run: CONNECT tunnel download
# rate (1 GiB, median of 5) and the proxy's CPU seconds per GiB, the
# latency a CONNECT adds to a connection (p50/p99, each tunnel timed right
# after a direct connection) and the proxy's CPU time per CONNECT,
# plain-HTTP requests a second over kept-alive connections, and the
# download again with 200 idle tunnels open, with the proxy's open
# descriptors.
#
# bottle runs as `bottle sidecars --config FILE` without capabilities under
# a uid of its own (65534, then 65533, ...), as the docker sidecar bundle
# runs it (--user, --cap-drop ALL): the kernel's per-user pipe budget
# applies to it. squid runs as its own unprivileged user. Everything runs
# in a network namespace of its own with only loopback; the upstream is
# bench/egressload. No internet needed. All proxies run at once and are
# measured in turn, round by round, so that other load on the machine
# falls on all of them alike.
#
#   bench/egress.sh [REV...]
#
# measures the working tree's bottle and, before it, bottle built at each
# git revision REV (e.g. `bench/egress.sh main`), to compare a change with
# its base in one run. The table's ratios are to squid's figures; a second
# table gives the working tree's figures over each REV's.
#
# Not run in CI. Needs root (for the namespaces and the uid switch), Go,
# util-linux, iproute2 and `apt-get install -y squid curl`. Tunables:
# EGRESS_BYTES (per download, default 1 GiB), EGRESS_ROUNDS (downloads per
# figure, default 5), EGRESS_IDLE (default 200), EGRESS_SAMPLES (latency
# samples per target, default 1000).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

if [ "${1-}" != --inside ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "bench/egress.sh needs root (network and mount namespaces, running bottle as uid 65534); run it with sudo" >&2
    exit 1
  fi
  command -v go >/dev/null || { echo "bench/egress.sh needs Go on PATH" >&2; exit 1; }
  for cmd in squid unshare setpriv ip git; do
    command -v "$cmd" >/dev/null || { echo "bench/egress.sh needs $cmd: apt-get install -y squid curl iproute2 util-linux git" >&2; exit 1; }
  done
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  chmod 755 "$tmp"
  mkdir "$tmp/bin"
  (cd "$root" && CGO_ENABLED=0 go build -o "$tmp/bin/egressload" ./bench/egressload)
  targets=()
  for rev in "$@"; do
    name=bottle@$(cd "$root" && git rev-parse --short "$rev")
    mkdir "$tmp/src"
    (cd "$root" && git archive "$rev") | tar -x -C "$tmp/src"
    (cd "$tmp/src" && CGO_ENABLED=0 go build -o "$tmp/bin/$name" ./cmd/bottle)
    rm -rf "$tmp/src"
    targets+=("$name")
  done
  (cd "$root" && CGO_ENABLED=0 go build -o "$tmp/bin/bottle" ./cmd/bottle)
  targets+=(bottle)
  # The namespaces' side of this script writes to $tmp; this side
  # removes it.
  unshare --net --mount --propagation private -- "$0" --inside "$tmp" "${targets[@]}"
  exit
fi

tmp=$2
shift 2
bytes=${EGRESS_BYTES:-1073741824}
idle=${EGRESS_IDLE:-200}
samples=${EGRESS_SAMPLES:-1000}
rounds=${EGRESS_ROUNDS:-5}
host=upstream.bench.test
raw=9000
http=9080
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

ip link set lo up
# The upstream's name, for bottle's resolver and squid's alike.
printf '127.0.0.1 localhost\n127.0.0.1 %s\n' "$host" >"$tmp/hosts"
mount --bind "$tmp/hosts" /etc/hosts

# wait_port PORT [LOG] waits until something listens on 127.0.0.1:PORT,
# and shows LOG when nothing does.
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  [ -z "${2-}" ] || cat "$2" >&2
  return 1
}

"$tmp/bin/egressload" upstream -raw "127.0.0.1:$raw" -http "127.0.0.1:$http" &
pids+=($!)
wait_port "$raw"
wait_port "$http"
targets=(-target direct)

mkdir "$tmp/squid"
chown proxy:proxy "$tmp/squid"
cat >"$tmp/squid/squid.conf" <<CONF
http_port 127.0.0.1:3129
visible_hostname bench
http_access allow all
cache deny all
cache_mem 8 MB
access_log stdio:$tmp/squid/access.log
cache_log $tmp/squid/cache.log
pid_filename $tmp/squid/squid.pid
coredump_dir $tmp/squid
cache_effective_user proxy
max_filedescriptors 8192
pinger_enable off
hosts_file /etc/hosts
dns_nameservers 127.0.0.1
shutdown_lifetime 0 seconds
CONF
squid -N -f "$tmp/squid/squid.conf" >"$tmp/squid/out" 2>&1 &
pids+=($!)
wait_port 3129 "$tmp/squid/out"
targets+=(-target "squid,127.0.0.1:3129,$!")

# Each bottle under a uid of its own, so that none spends another's pipe
# budget.
port=3130
uid=65534
for name in "$@"; do
  state=$tmp/state-$name
  mkdir -m 700 "$state"
  cat >"$state/config.json" <<JSON
{
  "version": 1,
  "slug": "bench",
  "state_dir": "$state",
  "sidecars": {
    "egress": {
      "listen": {"network": "tcp", "address": "127.0.0.1:$port"},
      "rules": [{"host": "$host", "ports": [$raw, $http], "allow_private": true, "from": "bench"}]
    }
  }
}
JSON
  chown -R "$uid:$uid" "$state"
  setpriv --reuid="$uid" --regid="$uid" --clear-groups --inh-caps=-all --bounding-set=-all \
    "$tmp/bin/$name" sidecars --config "$state/config.json" >"$state/stdout" 2>"$state/stderr" &
  pids+=($!)
  wait_port "$port" "$state/stderr"
  targets+=(-target "$name,127.0.0.1:$port,$!")
  port=$((port + 1))
  uid=$((uid - 1))
done

"$tmp/bin/egressload" measure -host "$host" -raw-port "$raw" -http-port "$http" \
  -bytes "$bytes" -rounds "$rounds" -samples "$samples" -idle "$idle" "${targets[@]}" >"$tmp/results.jsonl"
echo
"$tmp/bin/egressload" table "$tmp/results.jsonl"
