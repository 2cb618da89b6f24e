"""Page weight: how many bytes does each page of the built book make a reader download?

Chapters embed their figures and scrubber frames in the HTML (base64 ``data:`` URIs), so the
HTML file is most of what a reader downloads. For each page of ``_toc.yml`` this prints the
size of its HTML file, how much of it is inline ``data:`` payload, and the size of the
separate image files it links from ``_images/``. It reads ``_build/html`` and writes nothing.

    .venv/bin/python benchmarks/page_weight.py            # after `make book`
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from urllib.parse import unquote

import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SOURCE_SUFFIXES = (".ipynb", ".md", ".rst")
DATA_URI = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+")
LINKED_IMAGE = re.compile(r'<img[^>]*\ssrc="((?:\.\./)*_images/[^"]+)"')


def toc_pages() -> list[str]:
    """Every page of ``_toc.yml`` in reading order, as paths without suffix."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            for key in ("sections", "chapters", "parts"):
                walk(entry.get(key, []))

    for key in ("parts", "chapters", "sections"):
        walk(toc.get(key, []))
    stripped = []
    for page in pages:
        for suffix in SOURCE_SUFFIXES:
            if page.endswith(suffix):
                page = page[: -len(suffix)]
        stripped.append(page)
    return stripped


def page_weight(page: str) -> tuple[int, int, int, int]:
    """(HTML bytes, inline data: URI bytes, number of scrubbers, linked _images bytes)."""
    path = HTML / (page + ".html")
    text = path.read_text(encoding="utf-8")
    inline = sum(len(m) for m in DATA_URI.findall(text))
    # scrubber frames are stored as bare base64 strings inside a JSON <script>
    for block in re.findall(r'<script type="application/json" class="ddpm-scrubber-data">(.*?)</script>', text, re.S):
        inline += len(block)
    scrubbers = text.count('class="ddpm-scrubber"')
    linked = 0
    for src in set(LINKED_IMAGE.findall(text)):
        image = (path.parent / unquote(src)).resolve()
        if image.is_file():
            linked += image.stat().st_size
    return path.stat().st_size, inline, scrubbers, linked


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)  # no options: --help only
    if not (HTML / "index.html").is_file():
        print(f"no built book in {HTML}: run `make book` first", file=sys.stderr)
        return 1
    header = f"{'page':<34} {'HTML bytes':>12} {'HTML MB':>8} {'inline MB':>9} {'scrubbers':>9} {'_images MB':>10}"
    print(header)
    print("-" * len(header))
    totals = [0, 0, 0, 0]
    for page in toc_pages():
        if not (HTML / (page + ".html")).is_file():
            print(f"{page:<34} {'(not built)':>12}")
            continue
        size, inline, scrubbers, linked = page_weight(page)
        totals = [t + v for t, v in zip(totals, (size, inline, scrubbers, linked))]
        print(f"{page:<34} {size:>12,} {size / 1e6:>8.2f} {inline / 1e6:>9.2f} {scrubbers:>9} {linked / 1e6:>10.2f}")
    print("-" * len(header))
    size, inline, scrubbers, linked = totals
    print(f"{'total':<34} {size:>12,} {size / 1e6:>8.2f} {inline / 1e6:>9.2f} {scrubbers:>9} {linked / 1e6:>10.2f}")
    print("(MB = 10^6 bytes; 'inline' = base64 data: URIs and scrubber frames inside the HTML.)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
