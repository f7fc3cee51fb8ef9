#!/usr/bin/env bash
# Crawl N (default 1000) articles from a loopback server with spacing off; report pages/s
# and peak RSS. Needs python3 (the static server) and GNU time (apt-get install time).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000}
PORT=${PORT:-18431}
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
cargo build --release --quiet
work=$(mktemp -d)
python3 bench/make_site.py "$work/site" "$N"
python3 -m http.server -b 127.0.0.1 "$PORT" -d "$work/site" >/dev/null 2>&1 &
srv=$!
trap 'kill $srv 2>/dev/null || true; rm -rf "$work"' EXIT
sleep 1
mkdir -p "$work/selectors"
sed -e "s#ORIGIN#http://127.0.0.1:$PORT#" -e "s#SCHEDULE#*/30 * * * *#" -e "s#REVISIT#false#" bench/selector.toml.in > "$work/selectors/bench.toml"
/usr/bin/time -v target/release/feedbridge crawl --selectors "$work/selectors" --data "$work/data" >"$work/out.txt" 2>"$work/time.txt"
cat "$work/out.txt"
secs=$(grep "Elapsed (wall clock)" "$work/time.txt" | awk '{print $NF}' | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
rss=$(grep "Maximum resident set size" "$work/time.txt" | awk '{print $NF}')
python3 - "$N" "$secs" "$rss" <<'PY'
import sys
n, secs, rss = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
print(f"articles: {n}  wall: {secs:.2f} s  pages/s: {(n + 1) / secs:.0f}  peak RSS: {rss / 1024:.1f} MiB")
PY
