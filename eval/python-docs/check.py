#!/usr/bin/env python3
"""Validate the python-docs retrieval eval set (stdlib only).

Checks, for every question in questions.jsonl:
  * required fields are present and well-typed, ids are unique, kind is valid;
  * every page in `answers` is listed in corpus.txt and exists on disk;
  * `anchor` (if not null) is an HTML id in the first (primary) answer page;
  * `evidence` appears verbatim in the visible text of the primary page (tags
    and <script>/<style> stripped, HTML entities unescaped, whitespace
    collapsed) and, when `anchor` is set, inside the element it labels.

Usage: python3 check.py [--html-root /usr/share/doc/python3.11/html]
"""
import argparse
import html
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = "/usr/share/doc/python3.11/html"
KINDS = {"factual", "howto", "conceptual", "paraphrase"}
FIELDS = ("id", "question", "answers", "anchor", "kind", "evidence")


_BLOCK = {"p", "div", "li", "dt", "dd", "td", "th", "tr", "pre", "br", "hr",
          "h1", "h2", "h3", "h4", "h5", "h6", "section", "table", "ul", "ol",
          "dl", "blockquote", "figure", "caption"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link",
         "meta", "source", "track", "wbr"}


class _Page(HTMLParser):
    """Collects visible text (outside <script>/<style>), all id attributes and,
    for each id, the extent of the element it labels (as indices into parts).

    An id on a <dt> (Sphinx API entries) or on an empty element (Sphinx label
    targets such as <span id="..."></span>) labels its parent element, so that
    the id covers the description/section that follows it.
    """

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self.ids, self.spans = [], set(), {}
        self._skip, self._stack = 0, []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        if tag in _BLOCK:  # block-level tags separate words; inline ones don't
            self.parts.append(" ")
        ids = [v for k, v in attrs if k == "id" and v]
        self.ids.update(ids)
        if tag in _VOID:
            if ids and self._stack:
                self._stack[-1][1].extend(ids)
            return
        if tag == "dt" and ids and self._stack:
            self._stack[-1][1].extend(ids)
            ids = []
        self._stack.append((tag, ids, len(self.parts)))

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        if tag in _BLOCK:
            self.parts.append(" ")
        if not any(t == tag for t, _, _ in self._stack):
            return
        while self._stack:
            t, ids, start = self._stack.pop()
            if ids:
                if not "".join(self.parts[start:]).strip() and self._stack:
                    self._stack[-1][1].extend(ids)
                else:
                    for i in ids:
                        self.spans.setdefault(i, (start, len(self.parts)))
            if t == tag:
                break

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def norm(s):
    return re.sub(r"\s+", " ", s).strip()


_cache = {}


class Page:
    def __init__(self, path):
        p = _Page()
        p.feed(path.read_text(encoding="utf-8", errors="replace"))
        p.close()
        self._p = p
        self.text = norm("".join(p.parts))
        self.ids = p.ids

    def section_text(self, anchor):
        """Visible text of the element labelled by anchor (None if unknown)."""
        if anchor not in self._p.spans:
            return None
        a, b = self._p.spans[anchor]
        return norm("".join(self._p.parts[a:b]))


def load(path):
    if path not in _cache:
        _cache[path] = Page(path)
    return _cache[path]


def evidence_found(evidence, text):
    return norm(html.unescape(evidence)) in text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--html-root", default=DEFAULT_ROOT)
    ap.add_argument("--dir", default=str(HERE))
    a = ap.parse_args()
    root, d = Path(a.html_root), Path(a.dir)

    corpus = [l.strip() for l in (d / "corpus.txt").read_text().splitlines() if l.strip()]
    cset = set(corpus)
    errors = []
    if len(cset) != len(corpus):
        errors.append("corpus.txt: duplicate entries")
    missing = [c for c in corpus if not (root / c).is_file()]
    for c in missing:
        errors.append(f"corpus.txt: {c} not found under {root}")

    qs, seen, kinds, bad_q = [], set(), {}, set()
    for n, line in enumerate((d / "questions.jsonl").read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            q = json.loads(line)
        except json.JSONDecodeError as e:
            errors.append(f"line {n}: invalid JSON: {e}")
            continue
        qs.append(q)
        qid = q.get("id", f"line{n}")

        def err(msg, n=n):
            errors.append(f"{qid}: {msg}")
            bad_q.add(n)

        for f in FIELDS:
            if f not in q:
                err(f"missing field {f!r}")
        if set(q) - set(FIELDS):
            err(f"unexpected fields {sorted(set(q) - set(FIELDS))}")
        if qid in seen:
            err("duplicate id")
        seen.add(qid)
        if q.get("kind") not in KINDS:
            err(f"bad kind {q.get('kind')!r}")
        kinds[q.get("kind")] = kinds.get(q.get("kind"), 0) + 1
        if not isinstance(q.get("question"), str) or not q["question"].strip():
            err("empty question")
        answers = q.get("answers")
        if not isinstance(answers, list) or not answers:
            err("answers must be a non-empty list")
            continue
        pages = []
        for p in answers:
            if p not in cset:
                err(f"answer {p} not in corpus.txt")
            if not (root / p).is_file():
                err(f"answer {p} not on disk")
            else:
                pages.append(root / p)
        if not pages:
            continue
        page = load(pages[0])
        anchor = q.get("anchor")
        ev = q.get("evidence")
        if not isinstance(ev, str) or len(ev.strip()) < 8:
            err("evidence missing or too short")
        elif not evidence_found(ev, page.text):
            err(f"evidence not found in visible text of {answers[0]}: {ev!r}")
        elif anchor is not None:
            sec = page.section_text(anchor) if isinstance(anchor, str) else None
            if not isinstance(anchor, str) or anchor not in page.ids:
                err(f"anchor {anchor!r} is not an id in {answers[0]}")
            elif sec is None or not evidence_found(ev, sec):
                err(f"evidence is not inside the element labelled #{anchor}")

    for e in errors:
        print("ERROR", e)
    valid = len(qs) - len(bad_q)
    print(f"corpus pages: {len(corpus)} ({len(corpus) - len(missing)} on disk)")
    print(f"questions: {len(qs)}, valid: {valid}, invalid: {len(bad_q)}")
    print("kinds: " + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items(), key=str)))
    if errors:
        print("FAILED")
        return 1
    print(f"OK: all {len(qs)} questions valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
