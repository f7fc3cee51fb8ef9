#!/usr/bin/env python3
"""Writes a benchmark site: one list page of N links to copies of the seed article.

    python3 bench/make_site.py OUT_DIR N
"""
import os
import sys

out, n = sys.argv[1], int(sys.argv[2])
here = os.path.dirname(os.path.abspath(__file__))
seed = open(os.path.join(here, "..", "fixtures/site/utf8/gzdt/202005/t20200512_1874321.html"), encoding="utf-8").read()
os.makedirs(os.path.join(out, "a"), exist_ok=True)
lis = []
for i in range(n):
    title = "基准文章%04d" % i
    page = seed.replace("5月10日《河南日报》:百舸竞进争出彩——省直机关创建模范机关热潮涌动</h1>", title + "</h1>")
    with open(os.path.join(out, "a", "%d.html" % i), "w", encoding="utf-8") as f:
        f.write(page)
    lis.append('<li><span class="date">2020-05-12</span><a href="a/%d.html" title="%s">%s</a></li>' % (i, title, title))
with open(os.path.join(out, "list.html"), "w", encoding="utf-8") as f:
    f.write('<html><head><meta charset="utf-8"></head><body><div class="list"><ul>\n%s\n</ul></div></body></html>' % "\n".join(lis))
