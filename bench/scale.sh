#!/usr/bin/env bash
# Scale bench (issue 11): one `feedbridge serve`, default settings, with N sites that are
# each its own list URL on a loopback nginx, every one a copy of the same 20-article GBK
# site (bench/scale/site.py). Per N it prints one markdown table row:
#
#   crawl of all   serve start until /status.json shows every site's last run ok with 20 items
#   peak RSS       VmHWM of serve after that first crawl (and after the idle minute)
#   RSS polled     VmHWM after every feed was fetched once (.atom, Accept-Encoding: gzip as
#                  feed readers send, 16 at a time)
#   / and status   median of 5 curl time_total, after the crawl and the idle minute
#   idle CPU       utime+stime of serve over IDLE_SECS right after the crawl, % of one core
#
# and, below the table, where the memory is: VmRSS after the idle minute and after the
# polls, the data dir size, and a restart on the same data (sled open, nothing rendered)
# measured before and after one /status.json and one poll of every feed.
#
#   bench/scale.sh 500 2000 10000
#
# Knobs (environment): IDLE_SECS (60), CRAWL_TIMEOUT seconds per N (1800), SCHEDULE
# ("*/30 * * * *": nothing is due after the first run, unless a :00/:30 boundary falls in
# the run; the row then says "re-run during idle"), RESTART (1: measure the restart),
# KEEP (1: keep the temp dir). Loopback only; every loop is bounded; all processes this
# script starts are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

[ $# -ge 1 ] || { echo "usage: bench/scale.sh N [N...]" >&2; exit 2; }
for n in "$@"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "not a site count: $n" >&2; exit 2; }
done
IDLE_SECS=${IDLE_SECS:-60}
CRAWL_TIMEOUT=${CRAWL_TIMEOUT:-1800}
SCHEDULE=${SCHEDULE:-"*/30 * * * *"}
RESTART=${RESTART:-1}
NGINX=${NGINX:-/usr/sbin/nginx}
ITEMS=20
[ -x "$NGINX" ] || NGINX=$(command -v nginx) || { echo "nginx not found" >&2; exit 2; }

cargo build --release --locked --quiet
# BIN=... runs another binary or wrapper (e.g. a heap profiler around the release build).
bin=${BIN:-$repo/target/release/feedbridge}
tck=$(getconf CLK_TCK)

work=$(mktemp -d "${TMPDIR:-/tmp}/fb-scale.XXXXXX")
chmod 755 "$work"  # nginx workers run unprivileged when started as root
nginx_pid=""
fb_pid=""
stop() { # pid: TERM, then KILL after 15 s; only processes this script started
  local pid=$1
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  stop "$fb_pid"
  stop "$nginx_pid"
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
now() { date +%s.%N; }
kib() { awk -v k="$1" '/^'"$1"':/ {print $2}' "/proc/$2/status" 2>/dev/null || echo 0; }
mib() { awk -v k="$1" 'BEGIN {printf "%.0f MiB", k / 1024}'; }
cpu_ticks() { # utime+stime of pid, from the fields after the command name
  local stat rest
  stat=$(<"/proc/$1/stat")
  rest=${stat##*) }
  # shellcheck disable=SC2086
  set -- $rest
  echo $((${12} + ${13}))
}
median_ms() { # url: median of 5 requests' time_total, in ms
  local url=$1 t=()
  for _ in 1 2 3 4 5; do
    t+=("$(curl -s -o /dev/null -w '%{time_total}' --max-time 120 "$url")")
  done
  printf '%s\n' "${t[@]}" | sort -g | sed -n 3p | awk '{printf "%.0f ms", $1 * 1000}'
}
log() { echo "[scale $(date -u +%H:%M:%S)] $*" >&2; }

# --- the site: 20 GBK articles on disk once, served under /s<i>/ for every i ---
python3 bench/scale/site.py "$work/site"
site_port=$(free_port)
mkdir -p "$work/nginx/tmp"
cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/tmp/body;
  proxy_temp_path $work/nginx/tmp/proxy;
  fastcgi_temp_path $work/nginx/tmp/fastcgi;
  uwsgi_temp_path $work/nginx/tmp/uwsgi;
  scgi_temp_path $work/nginx/tmp/scgi;
  types { text/html html; image/png png; text/plain txt; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$site_port;
    location = /robots.txt { alias $work/site/robots.txt; }
    location ~ ^/s[0-9]+/(.*)\$ { alias $work/site/\$1; }
  }
}
NGINX
"$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' 2>>"$work/nginx/error.log" &
nginx_pid=$!
probe=http://127.0.0.1:$site_port/s1/gzdt/index.html
for _ in $(seq 1 100); do curl -sf -o /dev/null "$probe" && break; sleep 0.1; done
curl -sf -o /dev/null "$probe" || { cat "$work/nginx/error.log" >&2; echo "nginx did not start" >&2; exit 1; }

rows=()
notes=()
row_header='| sites | crawl of all | peak RSS | RSS polled | `/` | `/status.json` | idle CPU | notes |'
row_rule='|---|---|---|---|---|---|---|---|'

start_serve() { # dir port: starts serve with default settings (no settings file, no FEEDBRIDGE_*)
  local dir=$1 port=$2 unset_env=()
  for v in $(env | sed -n 's/^\(FEEDBRIDGE_[A-Z0-9_]*\)=.*/\1/p'); do unset_env+=(-u "$v"); done
  (cd "$dir" && exec env "${unset_env[@]}" "$bin" serve --selectors "$dir/selectors" \
      --data "$dir/data" --listen "127.0.0.1:$port") >>"$dir/serve.log" 2>&1 &
  fb_pid=$!
}
poll_feeds() { # dir port n [ext]: fetches every feed once; prints "ok/n in S s"
  local dir=$1 port=$2 n=$3 ext=${4:-atom} t0 t1 ok
  : > "$dir/feeds.curl"
  for ((i = 1; i <= n; i++)); do
    printf 'url = "http://127.0.0.1:%s/feeds/s%d.%s"\noutput = "/dev/null"\n' "$port" "$i" "$ext" >> "$dir/feeds.curl"
  done
  t0=$(now)
  ok=$(curl -s -H 'Accept-Encoding: gzip' --parallel --parallel-max 16 --max-time 120 -w '%{http_code}\n' \
         -K "$dir/feeds.curl" 2>/dev/null | grep -c '^200$' || true)
  t1=$(now)
  awk -v ok="$ok" -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN {printf "%d/%d in %.1f s", ok, n, b - a}'
}

# With the default schedule every site is due again at the next :00 or :30 (plus up to
# 30 s of jitter): a re-run inside a measurement would spoil it, so wait that boundary out
# when this N's run (a rough guess from the runs so far) would reach it.
wait_for_boundary() { # n
  [ "$SCHEDULE" = "*/30 * * * *" ] || return 0
  local guess=$((150 + 2 * IDLE_SECS + $1 / 25)) into=$(( $(date +%s) % 1800 ))
  if [ $((into + guess)) -ge 1800 ]; then
    log "N=$1: the :00/:30 re-run would fall inside this run (guess ${guess}s); waiting $((1800 - into + 40))s"
    sleep $((1800 - into + 40))
  fi
}

for n in "$@"; do
  wait_for_boundary "$n"
  dir=$work/n$n
  mkdir -p "$dir/selectors"
  log "N=$n: writing $n selector files"
  tmpl=$(cat <<TOML
# bench/scale.sh: one of N copies of the 20-article GBK fixture site.
title = "规模基准 @ID@"
home = "http://127.0.0.1:$site_port/@ID@/gzdt/index.html"
start = ["http://127.0.0.1:$site_port/@ID@/gzdt/index.html"]
schedule = "$SCHEDULE"
timezone = "Asia/Shanghai"
encoding = "auto"
language = "zh-CN"
max_items = 50
delay = "0s"

[list]
item = "div.list li"
link = "a"
title = { css = "a", attr = "title" }
date = "span.date"

[article]
title = "div.article h1"
date = { css = "div.info font", regex = '时间[:：]\\s*(\\d{4}-\\d{1,2}-\\d{1,2}(?:\\s+\\d{1,2}:\\d{2})?)' }
source = { css = "div.info font", regex = '来源[:：]\\s*(\\S+)' }
body = "div.content"
remove = ["div.share", "div.related", "script", "style", 'p:has(> a[href^="javascript:"])']
TOML
)
  for ((i = 1; i <= n; i++)); do
    printf '%s\n' "${tmpl//@ID@/s$i}" > "$dir/selectors/s$i.toml"
  done
  "$bin" check "$dir/selectors/s1.toml" >/dev/null || { echo "feedbridge check refuses the generated file" >&2; exit 1; }

  port=$(free_port)
  base=http://127.0.0.1:$port
  log "N=$n: serve on $base"
  t0=$(now)
  start_serve "$dir" "$port"

  # --- crawl of all: the log's run lines trigger a /status.json check; /status.json at
  # least every 2 s in case the log line changes ---
  deadline=$((SECONDS + CRAWL_TIMEOUT))
  last_check=-10
  crawl=""
  max_rss=0
  status="0 0 -"
  while :; do
    kill -0 "$fb_pid" 2>/dev/null || { tail -20 "$dir/serve.log" >&2; echo "serve exited" >&2; exit 1; }
    r=$(kib VmRSS "$fb_pid"); [ "${r:-0}" -gt "$max_rss" ] && max_rss=$r
    runs=$(grep -c 'items new' "$dir/serve.log" || true)
    if [ "$runs" -ge "$n" ] || [ $((SECONDS - last_check)) -ge 2 ]; then
      last_check=$SECONDS
      if status=$(python3 bench/scale/status.py "$base" "$n" "$ITEMS"); then
        # When that answer arrived: the crawl was done by then (an upper bound).
        t_check=$(now)
        crawl=$(awk -v a="$t0" -v b="$t_check" 'BEGIN {printf "%.1f s", b - a}')
        break
      fi
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "N=$n: crawl not done after ${CRAWL_TIMEOUT}s (done/listed: ${status% *}, run lines: $runs)"
      crawl="> ${CRAWL_TIMEOUT} s (${status% *} ok)"
      break
    fi
    sleep 0.25
  done
  starts_after_crawl=${status##* }
  # The log's last run line is a closer mark (a lower bound), shown below the table.
  last_line=$(grep 'items new' "$dir/serve.log" | tail -1 | cut -d' ' -f1)
  crawl_log=$( [ -n "$last_line" ] && awk -v a="$t0" -v b="$(date -d "$last_line" +%s.%N)" \
      'BEGIN {printf "%.1f s", b - a}' || echo "?")
  hwm_crawl=$(kib VmHWM "$fb_pid")
  rss_crawl=$(kib VmRSS "$fb_pid")
  log "N=$n: crawl $crawl, VmHWM $(mib "$hwm_crawl"), sampled max VmRSS $(mib "$max_rss")"

  # --- idle CPU: nothing asks serve anything for IDLE_SECS ---
  c0=$(cpu_ticks "$fb_pid"); i0=$(now)
  sleep "$IDLE_SECS"
  c1=$(cpu_ticks "$fb_pid"); i1=$(now)
  idle=$(awk -v c="$((c1 - c0))" -v t="$tck" -v a="$i0" -v b="$i1" 'BEGIN {printf "%.1f%%", 100 * c / t / (b - a)}')
  rss_idle=$(kib VmRSS "$fb_pid")
  hwm_idle=$(kib VmHWM "$fb_pid")
  note=""
  status=$(python3 bench/scale/status.py "$base" "$n" "$ITEMS" || true)
  [ "${status##* }" = "$starts_after_crawl" ] || note="re-run during idle"
  log "N=$n: idle CPU $idle"

  # --- latency, then every feed polled once ---
  lat_index=$(median_ms "$base/")
  lat_status=$(median_ms "$base/status.json")
  polled=$(poll_feeds "$dir" "$port" "$n")
  hwm_polled=$(kib VmHWM "$fb_pid")
  rss_polled=$(kib VmRSS "$fb_pid")
  log "N=$n: / $lat_index, /status.json $lat_status, feeds $polled, VmHWM $(mib "$hwm_polled")"
  [ "$crawl" = "${crawl#>}" ] || note="${note:+$note; }crawl incomplete"
  rows+=("| $n | $crawl | $(mib "$hwm_idle") | $(mib "$hwm_polled") | $lat_index | $lat_status | $idle | ${note:--} |")
  echo "${rows[-1]}" >&2

  stop "$fb_pid"; fb_pid=""
  data_mb=$(du -sm "$dir/data" | cut -f1)
  detail="N=$n: last run logged at $crawl_log; VmHWM $(mib "$hwm_crawl") when the crawl was seen done; VmRSS after crawl $(mib "$rss_crawl"), after idle $(mib "$rss_idle"), after polling $(mib "$rss_polled"); polled $polled; data dir $data_mb MiB"

  # --- restart on the same data: what opening the store costs, then status, then feeds ---
  if [ "$RESTART" = 1 ]; then
    port=$(free_port); base=http://127.0.0.1:$port
    t0=$(now)
    start_serve "$dir" "$port"
    for _ in $(seq 1 600); do curl -sf -o /dev/null --max-time 5 "$base/healthz" && break; sleep 0.2; done
    sleep 2
    r_start=$(kib VmRSS "$fb_pid")
    curl -s -o /dev/null --max-time 120 "$base/status.json"
    r_status=$(kib VmRSS "$fb_pid")
    p2=$(poll_feeds "$dir" "$port" "$n")
    r_feeds=$(kib VmRSS "$fb_pid")
    # The same items again in another format: the store's pages are cached by now, so
    # this step's growth is one format's render cache alone.
    p3=$(poll_feeds "$dir" "$port" "$n" rss)
    r_rss=$(kib VmRSS "$fb_pid")
    r_hwm=$(kib VmHWM "$fb_pid")
    detail="$detail; restart on that data: VmRSS $(mib "$r_start") when up, $(mib "$r_status") after /status.json, $(mib "$r_feeds") after every .atom ($p2), $(mib "$r_rss") after every .rss ($p3), VmHWM $(mib "$r_hwm")"
    stop "$fb_pid"; fb_pid=""
  fi
  notes+=("$detail")
  log "$detail"
  [ "${KEEP:-0}" = 1 ] || rm -rf "$dir"
done

echo
echo "$row_header"
echo "$row_rule"
printf '%s\n' "${rows[@]}"
echo
printf -- '- %s\n' "${notes[@]}"
echo "- $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $(git -C "$repo" rev-parse --short HEAD) on $(git -C "$repo" rev-parse --abbrev-ref HEAD)"
