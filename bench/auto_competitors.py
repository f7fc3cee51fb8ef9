#!/usr/bin/env python3
"""Score article extractors against the hand labels in fixtures/auto/{zh,multi}.

Runs GNE (GeneralNewsExtractor) and trafilatura in-process on every labelled page
and prints one table per corpus.  Any other extractor (feedbridge's own
`feedbridge extract --json`) is scored identically through --predictions:

    python3 bench/auto_competitors.py                      # gne + trafilatura
    python3 bench/auto_competitors.py --predictions fb.jsonl --name feedbridge
    python3 bench/auto_competitors.py --tools none --predictions fb.jsonl
    python3 bench/auto_competitors.py --dump target/auto-preds   # write gne/trafilatura jsonl

A predictions file has one JSON object per line:
    {"file": "163_1.html.gz", "title": ..., "published": ..., "source": ...,
     "body": "...", "images": ["https://...", ...]}
(`file` is the fixture file name; a `corpus` key ("zh"/"multi") is optional and
only needed if a file name exists in both corpora; missing keys and missing pages
count as empty predictions; an optional `seconds` key per line feeds pages/s.)

Metrics (per corpus, macro-averaged over the pages where the label exists):
  title    exact match after whitespace normalisation
  date@min prediction equals the label to the minute in absolute time; a naive
           predicted time is read as +08:00 (zh) / UTC (multi); date_only labels
           match on the day as written in the prediction
  date@day calendar day of the prediction (as written) equals the label's day
  source   exact, or one contains the other (after whitespace normalisation)
  body P/R/F1  token overlap (multiset) with the label body; tokens are single
           CJK ideographs / kana plus lower-cased runs of other word characters
  img R/P  content-image recall / precision (URLs compared without scheme;
           labels recorded as written (page URL unknown) match by suffix)
  pages/s  pages / wall-clock seconds spent inside the extractor call (decode excluded)
  pg/cpu-s pages / CPU seconds of this process for the same calls (stabler on a busy box)
"""
import argparse
import collections
import datetime as dt
import gzip
import json
import os
import re
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, 'fixtures', 'auto')
CORPORA = ('zh', 'multi')
TZ_DEFAULT = {'zh': dt.timezone(dt.timedelta(hours=8)), 'multi': dt.timezone.utc}


# ---------------------------------------------------------------- decoding
def decode_html(raw):
    """BOM, then valid UTF-8, then <meta> charset, then gb18030."""
    for bom, enc in ((b'\xef\xbb\xbf', 'utf-8'), (b'\xff\xfe', 'utf-16-le'), (b'\xfe\xff', 'utf-16-be')):
        if raw.startswith(bom):
            return raw[len(bom):].decode(enc, 'replace')
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError:
        pass
    m = re.search(rb'<meta[^>]+charset=["\']?\s*([A-Za-z0-9_.:-]+)', raw[:8192], re.I)
    if m:
        enc = m.group(1).decode('ascii', 'replace').lower()
        if enc in ('gb2312', 'gbk', 'x-gbk', 'gb_2312-80'):
            enc = 'gb18030'
        try:
            return raw.decode(enc)
        except (LookupError, UnicodeDecodeError):
            pass
    return raw.decode('gb18030', 'replace')


# ---------------------------------------------------------------- metrics
def ws(s):
    return re.sub(r'\s+', ' ', (s or '').replace('\u3000', ' ')).strip()


CJK = re.compile(r'[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]')
TOKEN = re.compile(r'[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]'
                   r'|[^\W_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+')


def tokens(text):
    return [t.lower() for t in TOKEN.findall(text or '')]


def prf(pred, gold):
    p, g = collections.Counter(tokens(pred)), collections.Counter(tokens(gold))
    if not g:
        return None
    tp = sum((p & g).values())
    P = tp / sum(p.values()) if p else 0.0
    R = tp / sum(g.values())
    F = 2 * P * R / (P + R) if P + R else 0.0
    return P, R, F


DATE_RE = re.compile(
    r'(?P<y>\d{4})\s*[-/.年]\s*(?P<mo>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*日?'
    r'(?:[T\s,]*(?P<h>\d{1,2})\s*[:时點点]\s*(?P<mi>\d{1,2})(?:\s*[:分]\s*(?P<s>\d{1,2}))?(?:\.\d+)?\s*秒?'
    r'\s*(?P<tz>Z|UTC|GMT|[+-]\d{2}:?\d{2})?)?')


def parse_date(s):
    """-> (date, datetime-or-None, tz_known).  Accepts ISO 8601 and the usual
    Chinese spellings (2019年09月07日 08:05, 2019-09-07 13:43:45 ...)."""
    if s is None:
        return None
    if isinstance(s, (int, float)):
        d = dt.datetime.fromtimestamp(s, dt.timezone.utc)
        return d.date(), d, True
    m = DATE_RE.search(str(s))
    if not m:
        return parse_date_fallback(str(s))
    try:
        day = dt.date(int(m['y']), int(m['mo']), int(m['d']))
    except ValueError:
        return None
    if m['h'] is None:
        return day, None, False
    try:
        t = dt.datetime(day.year, day.month, day.day, int(m['h']), int(m['mi']), int(m['s'] or 0))
    except ValueError:
        return day, None, False
    tz = m['tz']
    if tz is None:
        return day, t, False
    if tz in ('Z', 'UTC', 'GMT'):
        off = dt.timedelta(0)
    else:
        sign = -1 if tz[0] == '-' else 1
        hh, mm = int(tz[1:3]), int(tz[-2:])
        off = sign * dt.timedelta(hours=hh, minutes=mm)
    return day, t.replace(tzinfo=dt.timezone(off)), True


def parse_date_fallback(s):
    """English-style dates ("19 Nov 2019 07:09 GMT", "Nov 19, 2019") via dateutil, if installed."""
    try:
        from dateutil import parser as du
    except ImportError:
        return None
    try:
        d = du.parse(s, default=dt.datetime(1900, 1, 1))
    except (ValueError, OverflowError, TypeError):
        return None
    if d.year == 1900:
        return None
    if not re.search(r'\d{1,2}:\d{2}', s):
        return d.date(), None, False
    return d.date(), d, d.tzinfo is not None


def date_scores(pred, label, date_only, corpus):
    """(match to the minute, match on the day)"""
    lp, pp = parse_date(label), parse_date(pred)
    if lp is None:
        return None
    if pp is None:
        return False, False
    day_ok = pp[0] == lp[0]
    if date_only or lp[1] is None:
        return day_ok, day_ok
    if pp[1] is None:
        return False, day_ok
    pt = pp[1] if pp[2] else pp[1].replace(tzinfo=TZ_DEFAULT[corpus])
    lt = lp[1]
    same = pt.astimezone(dt.timezone.utc).replace(second=0) == lt.astimezone(dt.timezone.utc).replace(second=0)
    return same, day_ok


def source_ok(pred, label):
    p, l = ws(pred).lower(), ws(label).lower()
    if not l:
        return None
    return bool(p) and (p == l or l in p or p in l)


def img_key(u):
    u = (u or '').strip()
    u = re.sub(r'^[a-zA-Z][a-zA-Z0-9+.-]*:', '', u)
    return u.lstrip('/') if u.startswith('//') else u


def img_match(pred_url, label_url):
    p, l = img_key(pred_url), img_key(label_url)
    if p == l:
        return True
    if not re.match(r'^[a-zA-Z][a-zA-Z0-9+.-]*:|^//', label_url or ''):  # label recorded as written
        tail = re.sub(r'^(\./|\.\./)+', '', l).lstrip('/')
        return bool(tail) and p.endswith('/' + tail)
    return False


def img_scores(pred, label):
    pred = [u for u in (pred or []) if u]
    label = label or []
    left = list(label)
    hit = 0
    for u in pred:
        for i, l in enumerate(left):
            if img_match(u, l):
                hit += 1
                del left[i]
                break
    rec = hit / len(label) if label else None
    prec = hit / len(pred) if pred else None
    return rec, prec


# ---------------------------------------------------------------- corpora
def load_corpus(name):
    labels = json.load(open(os.path.join(FIX, name, 'labels.json'), encoding='utf-8'))
    pages = []
    for lab in labels:
        raw = gzip.open(os.path.join(FIX, name, lab['file'])).read()
        pages.append((lab, raw))
    return pages


# ---------------------------------------------------------------- tools
def run_gne():
    from gne import GeneralNewsExtractor
    ex = GeneralNewsExtractor()

    def f(html, lab):
        host = ''
        if lab.get('url'):
            m = re.match(r'^(https?://[^/]+)', lab['url'])
            host = m.group(1) if m else ''
        r = ex.extract(html, host=host)
        return {'title': r.get('title'), 'published': r.get('publish_time'), 'source': None,
                'body': r.get('content'), 'images': r.get('images') or []}
    return f


def run_trafilatura():
    import trafilatura

    def f(html, lab):
        d = trafilatura.bare_extraction(
            html, url=lab.get('url'), with_metadata=True, include_images=True,
            include_comments=False,
            date_extraction_params={'extensive_search': True, 'original_date': True,
                                    'outputformat': '%Y-%m-%dT%H:%M:%S%z'})
        if d is None:
            return {}
        imgs = []
        if getattr(d, 'body', None) is not None:
            imgs = [g.get('src') for g in d.body.iter('graphic') if g.get('src')]
        # include_images=True inlines markdown images (![alt](src)) into .text; drop them
        # so that URLs and alt text do not count as body tokens
        text = re.sub(r'!\[[^\]\n]*\]\([^)\s]*\)', '', d.text or '')
        return {'title': d.title, 'published': d.date, 'source': d.sitename,
                'body': text, 'images': imgs}
    return f


TOOLS = {'gne': run_gne, 'trafilatura': run_trafilatura}


# ---------------------------------------------------------------- scoring
def score(corpus, pages, preds, seconds, cpu_seconds=None):
    acc = collections.defaultdict(list)
    per_page = []
    for lab, _raw in pages:
        p = preds.get(lab['file']) or {}
        labelled = lab.get('labelled', True)
        row = {'file': lab['file']}
        if labelled and lab.get('title'):
            acc['title'].append(ws(p.get('title')) == ws(lab['title']))
        if labelled and lab.get('published'):
            m, d = date_scores(p.get('published'), lab['published'], lab.get('date_only'), corpus)
            acc['date@min'].append(m)
            acc['date@day'].append(d)
        if labelled and lab.get('source'):
            acc['source'].append(source_ok(p.get('source'), lab['source']))
        r = prf(p.get('body'), lab.get('body'))
        if r is not None:
            acc['bodyP'].append(r[0])
            acc['bodyR'].append(r[1])
            acc['bodyF1'].append(r[2])
            row['f1'] = r[2]
        if 'images' in lab and lab.get('images') is not None:
            rec, prec = img_scores(p.get('images'), lab['images'])
            if rec is not None:
                acc['imgR'].append(rec)
            if prec is not None:
                acc['imgP'].append(prec)
        per_page.append(row)
    out = {}
    for field, keys in (('title', ('title',)), ('published', ('date@min', 'date@day')), ('source', ('source',)),
                        ('images', ('imgR', 'imgP'))):
        if not any((preds.get(lab['file']) or {}).get(field) for lab, _ in pages):
            for k in keys:  # the tool never outputs this field: n/a rather than 0
                acc.pop(k, None)
    for k, v in acc.items():
        out[k] = (sum(1 for x in v if x is True) / len(v)) if v and isinstance(v[0], bool) else (sum(v) / len(v) if v else None)
        out[k + '#'] = len(v)
    out['pages/s'] = (len(pages) / seconds) if seconds else None
    out['pg/cpu-s'] = (len(pages) / cpu_seconds) if cpu_seconds else None
    return out, per_page


COLS = [('title', 'title'), ('date@min', 'date@min'), ('date@day', 'date@day'), ('source', 'source'),
        ('bodyP', 'body P'), ('bodyR', 'body R'), ('bodyF1', 'body F1'), ('imgR', 'img R'), ('imgP', 'img P'),
        ('pages/s', 'pages/s'), ('pg/cpu-s', 'pg/cpu-s')]


def print_table(corpus, n, results):
    print('\n== corpus %s: %d pages' % (corpus, n))
    counts = {}
    for _n, s in results:
        for k, v in s.items():
            if k.endswith('#'):
                counts[k] = max(counts.get(k, 0), v)
    print('   (scored pages: ' + ', '.join('%s %d' % (lbl, counts.get(k + '#', 0)) for k, lbl in COLS[:-2]
                                           if k + '#' in counts) + ')')
    w = max([len(r[0]) for r in results] + [6])
    print('%-*s ' % (w, 'tool') + ' '.join('%8s' % lbl for _k, lbl in COLS))
    for name, s in results:
        cells = []
        for k, _lbl in COLS:
            v = s.get(k)
            if v is None:
                cells.append('%8s' % 'n/a')
            elif k in ('pages/s', 'pg/cpu-s'):
                cells.append('%8.1f' % v)
            else:
                cells.append('%8.3f' % v)
        print('%-*s ' % (w, name) + ' '.join(cells))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--corpus', default='all', choices=('all',) + CORPORA)
    ap.add_argument('--tools', default='gne,trafilatura', help='comma list of gne,trafilatura or "none"')
    ap.add_argument('--predictions', action='append', default=[], help='JSONL predictions to score (repeatable)')
    ap.add_argument('--name', action='append', default=[], help='display name for each --predictions file')
    ap.add_argument('--dump', help='write each built-in tool\'s predictions to DIR/<tool>.jsonl')
    ap.add_argument('--worst', type=int, default=0, help='list the N worst body-F1 pages per tool')
    args = ap.parse_args()

    corpora = CORPORA if args.corpus == 'all' else (args.corpus,)
    try:
        from importlib.metadata import version
        print('versions: ' + ', '.join('%s %s' % (m, version(m)) for m in ('gne', 'trafilatura', 'lxml')))
    except Exception:
        pass
    tools = [] if args.tools in ('', 'none') else args.tools.split(',')
    ext = []
    for i, path in enumerate(args.predictions):
        name = args.name[i] if i < len(args.name) else os.path.splitext(os.path.basename(path))[0]
        rows = collections.defaultdict(dict)
        secs = collections.defaultdict(float)
        with open(path, encoding='utf-8') as f:
            for line in f:
                if line.strip():
                    o = json.loads(line)
                    c = o.get('corpus')
                    for cc in ([c] if c else CORPORA):
                        rows[cc][os.path.basename(o['file'])] = o
                        secs[cc] += float(o.get('seconds') or 0)
        ext.append((name, rows, secs))

    dump = {}
    if args.dump:
        os.makedirs(args.dump, exist_ok=True)
    for corpus in corpora:
        pages = load_corpus(corpus)
        decoded = [(lab, decode_html(raw)) for lab, raw in pages]
        results = []
        for t in tools:
            fn = TOOLS[t]()
            preds, total, cpu = {}, 0.0, 0.0
            for lab, html in decoded:
                t0, c0 = time.perf_counter(), time.process_time()
                try:
                    p = fn(html, lab)
                except Exception as e:  # an extractor crash is an empty prediction
                    print('!! %s failed on %s/%s: %s' % (t, corpus, lab['file'], e), file=sys.stderr)
                    p = {}
                total += time.perf_counter() - t0
                cpu += time.process_time() - c0
                preds[lab['file']] = p
            if args.dump:
                with open(os.path.join(args.dump, '%s.jsonl' % t), 'a' if t in dump else 'w', encoding='utf-8') as f:
                    for lab, _ in pages:
                        p = preds[lab['file']]
                        f.write(json.dumps({'corpus': corpus, 'file': lab['file'], 'title': p.get('title'),
                                            'published': p.get('published'), 'source': p.get('source'),
                                            'body': p.get('body'), 'images': p.get('images') or []},
                                           ensure_ascii=False, default=str) + '\n')
                dump[t] = True
            s, per = score(corpus, pages, preds, total, cpu)
            results.append((t, s, per))
        for name, rows, secs in ext:
            s, per = score(corpus, pages, rows.get(corpus, {}), secs.get(corpus) or None)
            results.append((name, s, per))
        print_table(corpus, len(pages), [(n, s) for n, s, _ in results])
        if args.worst:
            for n, _s, per in results:
                worst = sorted((r for r in per if 'f1' in r), key=lambda r: r['f1'])[:args.worst]
                print('   worst body F1 for %s: %s' % (n, ', '.join('%s %.2f' % (r['file'], r['f1']) for r in worst)))


if __name__ == '__main__':
    main()
