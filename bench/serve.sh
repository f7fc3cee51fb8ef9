#!/usr/bin/env bash
# Load test: wrk against a 50-entry feed served by `feedbridge serve` while its site is
# re-crawled every 5 s, on the 200 path and the 304 path; nginx serving the same bytes as
# a static file is measured in the same run as the practical ceiling. Loopback only;
# every wrk run is bounded (DURATION, default 10 s). Installs wrk and nginx from apt.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
SITE_PORT=18432; FB_PORT=18433; NGINX_PORT=18434
need=(); command -v wrk >/dev/null || need+=(wrk); command -v nginx >/dev/null || need+=(nginx)
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; fi
cargo build --release --quiet
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

python3 bench/make_site.py "$work/site" 50
python3 -m http.server -b 127.0.0.1 "$SITE_PORT" -d "$work/site" >/dev/null 2>&1 & pids+=($!)
mkdir -p "$work/selectors"
sed -e "s#ORIGIN#http://127.0.0.1:$SITE_PORT#" -e "s#SCHEDULE#*/5 * * * * *#" -e "s#REVISIT#true#" bench/selector.toml.in > "$work/selectors/bench.toml"
target/release/feedbridge serve --selectors "$work/selectors" --data "$work/data" --listen 127.0.0.1:$FB_PORT 2>"$work/serve.log" & fb=$!; pids+=($fb)
url=http://127.0.0.1:$FB_PORT/feeds/bench.atom
for _ in $(seq 1 100); do
  n=$( (curl -s "$url" || true) | (grep -o "<entry>" || true) | wc -l)
  [ "$n" -ge 50 ] && break; sleep 0.2
done
curl -s -o "$work/feed.atom" -D "$work/headers" "$url"
etag=$(grep -i '^etag:' "$work/headers" | cut -d' ' -f2 | tr -d '\r')
echo "feed: $(grep -o "<entry>" "$work/feed.atom" | wc -l) entries, $(wc -c < "$work/feed.atom") bytes, ETag $etag"

mkdir -p "$work/www"; cp "$work/feed.atom" "$work/www/bench.atom"
cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  types { application/atom+xml atom; }
  server { listen 127.0.0.1:$NGINX_PORT; root $work/www; etag on; }
}
NGINX
chmod -R a+rX "$work"  # nginx workers run unprivileged
nginx -c "$work/nginx.conf" -p "$work"; sleep 0.5
pids+=($(cat "$work/nginx.pid"))
nginx_url=http://127.0.0.1:$NGINX_PORT/bench.atom
nginx_etag=$(curl -sI "$nginx_url" | grep -i '^etag:' | cut -d' ' -f2 | tr -d '\r')

bench() { # name url [etag] [header]
  local args=(-t2 -c"$CONNS" -d"$DURATION" --latency)
  [ -n "${3:-}" ] && args+=(-H "If-None-Match: $3")
  [ -n "${4:-}" ] && args+=(-H "$4")
  local out; out=$(wrk "${args[@]}" "$2")
  local rps; rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  local p99; p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  local errs; errs=$(echo "$out" | (grep -E "Non-2xx|Socket errors" || true) | tr "\n" " ")
  printf '%-22s %10s req/s   p99 %8s   %s\n' "$1" "$rps" "$p99" "${errs:-no errors}"
}
echo "wrk -t2 -c$CONNS -d$DURATION (a crawl of 50 articles runs every 5 s meanwhile)"
bench "feedbridge 200" "$url"
bench "nginx 200" "$nginx_url"
bench "feedbridge 304" "$url" "$etag"
bench "nginx 304" "$nginx_url" "$nginx_etag"
# Each format's cached path (issue 13): identity and gzip (spliced per Host) bodies.
for ext in atom rss json; do
  f=http://127.0.0.1:$FB_PORT/feeds/bench.$ext
  echo "$ext: $(curl -s "$f" | wc -c) bytes, $(curl -s -H 'Accept-Encoding: gzip' "$f" | wc -c) gzipped"
  bench "feedbridge $ext 200" "$f"
  bench "feedbridge $ext 200 gzip" "$f" "" "Accept-Encoding: gzip"
done
echo "feedbridge peak RSS: $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/$fb/status)"
echo "runs during the test: $(grep -c 'items new' "$work/serve.log" || true)"
