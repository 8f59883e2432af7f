"""The outline of each document, built at ingestion and stored in the index: sections and their headings, the items
of each section, enumerations and abbreviations with their members, every node with the span it covers and how it
was recognised. Generic rules of Chinese policy documents, no rule per document:

- numbered headings 一、 / （一） / 1. open sections of three levels (a heading is its paragraph's first sentence);
- without numbered headings, a run of consecutive paragraphs whose lead sentences are parallel (same shape, similar
  length) are the document's parts; otherwise each body paragraph is a part headed by its lead sentence;
- series markers (一是…二是…, 首先/其次/最后, 第一/第二) and sentences opening with the same lead verb (大抓…, 推进…)
  are the items of the section they sit in;
- a 、-list is an enumeration of members; an abbreviation (三去一降一补, 一带一路) is spelled out by the
  sentences after it that name each member.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping

from .chunking import paragraph_spans, sentences
from .text import CJK, normalize
from .types import Document

OUTLINE_VERSION = 1
_LEVELS = (
    (1, "numbered heading 一、", re.compile(r"^[一二三四五六七八九十]+、")),
    (2, "numbered heading （一）", re.compile(r"^[（(][一二三四五六七八九十]+[）)]")),
    (3, "numbered heading 1.", re.compile(r"^[0-9]{1,2}[.、．](?![0-9])")),
)
_SERIES = re.compile(r"^(?:[一二三四五六七八九十]是|首先|其次|再次|最后|第[一二三四五六七八九十]，|第[一二三四五六七八九十]、)")
_SENTENCE = re.compile(r"[^。！？!?]*[。！？!?]|[^。！？!?]+$")
_ABBREVIATION = re.compile(r"^(?:[一二三四五六七八九十两][\u4e00-\u9fff]{1,3}){2,}$")
_NUMERAL = "一二三四五六七八九十两"
MAX_HEADING = 80
MAX_LEAD = 30  # a paragraph's first sentence this short heads the paragraph


@dataclass(frozen=True)
class Node:
    """A node of a document's outline; offsets are into the document's cleaned text."""

    id: int
    doc_id: str
    kind: str  # document | part | section | item | list | member | passage
    level: int
    title: str  # the heading (or member) text, as written
    head_start: int  # the span of the heading or member: what an answer quotes
    head_end: int
    start: int  # the span the node covers (its heading and its content)
    end: int
    how: str  # how it was recognised
    parent: int | None
    children: tuple[int, ...] = ()
    ordinal: int = 0  # 1-based among its siblings of the same kind


def _first_sentence(text: str) -> tuple[int, int]:
    m = _SENTENCE.match(text)
    end = m.end() if m else len(text)
    return 0, min(end, len(text))


def _paragraphs(doc: Document) -> list[tuple[int, int, str]]:
    return [(s, e, doc.text[s:e]) for s, e in paragraph_spans(doc.text)]


def _is_body(text: str) -> bool:
    """A paragraph of content: it has a sentence end, or is long (a byline, a title, a salutation is not)."""
    return bool(re.search(r"[。！？!?；;]", text)) or len(text) >= 40


def _shape(lead: str) -> tuple[int, bool]:
    return lead.count("，") + lead.count(","), bool(re.search(r"[“「\"]", lead))


def _parallel(a: str, b: str) -> bool:
    """Two lead sentences written to the same pattern: same clause count, both quoting or neither, similar length."""
    return _shape(a) == _shape(b) and min(len(a), len(b)) >= 0.6 * max(len(a), len(b)) and len(a) <= MAX_HEADING


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[dict] = []

    def add(self, doc: Document, kind: str, level: int, head: tuple[int, int], span: tuple[int, int], how: str,
            parent: int | None) -> int:
        node = {"id": len(self.nodes), "doc_id": doc.id, "kind": kind, "level": level,
                "title": doc.text[head[0]:head[1]], "head_start": head[0], "head_end": head[1],
                "start": span[0], "end": span[1], "how": how, "parent": parent, "children": [], "ordinal": 0}
        self.nodes.append(node)
        if parent is not None:
            siblings = [self.nodes[c] for c in self.nodes[parent]["children"] if self.nodes[c]["kind"] == kind]
            node["ordinal"] = len(siblings) + 1
            self.nodes[parent]["children"].append(node["id"])
        return node["id"]


def _heading_level(text: str) -> tuple[int, str] | None:
    for level, how, rx in _LEVELS:
        if rx.match(text):
            return level, how
    return None


def _sections(b: _Builder, doc: Document, root: int, paras: list[tuple[int, int, str]]) -> dict[int, int]:
    """Sections of a document; returns {paragraph index: the innermost section holding it}."""
    numbered = [(i, lv) for i, (_, _, t) in enumerate(paras) if (lv := _heading_level(t))]
    holder: dict[int, int] = {}
    if numbered:
        stack: list[tuple[int, int]] = [(0, root)]  # (level, node)
        for i, (s, e, t) in enumerate(paras):
            lv = _heading_level(t)
            if lv:
                level, how = lv
                while stack[-1][0] >= level:
                    stack.pop()
                hs, he = _first_sentence(t)
                end = next((paras[j][0] - 1 for j, (_, _, u) in enumerate(paras) if j > i
                            and (h := _heading_level(u)) and h[0] <= level), len(doc.text))
                node = b.add(doc, "section", level, (s + hs, s + he), (s, max(e, end)), how, stack[-1][1])
                stack.append((level, node))
            holder[i] = stack[-1][1]
        return holder
    body = [i for i, (_, _, t) in enumerate(paras) if _is_body(t)]
    leads = {i: paras[i][2][slice(*_first_sentence(paras[i][2]))] for i in body}
    best: list[int] = []
    run: list[int] = []
    for i in body:
        if run and i == run[-1] + 1 and _parallel(leads[run[-1]], leads[i]):
            run.append(i)
        else:
            run = [i]
        if len(run) > len(best):
            best = list(run)
    parts = best if len(best) >= 2 else body
    how = "parallel lead sentences" if len(best) >= 2 else "paragraph lead sentence"
    for i in body:
        s, e, t = paras[i]
        hs, he = _first_sentence(t)
        kind = "part" if i in parts else "passage"
        holder[i] = b.add(doc, kind, 1, (s + hs, s + he), (s, e),
                          how if kind == "part" else ("opening" if i < parts[0] else "closing"), root)
    return holder


def _led_paragraphs(b: _Builder, holder: Mapping[int, int], paras: list[tuple[int, int, str]],
                    by_para: Mapping[int, list[tuple[int, int]]]) -> tuple[dict[int, list[int]], set[int]]:
    """Per numbered section, its paragraphs that open with a short sentence heading them (at least two of them),
    unless the section is a series (一是…二是…) whose items those paragraphs elaborate; and the series sections."""
    led: dict[int, list[int]] = {}
    series: dict[int, int] = {}
    for i, (ps, pe, text) in enumerate(paras):
        if holder.get(i) is not None and _SERIES.match(text):
            series[holder[i]] = series.get(holder[i], 0) + 1
    for i, (ps, pe, text) in enumerate(paras):
        parent, sents = holder.get(i), by_para.get(i, [])
        if parent is None or b.nodes[parent]["kind"] != "section" or b.nodes[parent]["head_start"] == ps:
            continue
        if (_heading_level(text) is None and not _SERIES.match(text) and len(sents) >= 2
                and sents[0][1] - sents[0][0] <= MAX_LEAD):
            led.setdefault(parent, []).append(i)
    kept = {k: v for k, v in led.items() if len(v) >= 2 and series.get(k, 0) < 2}
    return kept, {k for k, n in series.items() if n >= 2}


def _items(b: _Builder, doc: Document, holder: Mapping[int, int], paras: list[tuple[int, int, str]],
           max_clause_chars: int) -> None:
    """The items of each section: paragraphs headed by a short first sentence, series items (一是…, 首先…), and
    sentences opening with the same action (大抓…)."""
    by_para: dict[int, list[tuple[int, int]]] = {}
    for p, s, e in sentences(doc, 10_000):  # whole sentences
        by_para.setdefault(p, []).append((s, e))
    led, in_series = _led_paragraphs(b, holder, paras, by_para)
    for parent, paragraphs in led.items():
        for i in paragraphs:
            s, e = by_para[i][0]
            b.add(doc, "item", b.nodes[parent]["level"] + 1, (s, e), (paras[i][0], paras[i][1]),
                  "paragraph lead sentence", parent)
    for i, (ps, pe, text) in enumerate(paras):
        parent = holder.get(i)
        if parent is None or parent in led:
            continue
        sents = by_para.get(i, [])
        if _SERIES.match(text) and _heading_level(text) is None:  # a paragraph that is one item of a series
            b.add(doc, "item", b.nodes[parent]["level"] + 1, sents[0] if sents else (ps, pe), (ps, pe),
                  "series 一是", parent)
            continue
        series = [(s, e) for s, e in sents if _SERIES.match(doc.text[s:e])]
        if parent in in_series:
            continue  # a series section: its items are its series paragraphs
        if len(series) >= 2:
            for s, e in series:
                b.add(doc, "item", b.nodes[parent]["level"] + 1, (s, e), (s, e), "series 一是", parent)
            continue
        leads: dict[str, list[tuple[int, int]]] = {}
        for s, e in sents:
            head = normalize(doc.text[s : s + 2])
            if re.fullmatch(f"[{CJK}]{{2}}", head) and _opens_with_action(normalize(doc.text[s:e])):
                leads.setdefault(head, []).append((s, e))
        for head, found in leads.items():
            if len(found) >= 2:
                for s, e in found:
                    b.add(doc, "item", b.nodes[parent]["level"] + 1, (s, e), (s, e), f"parallel lead {head}", parent)


_NOT_ACTIONS = {"r", "t", "m", "n", "nr", "ns", "nt", "nz", "f", "s", "q", "p", "c", "u", "x", "eng"}


def _opens_with_action(sentence: str) -> bool:
    """Whether a sentence opens with an action (大抓…, 推进…, 深化…), not a pronoun, a time, a number or a noun
    (我们…, 今年…, 一些…, 政府…): jieba's part-of-speech tag of its first word."""
    import jieba.posseg as pseg

    from .text import _jieba

    _jieba()
    first = next(iter(pseg.lcut(sentence[:8])), None)
    return first is not None and first.flag not in _NOT_ACTIONS


def _lists(b: _Builder, doc: Document, holder: Mapping[int, int], paras: list[tuple[int, int, str]]) -> None:
    """、-lists and abbreviations, with their members."""
    for i, (ps, pe, text) in enumerate(paras):
        parent = holder.get(i)
        for m in re.finditer(r"[^，,。；;：:！？!?（）()“”]*、[^，,。；;：:！？!?（）()“”]*", text):
            members = [(ps + m.start() + mm.start(), ps + m.start() + mm.end())
                       for mm in re.finditer(r"[^、]+", m.group(0))]
            if len(members) < 3:
                continue
            node = b.add(doc, "list", 9, (ps + m.start(), ps + m.end()), (ps + m.start(), ps + m.end()), "、-list",
                         parent)
            for s, e in members:
                b.add(doc, "member", 10, (s, e), (s, e), "、-list member", node)
        for m in re.finditer(r"[“「]([^”」]{4,16})[”」]", text):
            term = m.group(1)
            if not _ABBREVIATION.match(normalize(term)):
                continue
            pieces = re.findall(f"[{_NUMERAL}][^{_NUMERAL}]+", term)
            node = b.add(doc, "list", 9, (ps + m.start(1), ps + m.end(1)), (ps + m.start(1), pe), "abbreviation",
                         parent)
            after = [(s, e) for p, s, e in sentences(doc, 10_000) if p == i and s >= ps + m.end()]
            clauses = [(s + c.start(), s + c.end()) for s, e in after
                       for c in re.finditer(r"[^，,；;。]+[，,；;。]?", doc.text[s:e])]
            for piece in pieces:
                head = piece[1:]
                spelled = next(((s, e) for s, e in clauses if head in doc.text[s:e] and piece not in doc.text[s:e]),
                               None) or next(((s, e) for s, e in clauses if head in doc.text[s:e]), None)
                span = spelled or (ps + m.start(1) + term.index(piece), ps + m.start(1) + term.index(piece) + len(piece))
                b.add(doc, "member", 10, span, span, "abbreviation member spelled out" if spelled else
                      "abbreviation member", node)


def build_outline(docs: Iterable[Document], titles: Mapping[str, str] | None = None,
                  max_clause_chars: int = 100) -> tuple[Node, ...]:
    """The outline of every document: a document node each, its sections, items and lists."""
    b = _Builder()
    for doc in docs:
        paras = _paragraphs(doc)
        root = b.add(doc, "document", 0, (0, 0), (0, len(doc.text)), "document", None)
        b.nodes[root]["title"] = (titles or {}).get(doc.id, doc.id)
        holder = _sections(b, doc, root, paras)
        _items(b, doc, holder, paras, max_clause_chars)
        _lists(b, doc, holder, paras)
    return tuple(Node(**{**n, "children": tuple(n["children"])}) for n in b.nodes)


def outline_to_json(nodes: tuple[Node, ...]) -> list[dict]:
    return [asdict(n) for n in nodes]


def outline_from_json(data: list) -> tuple[Node, ...]:
    return tuple(Node(**{**n, "children": tuple(n["children"])}) for n in data)
