#!/usr/bin/env python3
"""Writes the 20-article GBK site that bench/scale.sh serves N times over.

    python3 bench/scale/site.py OUT_DIR

It is the committed GBK fixture site (fixtures/site/gbk, from fixtures/site/generate.py)
cut to its 20 newest articles on one list page, so one run of a site is one list page
plus 20 article pages and yields 20 items. The pages are the fixture's own bytes (GBK,
declared gb2312 in <meta>); only the list page is rewritten, in the fixture's markup.
"""
import os
import re
import shutil
import sys

ARTICLES = 20

out = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
fixture = os.path.join(here, "..", "..", "fixtures", "site")
src = os.path.join(fixture, "gbk", "gzdt")

# The fixture lists 15 articles per page, newest first; take the first 20 entries.
items = []
head = foot = None
for name in ("index.html", "index_1.html"):
    page = open(os.path.join(src, name), "rb").read().decode("gbk")
    if head is None:
        head, rest = page.split("<ul>\n", 1)
        foot = "\n  </ul>" + rest.split("\n  </ul>", 1)[1]
        # The pager would send a crawl to pages this copy does not have.
        foot = re.sub(r'<div class="page">.*?</div>', "", foot, flags=re.S)
    items += re.findall(r"^\s*<li>.*</li>$", page, flags=re.M)
items = items[:ARTICLES]
if len(items) != ARTICLES:
    sys.exit("fixture list pages hold %d items, want %d" % (len(items), ARTICLES))

dst = os.path.join(out, "gzdt")
os.makedirs(dst, exist_ok=True)
for li in items:
    href = re.search(r'href="\./([^"?#]+)', li).group(1)
    os.makedirs(os.path.join(dst, os.path.dirname(href)), exist_ok=True)
    shutil.copyfile(os.path.join(src, href), os.path.join(dst, href))
    png = os.path.join(os.path.dirname(href), "W020200512083114.png")
    shutil.copyfile(os.path.join(src, png), os.path.join(dst, png))
with open(os.path.join(dst, "index.html"), "wb") as f:
    f.write((head + "<ul>\n" + "\n".join(items) + foot).encode("gbk"))
shutil.copyfile(os.path.join(fixture, "robots.txt"), os.path.join(out, "robots.txt"))
