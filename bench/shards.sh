#!/usr/bin/env bash
# Shards behind nginx: three `serve --shard K/3` nodes over SITES copies of one 50-article
# site, the nginx config from `feedbridge shards --format nginx` in front; wrk against a
# feed through nginx (its cache answers) and straight from its node, on the 200 (gzip)
# and the 304 path. Loopback only; every wrk run is bounded (DURATION, default 10 s).
# BIN=target/debug/feedbridge skips the release build (the nginx rows do not depend on it).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
SITES=${SITES:-6}
SITE_PORT=18532; NGINX_PORT=18530; NODE_PORTS=(18541 18542 18543)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
need=(); command -v wrk >/dev/null || need+=(wrk); [ -x "$NGINX" ] || need+=(nginx)
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; NGINX=$(command -v nginx || echo /usr/sbin/nginx); fi
if [ -z "${BIN:-}" ]; then cargo build --release --quiet; BIN=target/release/feedbridge; fi
work=$(mktemp -d)
pids=()
cleanup() {
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5; rm -rf "$work"
}
trap cleanup EXIT

python3 bench/make_site.py "$work/site" 50
python3 -m http.server -b 127.0.0.1 "$SITE_PORT" -d "$work/site" >/dev/null 2>&1 & pids+=($!)
mkdir -p "$work/selectors"
for i in $(seq 1 "$SITES"); do
  sed -e "s#ORIGIN#http://127.0.0.1:$SITE_PORT#" -e "s#SCHEDULE#0 0 1 1 *#" -e "s#REVISIT#false#" \
    bench/selector.toml.in > "$work/selectors/bench-$i.toml"
done
public=http://127.0.0.1:$NGINX_PORT
nodes=""
for k in 1 2 3; do
  port=${NODE_PORTS[$((k-1))]}
  "$BIN" serve --selectors "$work/selectors" --data "$work/data$k" --listen "127.0.0.1:$port" \
    --base-url "$public" --shard "$k/3" 2>"$work/node$k.log" & pids+=($!)
  nodes="$nodes${nodes:+,}n$k=http://127.0.0.1:$port"
done
"$BIN" shards --nodes "$nodes" --selectors "$work/selectors" --listen "127.0.0.1:$NGINX_PORT" \
  --cache-dir "$work/cache" > "$work/feedbridge.conf"
cat > "$work/nginx.conf" <<NGINX
$( [ "$(id -u)" = 0 ] && echo "user root;" )
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/t1; proxy_temp_path $work/t2; fastcgi_temp_path $work/t3;
  uwsgi_temp_path $work/t4; scgi_temp_path $work/t5;
  include $work/feedbridge.conf;
}
NGINX
"$NGINX" -p "$work" -e "$work/nginx-error.log" -c "$work/nginx.conf"

# bench-1's owner: the node whose status.json lists it, once its 50 items are stored.
owner=""
for _ in $(seq 1 300); do
  for k in 1 2 3; do
    port=${NODE_PORTS[$((k-1))]}
    if curl -s "http://127.0.0.1:$port/status.json" | python3 -c '
import json, sys
s = json.load(sys.stdin)
sys.exit(0 if any(x["id"] == "bench-1" and x["items"] >= 50 for x in s["sites"]) else 1)' 2>/dev/null; then
      owner=$k
    fi
  done
  [ -n "$owner" ] && break; sleep 0.2
done
[ -n "$owner" ] || { echo "bench-1 was not crawled"; exit 1; }
direct=http://127.0.0.1:${NODE_PORTS[$((owner-1))]}/feeds/bench-1.atom
via=$public/feeds/bench-1.atom
etag=$(curl -s -o /dev/null -D - -H 'Accept-Encoding: gzip' "$via" | grep -i '^etag:' | cut -d' ' -f2 | tr -d '\r')
echo "bench-1 on node $owner: $(curl -s "$direct" | grep -o '<entry>' | wc -l) entries, gzip ETag $etag"
echo "sites per node: $(for k in 1 2 3; do curl -s "http://127.0.0.1:${NODE_PORTS[$((k-1))]}/status.json" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["sites"]), end=" ")'; done)"

bench() { # name url [etag]
  local args=(-t2 -c"$CONNS" -d"$DURATION" --latency -H "Accept-Encoding: gzip")
  [ -n "${3:-}" ] && args+=(-H "If-None-Match: $3")
  local out; out=$(wrk "${args[@]}" "$2")
  local rps; rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  local p99; p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  local errs; errs=$(echo "$out" | (grep -E "Non-2xx|Socket errors" || true) | tr "\n" " ")
  printf '%-26s %10s req/s   p99 %8s   %s\n' "$1" "$rps" "$p99" "${errs:-no errors}"
}
echo "wrk -t2 -c$CONNS -d$DURATION, Accept-Encoding: gzip ($BIN)"
bench "node 200 gzip" "$direct"
bench "nginx 200 gzip (cache)" "$via"
bench "node 304" "$direct" "$etag"
bench "nginx 304 (cache)" "$via" "$etag"
echo "X-Cache-Status of a poll: $(curl -s -o /dev/null -D - -H 'Accept-Encoding: gzip' "$via" | grep -i '^x-cache-status' | tr -d '\r')"
