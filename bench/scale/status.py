#!/usr/bin/env python3
"""Reads feedbridge's /status.json for bench/scale.sh, tolerantly.

    python3 bench/scale/status.py BASE_URL WANT_SITES WANT_ITEMS

Prints `done total starts` (sites whose last run is ok with WANT_ITEMS items, or on a
re-run no-new-items/not-modified; sites listed; a digest of every site's last-run start
so a re-run shows as a change) and exits 0 when
done >= WANT_SITES, 1 otherwise, 2 when the server does not answer. Shapes accepted: a
list of sites, or an object with `sites` (followed through `next`/`next_page`/`cursor`
pagination, bounded); per site `items` (else `item_count`, else the last run's `new`).
"""
import hashlib
import json
import sys
import urllib.parse
import urllib.request

base, want_sites, want_items = sys.argv[1].rstrip("/"), int(sys.argv[2]), int(sys.argv[3])


def get(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.load(r)


def pages():
    url = base + "/status.json"
    for _ in range(10_000):  # bounded: a page of at least one site each
        doc = get(url)
        if isinstance(doc, list):
            yield doc
            return
        yield doc.get("sites") or []
        nxt = doc.get("next") or doc.get("next_page") or doc.get("cursor")
        if not nxt:
            return
        if isinstance(nxt, str) and nxt.startswith(("http://", "https://", "/")):
            url = urllib.parse.urljoin(base + "/", nxt)
        else:
            key = "cursor" if "cursor" in doc else "page"
            url = base + "/status.json?" + urllib.parse.urlencode({key: nxt})


try:
    sites = [s for page in pages() for s in page]
except (OSError, ValueError) as e:
    print("0 0 -", e, file=sys.stderr)
    print("0 0 -")
    sys.exit(2)
DONE = {"ok", "no-new-items", "not-modified"}
done = 0
digest = hashlib.blake2b(digest_size=8)
for s in sites:
    run = s.get("last_run") or {}
    items = s.get("items", s.get("item_count", run.get("new", 0))) or 0
    if isinstance(items, dict):  # a future shape: {"stored": n, ...}
        items = items.get("stored", items.get("count", 0))
    # A re-run (a schedule boundary passed) ends not-modified: the site is still done.
    if str(run.get("outcome", "")).lower() in DONE and items >= want_items:
        done += 1
    digest.update(("%s=%s;" % (s.get("id"), run.get("started"))).encode())
print(done, len(sites), digest.hexdigest())
sys.exit(0 if done >= want_sites else 1)
