#!/bin/sh
# Competitor scores for the automatic article extractor (issue 15 item 5).
# Builds feedbridge (release), runs `feedbridge extract --json` on every labelled page,
# installs GNE + trafilatura into a venv under target/ and scores all three on
# fixtures/auto/{zh,multi} with bench/auto_competitors.py. Extra arguments are passed
# through to it. Pages/s: the script's column is per process for feedbridge (start-up
# included); in-process speed is `cargo bench --bench extract -- auto`.
set -eu
cd "$(dirname "$0")/.."
VENV=${AUTO_VENV:-target/autovenv}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check \
    gne trafilatura lxml_html_clean python-dateutil
cargo build --release --locked --quiet
python3 bench/auto_feedbridge.py target/release/feedbridge target/feedbridge-auto.jsonl
exec "$VENV/bin/python" bench/auto_competitors.py \
    --predictions target/feedbridge-auto.jsonl --name feedbridge "$@"
