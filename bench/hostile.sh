#!/usr/bin/env bash
# Hostile pages (issue 9): builds the worst pages we know under the 10 MB body cap, then
#  1. times parse + extraction of each (`feedbridge preview --file`, one process each),
#  2. measures /healthz latency (wrk, p50/p99) while `feedbridge serve` crawls 4 hostile
#     sites over and over (every 5 s, revisiting every article),
#  3. times SIGTERM to exit in the middle of that.
# Loopback only; every step is bounded (DURATION, default 15 s, for wrk). Installs wrk
# from apt when missing. Builds --release.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15s}
SITE_PORT=18442; FB_PORT=18443
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet  # NO_BUILD=1: use the existing release binary
bin=target/release/feedbridge
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work/site" "$work/selectors"
python3 - "$work/site" <<'PY'
import sys, os
out = sys.argv[1]
n = 200_000
def article(title, body):
    return ('<html><body><div class="article"><h1>%s</h1><div class="info"><font>时间:2020-05-12</font></div>'
            '<div class="content">%s</div></div></body></html>') % (title, body)
pages = {
    "nested": "<div>" * n + "deep" + "</div>" * n,
    "attributes": "<p" + "".join(' a%d="%d"' % (i, i) for i in range(n)) + ">wide</p>",
    "formatting": "".join("<b id=b%d>" % i for i in range(n)) + "bold",
    "tables": "<div><table></div>" * n,
    "spans": "".join("<span s%d>x" % i for i in range(n)),
}
for name, body in pages.items():
    html = article(name, body).encode()
    assert len(html) < 10 << 20, name
    open(os.path.join(out, name + ".html"), "wb").write(html)
lis = "".join('<li><span class="date">2020-05-12</span><a href="%s.html" title="%s">%s</a></li>' % (k, k, k) for k in pages)
open(os.path.join(out, "list.html"), "w").write('<html><body><div class="list"><ul>%s</ul></div></body></html>' % lis)
PY
origin=http://127.0.0.1:$SITE_PORT
python3 -m http.server -b 127.0.0.1 "$SITE_PORT" -d "$work/site" >/dev/null 2>&1 & pids+=($!)
for i in 1 2 3 4; do
  sed -e "s#ORIGIN#$origin#" -e "s#SCHEDULE#*/5 * * * * *#" -e "s#REVISIT#true#" bench/selector.toml.in > "$work/selectors/hostile$i.toml"
done

echo "== parse + extract, one process per page (release build)"
for page in "$work"/site/*.html; do
  name=$(basename "$page" .html); [ "$name" = list ] && continue
  start=$(date +%s.%N)
  timeout 120 "$bin" preview "$work/selectors/hostile1.toml" --file "$page" --base "$origin/$name.html" --as article --json >/dev/null
  end=$(date +%s.%N)
  printf '%-12s %8s bytes  %6.3f s\n' "$name" "$(wc -c < "$page")" "$(awk "BEGIN {print $end - $start}")"
done

echo "== /healthz during crawls of 4 hostile sites (every 5 s, revisiting)"
"$bin" serve --selectors "$work/selectors" --data "$work/data" --listen 127.0.0.1:$FB_PORT 2>"$work/serve.log" & fb=$!; pids+=($fb)
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$FB_PORT/healthz" >/dev/null && break; sleep 0.1; done
out=$(wrk -t1 -c4 -d"$DURATION" --latency "http://127.0.0.1:$FB_PORT/healthz")
echo "$out" | awk '/Requests\/sec/ {print "requests/s " $2} $1=="50%" {print "p50 " $2} $1=="99%" {print "p99 " $2} /Non-2xx|Socket errors/'
echo "runs finished meanwhile: $(grep -c 'items new' "$work/serve.log" || true)"
echo "worst run lines:"; grep -o 'hostile[0-9]: [A-Za-z]* in [0-9.]*s' "$work/serve.log" | sort -t' ' -k4 -n | tail -2 || true

echo "== SIGTERM during a crawl"
start=$(date +%s.%N)
kill -TERM "$fb"
for _ in $(seq 1 300); do kill -0 "$fb" 2>/dev/null || break; sleep 0.05; done
end=$(date +%s.%N)
if kill -0 "$fb" 2>/dev/null; then echo "still running after 15 s"; else printf 'exited %.2f s after SIGTERM\n' "$(awk "BEGIN {print $end - $start}")"; fi
