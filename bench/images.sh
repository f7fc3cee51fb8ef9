#!/usr/bin/env bash
# Image proxy load test: a hotlink-protected origin (403 without one of its articles as
# Referer) with ARTICLES articles of one IMAGE_KB image each; `feedbridge serve` with
# images = "proxy" and image_cache_mb = CACHE_MB. Measures wrk on one cached image (200 and
# 304 paths) beside nginx serving the same bytes from a file (same wrk settings), then walks
# every image of the feed twice and reports the cache at its budget: the largest size on
# disk seen (sampled every 50 images), hits and misses, the index log's length.
# Loopback only; every wrk run is bounded (DURATION, default 10 s).
# The budget run of the note: ARTICLES=1000 IMAGE_KB=8 CACHE_MB=2 bench/images.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
ARTICLES=${ARTICLES:-50}
IMAGE_KB=${IMAGE_KB:-48}
CACHE_MB=${CACHE_MB:-1}
SITE_PORT=18442; FB_PORT=18443; NGINX_PORT=18444
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap "for p in \"\${pids[@]}\"; do kill \$p; done" EXIT

cat > "$work/origin.py" <<'PY'
import http.server, sys, hashlib
port, n, kb = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
own = f"http://127.0.0.1:{port}/a"
def png(i):
    body = b"".join(hashlib.sha256(f"{i}:{j}".encode()).digest() for j in range(kb * 32))
    return b"\x89PNG\r\n\x1a\n" + body
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send(self, code, ctype, body):
        self.send_response(code); self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        p = self.path
        if p == "/list.html":
            lis = "".join(f'<li><a href="/a{i}.html">文章{i}</a></li>' for i in range(n))
            return self.send(200, "text/html; charset=utf-8", f'<ul class="list">{lis}</ul>'.encode())
        if p.startswith("/a") and p.endswith(".html"):
            i = p[2:-5]
            html = f'<h1>文章{i}</h1><div class="content"><p>正文{i}</p><img src="/pic/{i}.png"></div>'
            return self.send(200, "text/html; charset=utf-8", html.encode())
        if p.startswith("/pic/"):
            if not (self.headers.get("Referer") or "").startswith(own):
                return self.send(403, "text/plain", b"hotlinking refused")
            return self.send(200, "image/png", png(p[5:-4]))
        self.send(404, "text/plain", b"no")
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
python3 "$work/origin.py" "$SITE_PORT" "$ARTICLES" "$IMAGE_KB" & pids+=($!)
for _ in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:$SITE_PORT/list.html" && break; sleep 0.1; done
mkdir -p "$work/selectors"
cat > "$work/selectors/hot.toml" <<TOML
title = "hotlink"
start = ["http://127.0.0.1:$SITE_PORT/list.html"]
schedule = "0 0 1 1 *"
timezone = "Asia/Shanghai"
delay = "0s"
images = "proxy"
max_items = $ARTICLES
[list]
item = "ul.list li"
link = "a"
[article]
title = "h1"
body = "div.content"
TOML
target/release/feedbridge serve --selectors "$work/selectors" --data "$work/data" \
  --listen 127.0.0.1:$FB_PORT --image-cache-mb "$CACHE_MB" 2>"$work/serve.log" & fb=$!; pids+=($fb)
url=http://127.0.0.1:$FB_PORT/feeds/hot.atom
for _ in $(seq 1 1500); do
  n=$( (curl -s "$url" || true) | (grep -o "<entry>" || true) | wc -l)
  [ "$n" -ge "$ARTICLES" ] && break; sleep 0.2
done
curl -s "$url" | grep -o 'href="http://127.0.0.1:[0-9]*/img/[^"]*"' | cut -d'"' -f2 > "$work/images"
echo "feed: $(wc -l < "$work/images") proxied images of $((IMAGE_KB * 1024 + 8)) bytes; origin direct without Referer: $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SITE_PORT/pic/0.png")"
img=$(head -1 "$work/images")
curl -s -o "$work/one" -D "$work/headers" "$img"
etag=$(grep -i '^etag:' "$work/headers" | cut -d' ' -f2 | tr -d '\r')
echo "first image: $(wc -c < "$work/one") bytes, $(grep -i '^content-type:' "$work/headers" | tr -d '\r'), ETag $etag"

bench() { # name url [etag]
  local args=(-t2 -c"$CONNS" -d"$DURATION" --latency)
  [ -n "${3:-}" ] && args+=(-H "If-None-Match: $3")
  local out; out=$(wrk "${args[@]}" "$2")
  local rps; rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  local xfer; xfer=$(echo "$out" | awk '/Transfer\/sec/ {print $2}')
  local p99; p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  local errs; errs=$(echo "$out" | (grep -E "Non-2xx|Socket errors" || true) | tr "\n" " ")
  printf '%-24s %10s req/s %10s/s   p99 %8s   %s\n' "$1" "$rps" "$xfer" "$p99" "${errs:-no errors}"
}
echo "wrk -t2 -c$CONNS -d$DURATION"
bench "cached image 200" "$img"
bench "cached image 304" "$img" "$etag"

if command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; then
  ngx=$(command -v nginx || echo /usr/sbin/nginx)
  mkdir -p "$work/nginx/www"
  cp "$work/one" "$work/nginx/www/one.png"
  chmod -R a+rX "$work"
  user_line=""; [ "$(id -u)" = 0 ] && user_line="user root;"
  cat > "$work/nginx/nginx.conf" <<NGINX
$user_line
worker_processes 2;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on; tcp_nopush on; keepalive_requests 100000;
  client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fcgi; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
  types { image/png png; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $work/nginx/www;
    location / { add_header Cache-Control "public, max-age=31536000, immutable"; }
  }
}
NGINX
  "$ngx" -c "$work/nginx/nginx.conf" -p "$work/nginx" 2>>"$work/nginx/error.log" & pids+=($!)
  nurl=http://127.0.0.1:$NGINX_PORT/one.png
  for _ in $(seq 1 50); do curl -sf -o /dev/null "$nurl" && break; sleep 0.1; done
  netag=$(curl -s -o /dev/null -D - "$nurl" | grep -i '^etag:' | cut -d' ' -f2 | tr -d '\r')
  cmp -s <(curl -s "$nurl") "$work/one" && echo "nginx serves the same $(wc -c < "$work/one") bytes (worker_processes 2, sendfile)"
  bench "nginx same file 200" "$nurl"
  bench "nginx same file 304" "$nurl" "$netag"
else
  echo "nginx not installed: no comparison"
fi

blobs() { find "$work/data/images" -maxdepth 1 -type f -name '????????????????????????????????????????????????????????????????' -printf '%s\n' | awk '{s+=$1; n++} END {printf "%d blobs, %d bytes", n, s}'; }
echo "before the passes: $(curl -s "http://127.0.0.1:$FB_PORT/metrics" | grep -E '^feedbridge_image_proxy_requests_total\{result="(hit|miss)"' | tr '\n' ' ')"
disk() { find "$work/data/images" -maxdepth 1 -type f -name '????????????????????????????????????????????????????????????????' -printf '%s\n' | awk '{s+=$1} END {print s+0}'; }
start=$(date +%s.%N)
largest=0
for pass in 1 2; do
  n=0
  while read -r u; do
    curl -s -o /dev/null -w '%{http_code}\n' "$u"
    n=$((n + 1))
    if [ $((n % 50)) = 0 ]; then d=$(disk); [ "$d" -gt "$largest" ] && largest=$d; fi
  done < "$work/images" > "$work/codes"
  sort "$work/codes" | uniq -c | tr '\n' ' '
  echo " <- pass $pass over every image; cache now: $(blobs) (budget $((CACHE_MB * 1048576))); largest sampled: $largest bytes; index log: $(wc -l < "$work/data/images/index") lines"
done
echo "two passes took $(echo "$(date +%s.%N) - $start" | bc) s"
curl -s "http://127.0.0.1:$FB_PORT/metrics" | grep -E '^feedbridge_image'
echo "feedbridge peak RSS: $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/$fb/status)"
