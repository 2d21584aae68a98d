"""Write data/web-graph.txt: a directed graph of 1,000 pages for PageRank
(notebook 10), from labkit's seeded generator
(`labkit.dataflow.generate_graph`): a ring 0 -> 1 -> ... -> 999 -> 0, so every
page has an in-link and an out-link, plus about seven random links per page
that favour low page numbers, so a few pages are popular, as on the web.

One edge per line: the source page, a space, the destination page. Seeded, so
running it again writes the same file:

    python data/make_web_graph.py          # writes data/web-graph.txt
"""

from __future__ import annotations

from pathlib import Path

from labkit.dataflow import generate_graph, write_graph

SEED = 2012             # the year of the RDD paper
PAGES = 1000
LINKS = 8               # out-links drawn per page (the ring's included)
PATH = Path(__file__).with_name("web-graph.txt")

if __name__ == "__main__":
    write_graph(PATH, generate_graph(PAGES, LINKS, seed=SEED))
    print(f"wrote {PATH}")
