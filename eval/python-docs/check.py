#!/usr/bin/env python3
"""Validate the python-docs retrieval eval sets (stdlib only).

Checks, for every question in the question file (default questions.jsonl):
  * required fields are present and well-typed, ids and questions are unique,
    kind is valid;
  * every page in `answers` is in the corpus (default corpus.txt; `--corpus all`
    means every .html page under the HTML root) and exists on disk;
  * `anchor` (if not null) is an HTML id in the first (primary) answer page;
  * `evidence` appears verbatim in the visible text of the primary page (tags
    and <script>/<style> stripped, HTML entities unescaped, whitespace
    collapsed) and, when `anchor` is set, inside the element it labels;
  * kind "multi" has at least two answer pages; kind "unanswerable" has
    answers [], anchor null and evidence "";
  * copied rare words (on by default with `--corpus all`, else with
    `--rare-df N`): no word of an answerable question (lowercase tokens of
    letters, digits and "_", length >= 4) may have a document frequency of at
    most N pages (default 5) over the corpus pages' visible text and also occur
    on the primary page. Such words (identifiers like `rmtree`, `lru_cache`)
    let lexical search find the page trivially.

Usage:
  python3 check.py [--html-root /usr/share/doc/python3.11/html]
  python3 check.py --questions hard.jsonl --corpus all
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
KINDS = {"factual", "howto", "conceptual", "paraphrase", "multi", "symptom",
         "unanswerable"}
RARE_MIN_LEN, RARE_DF = 4, 5
_TOKEN = re.compile(r"[a-z0-9_]+")
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


def tokens(text):
    return set(_TOKEN.findall(text.lower()))


def doc_freq(root, pages):
    """Number of pages whose visible text contains each lowercase token."""
    df = {}
    for p in pages:
        for t in tokens(load(root / p).text):
            df[t] = df.get(t, 0) + 1
    return df


def resolve(path, d):
    """A path given on the command line: as is if it exists, else under --dir."""
    p = Path(path)
    return p if p.exists() or p.is_absolute() else d / p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--html-root", default=DEFAULT_ROOT)
    ap.add_argument("--dir", default=str(HERE),
                    help="directory holding the default question and corpus files")
    ap.add_argument("--questions", default="questions.jsonl",
                    help="question file (JSONL); relative names are also looked up in --dir")
    ap.add_argument("--corpus", default="corpus.txt",
                    help="'all' (every .html page under --html-root) or a file "
                         "listing pages, one per line")
    ap.add_argument("--rare-df", type=int, default=None,
                    help=f"fail on question words (length >= {RARE_MIN_LEN}) found on "
                         "the primary page whose document frequency over the corpus "
                         f"is at most this; 0 disables (default: {RARE_DF} with "
                         "--corpus all, else 0)")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="also list, per question, words found on the primary page "
                         "with document frequency <= 4 * the rare-word limit")
    a = ap.parse_args()
    root, d = Path(a.html_root), Path(a.dir)
    errors = []

    if a.corpus == "all":
        corpus = sorted(str(p.relative_to(root)) for p in root.rglob("*.html"))
        corpus_name = f"all pages under {root}"
    else:
        cfile = resolve(a.corpus, d)
        corpus = [l.strip() for l in cfile.read_text().splitlines() if l.strip()]
        corpus_name = cfile.name
    rare_df = a.rare_df if a.rare_df is not None else (RARE_DF if a.corpus == "all" else 0)
    cset = set(corpus)
    if len(cset) != len(corpus):
        errors.append(f"{corpus_name}: duplicate entries")
    missing = [c for c in corpus if not (root / c).is_file()]
    for c in missing:
        errors.append(f"{corpus_name}: {c} not found under {root}")
    df = doc_freq(root, [c for c in corpus if c not in missing]) if rare_df > 0 else {}
    qfile = resolve(a.questions, d)

    qs, seen, kinds, bad_q = [], set(), {}, set()
    texts, rare_total = set(), 0
    for n, line in enumerate(qfile.read_text().splitlines(), 1):
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
        question = q.get("question")
        if not isinstance(question, str) or not question.strip():
            err("empty question")
            question = ""
        elif norm(question).lower() in texts:
            err("duplicate question text")
        texts.add(norm(question).lower())
        answers = q.get("answers")
        anchor = q.get("anchor")
        ev = q.get("evidence")
        if q.get("kind") == "unanswerable":
            if answers != []:
                err("unanswerable: answers must be []")
            if anchor is not None:
                err("unanswerable: anchor must be null")
            if ev != "":
                err('unanswerable: evidence must be ""')
            continue
        if not isinstance(answers, list) or not answers:
            err("answers must be a non-empty list")
            continue
        if len(set(map(str, answers))) != len(answers):
            err("duplicate answer pages")
        if q.get("kind") == "multi" and len(answers) < 2:
            err("multi: needs at least two answer pages")
        pages = []
        for p in answers:
            if not isinstance(p, str):
                err(f"answer {p!r} is not a string")
                continue
            if p not in cset:
                err(f"answer {p} not in {corpus_name}")
            if not (root / p).is_file():
                err(f"answer {p} not on disk")
            else:
                pages.append(root / p)
        if not pages or pages[0] != root / str(answers[0]):
            continue
        page = load(pages[0])
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
        if rare_df > 0:
            on_page = tokens(page.text)
            words = sorted(t for t in tokens(question)
                           if len(t) >= RARE_MIN_LEN and t in on_page)
            rare = [t for t in words if df.get(t, 0) <= rare_df]
            if rare:
                rare_total += 1
                err("copies rare words of " + answers[0] + ": "
                    + ", ".join(f"{t} (df={df.get(t, 0)})" for t in rare))
            if a.verbose:
                near = [t for t in words if rare_df < df.get(t, 0) <= 4 * rare_df]
                if near:
                    print(f"note {qid}: uncommon words on {answers[0]}: "
                          + ", ".join(f"{t} (df={df[t]})" for t in near))

    for e in errors:
        print("ERROR", e)
    valid = len(qs) - len(bad_q)
    print(f"questions file: {qfile}")
    print(f"corpus pages: {len(corpus)} ({len(corpus) - len(missing)} on disk)")
    if rare_df > 0:
        print(f"rare-word check: df <= {rare_df}, length >= {RARE_MIN_LEN}; "
              f"questions copying rare words: {rare_total}")
    print(f"questions: {len(qs)}, valid: {valid}, invalid: {len(bad_q)}")
    print("kinds: " + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items(), key=str)))
    if errors:
        print("FAILED")
        return 1
    print(f"OK: all {len(qs)} questions valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
