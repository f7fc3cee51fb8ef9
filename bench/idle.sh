#!/usr/bin/env bash
# Idle cost of `feedbridge serve` with many sites: N selector files (default 10000) on
# `*/30 * * * *`, all crawled once by `feedbridge crawl` beforehand so nothing is due;
# then the CPU time serve uses over SECS seconds (utime+stime from /proc/PID/stat), and
# how long one in-place edit among the N files takes to show in /status.json.
# Loopback only: the sites point at a python http.server on 127.0.0.1 serving an empty
# list page. BIN=path/to/feedbridge measures another build (e.g. the one before a change);
# FEEDBRIDGE_WATCH=poll forces the polling watcher.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}; SECS=${SECS:-60}
SITE_PORT=${SITE_PORT:-18452}; FB_PORT=${FB_PORT:-18453}
if [ -z "${BIN:-}" ]; then cargo build --release --quiet; BIN=target/release/feedbridge; fi
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work/site" "$work/selectors"
echo '<html><head><meta charset="utf-8"></head><body><div class="list"><ul></ul></div></body></html>' > "$work/site/list.html"
python3 -m http.server -b 127.0.0.1 "$SITE_PORT" -d "$work/site" >/dev/null 2>&1 & pids+=($!)
file() { # $1 = site number, $2 = title
  printf 'title = "%s"\nstart = ["http://127.0.0.1:%s/list.html"]\nschedule = "*/30 * * * *"\ntimezone = "Asia/Shanghai"\ndelay = "0s"\nrobots = false\n\n[list]\nitem = "div.list li"\nlink = "a"\n' "$2" "$SITE_PORT" > "$work/selectors/s$1.toml"
}
if [ -n "${SEED_DIR:-}" ]; then
  # A copy of an earlier run's selectors and store (seeding 10k sites takes minutes);
  # only valid until their next */30 slot.
  cp -r "$SEED_DIR/selectors" "$SEED_DIR/data" "$work/"
else
  for i in $(seq 1 "$N"); do file "$i" "site $i"; done
fi
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$SITE_PORT/list.html" >/dev/null && break; sleep 0.1; done

# Seed: every site crawled once, in batches (sled 0.34 has been seen to hang in flush
# with 64 runs at once on 10k sites; each batch is bounded, and a hung one is retried).
t0=$(date +%s.%N)
[ -n "${SEED_DIR:-}" ] || for start in $(seq 1 1000 "$N"); do
  ids=$(seq "$start" $((start + 999 < N ? start + 999 : N)) | sed 's/^/s/')
  for attempt in 1 2 3; do
    # shellcheck disable=SC2086
    rc=0
    timeout 300 "$BIN" crawl --selectors "$work/selectors" --data "$work/data" --concurrency "${SEED_CONCURRENCY:-8}" $ids >/dev/null 2>>"$work/crawl.log" || rc=$?
    [ "$rc" -ne 124 ] && break
    echo "seed batch from s$start hung (attempt $attempt); retrying" >&2
  done
done
echo "seeded: $N sites crawled once in $(echo "$(date +%s.%N) - $t0" | bc) s"

"$BIN" serve --selectors "$work/selectors" --data "$work/data" --listen "127.0.0.1:$FB_PORT" 2>"$work/serve.log" & fb=$!; pids+=($fb)
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$FB_PORT/healthz" >/dev/null && break; sleep 0.1; done
sleep 5 # let start-up settle (the store opening, the first watcher scan)
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$fb/stat"; }
a=$(ticks); sleep "$SECS"; b=$(ticks)
runs=$(grep -c "outcome=" "$work/serve.log" || true)
echo "idle: $(echo "scale=3; ($b - $a) * 100 / $hz / $SECS" | bc)% of one core over ${SECS}s ($((b - a)) ticks at ${hz} Hz; runs since start: $runs)"
echo "rss: $(awk '/VmRSS/ {print $2, $3}' "/proc/$fb/status")"

# One in-place edit among N: time until serve logs the reload, then confirmed in
# /status.json (whose own cost for N sites is not part of the number).
mid=$((N / 2))
reloads() { grep -c "selectors reloaded" "$work/serve.log" || true; }
before=$(reloads)
t0=$(date +%s.%N)
file "$mid" "edited $mid"
took=""
for _ in $(seq 1 1200); do
  if [ "$(reloads)" -gt "$before" ]; then took=$(echo "$(date +%s.%N) - $t0" | bc); break; fi
  sleep 0.05
done
if [ -n "$took" ] && curl -sf "http://127.0.0.1:$FB_PORT/status.json" | grep -q "edited $mid"; then
  echo "one in-place edit among $N applied in $took s"
else
  echo "one in-place edit among $N: not applied within 60 s"
fi

# Start-up spread: stop serve, make every site overdue on a daily schedule (one that fired
# a minute ago, after every stored run), start it again and count the runs and the CPU of
# its first STARTUP_SECS seconds. Without the spread all N would start at once; with it
# they are spread over a window sized for the crawl slots (capped by the day).
STARTUP_SECS=${STARTUP_SECS:-65}
kill -TERM "$fb"; for _ in $(seq 1 200); do kill -0 "$fb" 2>/dev/null || break; sleep 0.1; done
sleep 61 # every stored run is now older than the minute the schedule names
fired=$(TZ=Asia/Shanghai date -d '-1 min' '+%-M %-H')
sed -i "s|^schedule = .*|schedule = \"$fired * * *\"|" "$work"/selectors/*.toml
"$BIN" serve --selectors "$work/selectors" --data "$work/data" --listen "127.0.0.1:$FB_PORT" 2>"$work/restart.log" & fb=$!; pids+=($fb)
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$FB_PORT/healthz" >/dev/null && break; sleep 0.1; done
a=$(ticks); sleep "$STARTUP_SECS"; b=$(ticks)
runs=$(grep -c "outcome=" "$work/restart.log" || true)
echo "restart with all $N overdue: $runs runs in the first ${STARTUP_SECS}s, $(echo "scale=1; ($b - $a) * 100 / $hz / $STARTUP_SECS" | bc)% of one core"
