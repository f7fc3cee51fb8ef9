#!/bin/sh
# Competitor scores for the automatic article extractor (issue 15 item 5).
# Installs GNE + trafilatura into a venv under target/ and runs
# bench/auto_competitors.py on fixtures/auto/{zh,multi}. Extra arguments are
# passed through, e.g. to score feedbridge's own output as well:
#   bench/auto.sh --predictions target/feedbridge-auto.jsonl --name feedbridge
set -eu
cd "$(dirname "$0")/.."
VENV=${AUTO_VENV:-target/autovenv}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check \
    gne trafilatura lxml_html_clean python-dateutil
exec "$VENV/bin/python" bench/auto_competitors.py "$@"
