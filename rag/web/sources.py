"""The information panel: numbered source cards (in the asker's script, the original characters a toggle away),
one section per answer, and the 原文 view (the document with its outline as a table of contents and the cited
sentences marked in place). Every string from a document or a user is escaped with `render.text_html`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from ..compose import display
from ..types import Answer, Chunk, Document
from .render import text_html, words

SHORT_HEADING = 14  # a longer section heading is cut at its first clause on a card's title
TOC_KINDS = ("part", "section")  # outline nodes that are headings (passages and items are not)
ORIGINAL = "orig"  # the script value that shows the document's own characters


@dataclass(frozen=True)
class Library:
    """What the panel needs to know about the corpus: the documents, their titles and their outline."""

    documents: Mapping[str, Document]
    titles: Mapping[str, str] = field(default_factory=dict)  # doc_id → title from the document's metadata
    outline: tuple = ()  # rag.outline.Node of every document

    def title(self, doc_id: str) -> str:
        doc = self.documents.get(doc_id)
        return self.titles.get(doc_id) or (doc.title if doc else doc_id)

    def headings(self, doc_id: str) -> list:
        """The document's section headings (parts and sections), in document order."""
        return sorted((n for n in self.outline if n.doc_id == doc_id and n.kind in TOC_KINDS and n.head_end > n.head_start),
                      key=lambda n: n.head_start)

    def section(self, doc_id: str, offset: int) -> str:
        """The headings of the sections holding `offset`, outermost first, joined by " · "."""
        return " · ".join(n.title for n in self.headings(doc_id) if n.start <= offset < n.end)


def library_of(pipeline) -> Library:
    """The panel's view of a pipeline's index (a hand-made pipeline may lack an outline or metadata)."""
    index = pipeline.index
    domain = getattr(index, "domain", None)
    titles = {}
    for doc_id in index.documents:
        try:
            titles[doc_id] = domain.meta(doc_id).title if domain is not None else ""
        except (KeyError, AttributeError):
            titles[doc_id] = ""
    return Library(index.documents, titles, tuple(getattr(index, "outline", ()) or ()))


def shown(text: str, script: str) -> str:
    """Document text as the asker reads it (their script, full-width punctuation), or as written."""
    return text if script == ORIGINAL else display(text, script)


def short_heading(heading: str) -> str:
    """A long heading cut at its first clause: "加强人才队伍建设，全面提升公共服务水平" → "加强人才队伍建设…"."""
    if len(heading) <= SHORT_HEADING:
        return heading
    for mark in "，,；;：:。":
        cut = heading.find(mark)
        if 0 < cut <= SHORT_HEADING * 2:
            return heading[:cut] + "…"
    return heading[:SHORT_HEADING] + "…"


@dataclass(frozen=True)
class Passage:
    """One source card: a chunk, the span to mark (document offsets), its number, and where it sits."""

    n: int
    chunk: Chunk
    start: int
    end: int
    document: str = ""  # the document's title
    section: str = ""  # the headings holding the quote, outermost first, " · "-joined


def citation_passages(answer: Answer) -> list[Passage]:
    """The answer's citations as cards, numbered like the answer's markers."""
    return [Passage(c.n, c.chunk, c.start, c.end, c.document, c.section) for c in answer.citations]


def hit_passages(answer: Answer, limit: int = 3) -> list[Passage]:
    """The top retrieved passages, numbered from 1, the whole passage marked (when no answer was produced)."""
    return [Passage(i + 1, h.chunk, h.chunk.start, h.chunk.end) for i, h in enumerate(answer.hits[:limit])]


def card_passages(answer: Answer) -> list[Passage]:
    """The cards shown for an answer: its citations; for an engine that produced no text, the top passages; a
    refusal shows only what the engine cited as the closest content (an off-topic or injected question: none)."""
    if answer.citations:
        return citation_passages(answer)
    if not answer.refused and not answer.text:
        return hit_passages(answer)
    return []


def _locate(doc: Document | None, passage: Passage) -> tuple[str, int]:
    """(text, base offset) of a card: the chunk, widened to hold the quote."""
    chunk = passage.chunk
    if doc is None:
        return chunk.text, chunk.start
    lo, hi = chunk.start, chunk.end
    if passage.end > passage.start and 0 <= passage.start and passage.end <= len(doc.text):
        lo, hi = min(lo, passage.start), max(hi, passage.end)
    return doc.text[lo:hi], lo


def highlighted(text: str, base: int, start: int, end: int, script: str, cls: str = "rag-quote") -> str:
    """`text` (at document offset `base`) in `script`, escaped, with [start, end) wrapped in <mark>."""
    s, e = max(start - base, 0), min(end - base, len(text))
    if e <= s:
        return text_html(shown(text, script))
    before, quote, after = (shown(t, script) for t in (text[:s], text[s:e], text[e:]))
    return f'{text_html(before)}<mark class="{cls}">{text_html(quote)}</mark>{text_html(after)}'


def card_title(passage: Passage, library: Library, script: str) -> tuple[str, str]:
    """(short, full) title of a card in the asker's script: the document's title and the section of the quote."""
    doc_id = passage.chunk.doc_id
    title = passage.document or library.title(doc_id)
    section = passage.section or library.section(doc_id, passage.start)
    heads = [h for h in section.split(" · ") if h] if section else []
    full = " · ".join(shown(t, script) for t in [title, *heads])
    short = " · ".join([shown(title, script)] + [short_heading(shown(h, script)) for h in heads[-1:]])
    return short, full


def paragraph_label(paragraph: int) -> str:
    """Paragraphs are 0-based in the index (the byline is paragraph 0); people count from 1."""
    return f"第 {paragraph + 1} 段"


def card_html(passage: Passage, library: Library, script: str, turn: int, marks: str, related: bool) -> str:
    """One numbered card: title, the passage in the asker's script with the quote marked (and, hidden, as
    written), and the buttons for the 原文 view and the original characters."""
    doc = library.documents.get(passage.chunk.doc_id)
    text, base = _locate(doc, passage)
    cls = "rag-related-mark" if related else "rag-quote"
    body = highlighted(text, base, passage.start, passage.end, script, cls)
    original = highlighted(text, base, passage.start, passage.end, ORIGINAL, cls)
    short, full = card_title(passage, library, script)
    toggle = ('<button type="button" class="rag-orig-toggle" aria-pressed="false" title="显示文件原来的字形和标点">'
              "原文用字</button>") if body != original else ""
    view = ('<button type="button" class="rag-open-original" aria-expanded="false">查看原文</button>'
            if doc is not None else "")
    kind = "rag-card rag-card-related" if related else "rag-card"
    label = f"{words(script)['cite']}{passage.n}"
    return (f'<article class="{kind}" data-n="{passage.n}" data-turn="{turn}" data-doc="{text_html(passage.chunk.doc_id)}" '
            f'data-start="{passage.start}" data-end="{passage.end}" data-marks="{marks}" data-script="{script}" '
            f'tabindex="-1" aria-label="{text_html(label)}">'
            f'<header><span class="rag-card-n">[{passage.n}]</span> <span class="rag-card-where" title="{text_html(full)}">'
            f'{text_html(short)}</span> <small class="rag-card-para">{paragraph_label(passage.chunk.paragraph)}</small></header>'
            f'<p class="rag-passage"><span class="rag-shown">{body}</span>'
            f'<span class="rag-as-written" hidden>{original}</span></p>'
            f'<div class="rag-card-actions">{view}{toggle}</div><div class="rag-original" hidden></div></article>')


def _marks(passages: Sequence[Passage], doc_id: str) -> str:
    """The spans the 原文 view of `doc_id` marks: every card of the answer in that document, as n:start-end."""
    return ",".join(f"{p.n}:{p.start}-{p.end}" for p in passages if p.chunk.doc_id == doc_id and p.end > p.start)


def turn_html(answer: Answer | None, library: Library, turn: int, question: str = "", pending: bool = False) -> str:
    """The panel's section for one answer: its numbered cards (来源), or for a refusal the closest passages
    (相关内容), or a line saying that nothing in the documents is related. `pending`: the cards of the quoted
    answer shown while an LLM writes (the verified answer's cards replace them)."""
    ask = f'<p class="rag-turn-q">问：{text_html(question)}</p>' if question else ""
    if answer is None:
        return (f'<section class="rag-turn rag-pending" data-turn="{turn}">{ask}'
                '<p class="rag-hint">正在查找来源…</p></section>')
    script = answer.script if answer.script in ("hans", "hant") else "hans"
    passages = card_passages(answer)
    related = answer.refused or not answer.text
    if not passages:
        off_topic = bool(answer.answerability and answer.answerability.off_topic)
        line = "文件中没有与这个问题相关的段落。" if off_topic or not answer.refused else "这个回答没有引用文件段落。"
        return f'<section class="rag-turn rag-empty" data-turn="{turn}">{ask}<p class="rag-hint">{line}</p></section>'
    cards = "".join(card_html(p, library, script, turn, _marks(passages, p.chunk.doc_id), related) for p in passages)
    head = ("<h3>相关内容</h3><p class=\"rag-hint\">文件中与问题最接近的段落，仅供参考，不是答案的依据。</p>" if related
            else "<h3>来源</h3>")
    if pending:
        head += '<p class="rag-hint">摘引原文的出处；大模型的回答核对后，这里换成它引用的段落。</p>'
    kind = ("rag-turn rag-turn-related" if related else "rag-turn") + (" rag-pending" if pending else "")
    return f'<section class="{kind}" data-turn="{turn}">{ask}{head}{cards}</section>'


EMPTY_PANEL = ('<section class="rag-turn rag-welcome" data-turn="-1"><h3>来源</h3><p class="rag-hint">回答里的 [1]、[2] '
               "标记对应这里的原文出处：点一下标记，就能看到那句话在文件中的位置。</p></section>")


def panel_html(sections: Iterable[str], active: int | None = None) -> str:
    """The information panel: the answers' sections, only the active one (default: the last) shown."""
    sections = list(sections)
    if not sections:
        return f'<div class="rag-panel-inner">{EMPTY_PANEL}</div>'
    active = len(sections) - 1 if active is None else active
    shown_ = [s if i == active else s.replace("<section ", "<section hidden ", 1) for i, s in enumerate(sections)]
    return f'<div class="rag-panel-inner">{"".join(shown_)}</div>'


# --- the 原文 view ------------------------------------------------------------------------------------


def parse_marks(marks: str, limit: int) -> list[tuple[int, int, int]]:
    """"1:674-744,2:339-411" → [(1, 674, 744), (2, 339, 411)], spans clamped to [0, limit], bad items dropped."""
    out = []
    for item in (marks or "").split(",")[:50]:
        try:
            n, span = item.split(":", 1)
            start, end = (int(x) for x in span.split("-", 1))
        except ValueError:
            continue
        start, end = max(0, min(start, limit)), max(0, min(end, limit))
        if end > start:
            out.append((int(n), start, end))
    return out


def _segments(length: int, heads: list[tuple[int, int]], marks: list[tuple[int, int, int]]):
    """The document cut at every heading and mark boundary: (start, end, heading start or None, marks over it)."""
    points = sorted({0, length} | {p for h in heads for p in h} | {p for _, s, e in marks for p in (s, e)})
    for a, b in zip(points, points[1:]):
        head = next((s for s, e in heads if s <= a and b <= e), None)
        yield a, b, head, [m for m in marks if m[1] <= a and b <= m[2]]


def toc_html(headings: list, script: str) -> str:
    """The outline as a clickable table of contents (each entry scrolls the text to its heading)."""
    if not headings:
        return ""
    items = "".join(f'<li class="rag-toc-l{min(n.level, 3)}"><button type="button" class="rag-toc-link" '
                    f'data-at="{n.head_start}">{text_html(shown(n.title, script))}</button></li>' for n in headings)
    return f'<nav class="rag-toc" aria-label="目录"><p class="rag-toc-title">目录</p><ol>{items}</ol></nav>'


def original_html(doc: Document, library: Library, marks: list[tuple[int, int, int]], current: int | None,
                  script: str) -> str:
    """The 原文 view: the table of contents, then the whole document in `script` (or as written) with its
    headings anchored and the answer's cited spans marked in place, the current one emphasised."""
    headings = library.headings(doc.id)
    heads = [(n.head_start, n.head_end) for n in headings]
    out = []
    for a, b, head, over in _segments(len(doc.text), heads, marks):
        piece = text_html(shown(doc.text[a:b], script))
        if over:
            n = over[0][0]
            cls = "rag-quote rag-current" if any(m[0] == current for m in over) else "rag-quote"
            piece = f'<mark class="{cls}" data-n="{n}">{piece}</mark>'
        if head is not None:
            piece = f'<span class="rag-heading" data-at="{head}">{piece}</span>'
        out.append(piece)
    title = text_html(shown(library.title(doc.id), script))
    return (f'<div class="rag-original-view" data-doc="{text_html(doc.id)}"><p class="rag-original-title">{title}</p>'
            f'{toc_html(headings, script)}<div class="rag-doc-text" tabindex="0">{"".join(out)}</div></div>')
