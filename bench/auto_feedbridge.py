#!/usr/bin/env python3
"""Run `feedbridge extract --json` on every labelled page of fixtures/auto/{zh,multi}
and write one predictions line per page (the format bench/auto_competitors.py scores).

    python3 bench/auto_feedbridge.py BINARY OUT.jsonl

`seconds` is wall time per page including process start-up, so it understates
in-process speed (see `cargo bench --bench extract -- auto` for that).
"""
import gzip, json, os, subprocess, sys, tempfile, time

binary, out_path = sys.argv[1], sys.argv[2]
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'auto')
with open(out_path, 'w') as out, tempfile.TemporaryDirectory() as tmp:
    for corpus in ('zh', 'multi'):
        labels = json.load(open(os.path.join(root, corpus, 'labels.json')))
        for label in labels:
            page = os.path.join(tmp, 'page.html')
            with gzip.open(os.path.join(root, corpus, label['file'])) as g, open(page, 'wb') as f:
                f.write(g.read())
            args = [binary, 'extract', page, '--json']
            if label.get('url'):
                args += ['--url', label['url']]
            start = time.monotonic()
            run = subprocess.run(args, capture_output=True, timeout=60)
            seconds = time.monotonic() - start
            try:
                got = json.loads(run.stdout)
            except ValueError:
                got = {}
            out.write(json.dumps({
                'corpus': corpus,
                'file': label['file'],
                'title': got.get('title'),
                'published': got.get('published'),
                'source': got.get('source'),
                'body': got.get('text') or '',
                'images': got.get('images') or [],
                'seconds': seconds,
            }, ensure_ascii=False) + '\n')
