#!/usr/bin/env bash
# Hostile clients against `feedbridge serve` (release build), loopback only, every run
# bounded: wrk with a fixed Host vs a random Host per request (identity and gzip/br);
# slowloris sockets (partial headers, then silence) and how fast they are closed while a
# legit client polls; more idle sockets than the open-file limit allows.
# Installs wrk from apt when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
SLOW=${SLOW:-500}
SITE_PORT=18442; FB_PORT=18443; CAP_PORT=18444
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

python3 bench/make_site.py "$work/site" 50
python3 -m http.server -b 127.0.0.1 "$SITE_PORT" -d "$work/site" >/dev/null 2>&1 & pids+=($!)
mkdir -p "$work/selectors"
sed -e "s#ORIGIN#http://127.0.0.1:$SITE_PORT#" -e "s#SCHEDULE#0 0 1 1 *#" -e "s#REVISIT#false#" bench/selector.toml.in > "$work/selectors/bench.toml"
target/release/feedbridge serve --selectors "$work/selectors" --data "$work/data" --listen 127.0.0.1:$FB_PORT --header-timeout 2s 2>"$work/serve.log" & fb=$!; pids+=($fb)
url=http://127.0.0.1:$FB_PORT/feeds/bench.atom
for _ in $(seq 1 150); do
  n=$( (curl -s "$url" || true) | (grep -o "<entry>" || true) | wc -l)
  [ "$n" -ge 50 ] && break; sleep 0.2
done
echo "feed: $(curl -s "$url" | grep -o "<entry>" | wc -l) entries, $(curl -s "$url" | wc -c) bytes; $(grep -o 'open_files=[^ ]*' "$work/serve.log" | head -1), $(grep -o 'max_open_connections=[0-9]*' "$work/serve.log" | head -1)"

cat > "$work/rotate.lua" <<'LUA'
-- A different Host on every request (the connection stays on 127.0.0.1).
local ae = os.getenv("AE")
local n = 0
request = function()
  n = n + 1
  local h = { ["Host"] = "h" .. math.random(1, 2000000000) .. "-" .. n .. ".example.test" }
  if ae and ae ~= "" then h["Accept-Encoding"] = ae end
  return wrk.format(nil, nil, h)
end
LUA
bench() { # name ae [lua]
  local args=(-t2 -c"$CONNS" -d"$DURATION" --latency)
  [ -n "$2" ] && args+=(-H "Accept-Encoding: $2")
  [ -n "${3:-}" ] && args+=(-s "$3")
  local out; out=$(AE="$2" wrk "${args[@]}" "$url")
  local rps; rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  local p50; p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  local p99; p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  local errs; errs=$(echo "$out" | (grep -E "Non-2xx|Socket errors" || true) | tr "\n" " ")
  printf '%-30s %10s req/s   p50 %8s  p99 %8s   %s\n' "$1" "$rps" "$p50" "$p99" "${errs:-no errors}"
}
renders() { curl -s "http://127.0.0.1:$FB_PORT/metrics" | awk '/^feedbridge_feed_renders_total/ {print $2}'; }
echo "wrk -t2 -c$CONNS -d$DURATION"
bench "fixed Host, identity" ""
bench "rotating Host, identity" "" "$work/rotate.lua"
bench "fixed Host, gzip" "gzip"
bench "rotating Host, gzip" "gzip" "$work/rotate.lua"
bench "fixed Host, br+gzip" "br, gzip"
bench "rotating Host, br+gzip" "br, gzip" "$work/rotate.lua"
echo "feed renders during all runs: $(renders)"

cat > "$work/slowloris.py" <<'PY'
# N sockets send part of a request and stall; a legit client polls /healthz meanwhile.
import socket, sys, time, threading, urllib.request
port, n = int(sys.argv[1]), int(sys.argv[2])
socks, t0 = [], time.monotonic()
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /feeds/bench.atom HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    s.setblocking(False)
    socks.append(s)
legit = []
def poll():
    while time.monotonic() - t0 < 5:
        a = time.monotonic()
        try:
            ok = urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=5).status == 200
        except Exception:
            ok = False
        legit.append((ok, time.monotonic() - a)); time.sleep(0.1)
t = threading.Thread(target=poll); t.start()
closed = {}
while len(closed) < n and time.monotonic() - t0 < 15:
    for i, s in enumerate(socks):
        if i in closed: continue
        try:
            if s.recv(4096) == b"": closed[i] = time.monotonic() - t0
        except BlockingIOError: pass
        except OSError: closed[i] = time.monotonic() - t0
    time.sleep(0.05)
t.join()
times = sorted(closed.values())
print("slowloris: %d/%d sockets closed, first after %.2f s, last after %.2f s (header timeout 2 s)" % (len(times), n, times[0] if times else -1, times[-1] if times else -1))
oks = [d for ok, d in legit if ok]
print("legit /healthz during it: %d/%d ok, slowest %.1f ms" % (len(oks), len(legit), 1000 * max(oks) if oks else -1))
PY
python3 "$work/slowloris.py" "$FB_PORT" "$SLOW"

# More idle sockets than a 1024 open-file limit allows: the excess gets a 503 at once,
# the rest are closed by the idle timeout, and legit requests are answered again.
mkdir -p "$work/sel2"; cp "$work/selectors/bench.toml" "$work/sel2/"
(ulimit -Sn 256 && ulimit -Hn 1024; exec target/release/feedbridge serve --selectors "$work/sel2" --data "$work/data2" --listen 127.0.0.1:$CAP_PORT 2>"$work/cap.log") & pids+=($!)
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$CAP_PORT/healthz" >/dev/null && break; sleep 0.2; done
cat > "$work/idle.py" <<'PY'
import socket, sys, time, urllib.request
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
t0 = time.monotonic()
time.sleep(0.5)
rejected = dropped = 0
for s in socks:
    s.setblocking(False)
    try:
        b = s.recv(64)
        if b.startswith(b"HTTP/1.1 503"): rejected += 1
        elif b == b"": dropped += 1
    except BlockingIOError: pass
    except OSError: dropped += 1
answers = []
first_ok = None
while time.monotonic() - t0 < 15:
    a = time.monotonic()
    try:
        code = urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=5).status
    except urllib.error.HTTPError as e: code = e.code
    except Exception: code = None
    answers.append((code, time.monotonic() - a))
    if code == 200: first_ok = time.monotonic() - t0; break
    time.sleep(0.1)
slowest = max(d for _, d in answers)
print("%d idle sockets under a 1024 open-file hard limit (soft 256 at start): %d answered 503 at once, %d closed unanswered; legit /healthz: %s before the first 200 at %s (slowest answer %.0f ms)" % (n, rejected, dropped, ",".join(sorted(set(str(c) for c, _ in answers[:-1]))) or "nothing", "%.1f s" % first_ok if first_ok is not None else "never (15 s)", 1000 * slowest))
PY
python3 "$work/idle.py" "$CAP_PORT" 1100
echo "capped server: $(grep -o 'max_open_connections=[0-9]*' "$work/cap.log" | head -1), 'Too many open files' in its log: $(grep -c 'Too many open files' "$work/cap.log" || true)"
