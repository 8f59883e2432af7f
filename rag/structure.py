"""Answers read off the outline and the conversation: the parts of a document and their headings, a summary (one
line per part), the n-th / last / a run of items of a list, how many items it has, which part something is in,
what an abbreviation stands for. Each answer quotes the nodes it uses, like any other answer."""
from __future__ import annotations

import re
from dataclasses import replace

from .compose import Draft, answer_text, citations, display, phrases
from .conversation import State, entries, section_holding
from .domain import Domain
from .outline import Node
from .question import Question
from .select import Candidate
from .text import normalize
from .types import Chunk, Citation, Hit
from .units import UnitIndex, bigrams

MAX_ENTRIES = 10  # an answer lists at most this many entries
_PARTS_WORD = re.compile(r"部分|段|块|板块|章|节|parts?|sections?", re.IGNORECASE)  # the document's own parts
# a question that counts a section's entries (分几个方面, 几项) or asks for them by the section's name (那项任务讲了哪几点)
_COUNTED = re.compile(r"部分|段|块|板块|章|节|项|条|点|方面|parts?|sections?|points?|tasks?", re.IGNORECASE)
_NAMED = re.compile(r"(这|那|此|该)(一)?(大|小)?(项|部分|块|板块|章|节|条)|(项|部分|块|板块|章|节)(任务|工作)?(下面|下|里|中|底下)|"
                    r"(this|that) (part|section|task)", re.IGNORECASE)


class Structure:
    """The outline of an index, and the answers it gives."""

    def __init__(self, outline: tuple[Node, ...], uidx: UnitIndex, domain: Domain) -> None:
        self.outline = outline
        self.uidx = uidx
        self.domain = domain

    # --- places ------------------------------------------------------------------------------------------------
    def parts(self, doc_id: str) -> list[Node]:
        """The top-level sections or parts of a document, in order."""
        return [n for n in self.outline if n.doc_id == doc_id and n.level == 1 and n.kind in ("section", "part")]

    def units_of(self, start: int, end: int, doc_id: str) -> list[int]:
        """The units overlapping a span of a document."""
        return [i for i in self.uidx.by_doc.get(doc_id, [])
                if self.uidx.units[i].start < end and start < self.uidx.units[i].end]

    def cite(self, spans: list[tuple[int, int, str]]) -> tuple[Citation, ...]:
        """Citations of the units holding the given (start, end, doc) spans, in document order."""
        rows: list[tuple[int, Chunk]] = []
        for start, end, doc_id in spans:
            for i in self.units_of(start, end, doc_id):
                chunk = self.uidx.chunk_of(i)
                if chunk is not None and all(i != r for r, _ in rows):
                    rows.append((i, chunk))
        return citations(rows, self.uidx)

    def key_sentence(self, node: Node) -> tuple[int, int] | None:
        """A section's key sentence: the first sentence after its heading."""
        inside = [i for i in self.units_of(node.head_end, node.end, node.doc_id)
                  if self.uidx.units[i].start >= node.head_end]
        if not inside:
            return None
        first = self.uidx.sentence(inside[0])
        return self.uidx.units[first[0]].start, self.uidx.units[first[-1]].end

    def named_list(self, q: Question, doc_id: str, parts_fallback: bool = True) -> tuple[Node, list[Node]] | None:
        """The list a question names by the words of its heading (任务 → "三、…政府工作任务"), else, when it speaks of
        the document's parts and `parts_fallback`, the document's parts."""
        words = [t for t in q.terms + q.context if len(t) >= 2]
        best, best_key = None, (0, 0)
        for node in self.outline:
            if node.doc_id != doc_id or node.kind not in ("section", "part"):
                continue
            items = entries(node, self.outline)
            if len(items) < 2:
                continue
            heading = normalize(node.title)
            key = (sum(1 for t in words for g in bigrams(t) if g in heading), node.level)  # then the deepest
            if key[0] and key > best_key:
                best, best_key = (node, items), key
        if best is None and parts_fallback and _PARTS_WORD.search(q.norm + " " + q.text):
            parts = self.parts(doc_id)
            root = next(n for n in self.outline if n.doc_id == doc_id and n.kind == "document")
            best = (root, parts) if len(parts) >= 2 else None
        return best

    def source(self, cit: Citation) -> Citation:
        """The citation with its document's title and the headings of the sections holding it."""
        chain: list[Node] = []
        holder = section_holding(cit.start, cit.chunk.doc_id, self.outline)
        while holder is not None and self.outline[holder].kind in ("section", "part"):
            chain.append(self.outline[holder])
            holder = self.outline[holder].parent
        section = " · ".join(_bare(n.title) for n in reversed(chain))
        return replace(cit, document=self.domain.meta(cit.chunk.doc_id).title, section=section)

    # --- answers -----------------------------------------------------------------------------------------------
    def answer(self, q: Question, state: State, ranked: list[Candidate], hits: list[Hit]) -> Draft | None:
        """An answer from the outline or the conversation, or None when the question is not of that kind."""
        doc_id = (ranked[0].chunk.doc_id if ranked else hits[0].chunk.doc_id) if (ranked or hits) else None
        if doc_id is None:
            return None
        if (q.ordinal is not None or q.items) and q.refers_back and state.listing:
            return self._pick(q, [self.outline[i] for i in state.listing], state.list_title)
        if q.about in ("structure", "summary"):
            return self._parts(q, doc_id, summary=q.about == "summary")
        if q.asks_section and ranked:
            return self._section_of(q, ranked[0])
        said = q.norm + " " + q.text
        listing = (q.wants_count and _COUNTED.search(said)) or ((q.wants_list or q.wants_count) and _NAMED.search(said))
        if q.ordinal is not None or q.items or (listing and not q.asks):
            found = self.named_list(q, doc_id, parts_fallback=q.ordinal is not None or bool(q.items)
                                    or bool(_PARTS_WORD.search(q.norm)))
            if found is not None and (q.ordinal is not None or q.items):
                return self._pick(q, found[1], found[0].title)
            if found is not None and found[0].kind != "list":
                return self._count(q, found[0], found[1])
        return self._abbreviation(q, doc_id)

    def _text(self, key: str, cits: tuple[Citation, ...], q: Question, **values: str) -> Draft:
        return Draft(answer_text(key, cits, q.script, self.domain, **values), cits)

    def _parts(self, q: Question, doc_id: str, summary: bool) -> Draft | None:
        parts = self.parts(doc_id)
        if len(parts) < 2:
            return None
        spans = [(p.head_start, p.head_end, doc_id) for p in parts[:MAX_ENTRIES]]
        if summary:
            spans += [(s, e, doc_id) for p in parts[:MAX_ENTRIES] if (k := self.key_sentence(p)) for s, e in [k]]
        cits = self.cite(spans)
        return self._text("lead_summary" if summary else "lead_structure", cits, q, n=str(len(parts)))

    def _pick(self, q: Question, items: list[Node], title: str) -> Draft | None:
        """The n-th item (from the end when negative, the middle one for 0), or a run of them."""
        if not items:
            return None
        if q.items:
            start, n = q.items
            chosen = items[:n] if start > 0 else items[-n:]
            cits = self.cite([(e.head_start, e.head_end, e.doc_id) for e in chosen])
            shown = "、".join(display(_bare(e.title), q.script) for e in chosen)
            return self._text("items", cits, q, item=shown, n=str(len(chosen)))
        n = q.ordinal
        if n is None or abs(n) > len(items) or (n > 0 and n > len(items)):
            return None
        index = len(items) // 2 if n == 0 else (n - 1 if n > 0 else len(items) + n)
        entry = items[index]
        spans = [(entry.head_start, entry.head_end, entry.doc_id)]
        if entry.kind in ("section", "part") and (k := self.key_sentence(entry)):
            spans.append((k[0], k[1], entry.doc_id))
        cits = self.cite(spans)
        return self._text("ordinal", cits, q, n=str(index + 1), item=display(_bare(entry.title), q.script))

    def _count(self, q: Question, node: Node, items: list[Node]) -> Draft:
        cits = self.cite([(e.head_start, e.head_end, e.doc_id) for e in items[:MAX_ENTRIES]])
        return self._text("lead_count", cits, q, n=str(len(items)), item=display(_bare(node.title), q.script))

    def _section_of(self, q: Question, best: Candidate) -> Draft | None:
        """The innermost section or part that holds the best unit, named by its heading (and the top-level part
        above it, when that is another one)."""
        unit = self.uidx.units[best.unit]
        holder = section_holding(unit.start, unit.doc_id, self.outline)
        if holder is None:
            return None
        chain = [self.outline[holder]]
        while chain[-1].parent is not None and self.outline[chain[-1].parent].kind in ("section", "part"):
            chain.append(self.outline[chain[-1].parent])
        spans = [(n.head_start, n.head_end, unit.doc_id) for n in (chain[-1], chain[0])] + [(unit.start, unit.end, unit.doc_id)]
        names = "”下的“".join(display(_bare(n.title), q.script) for n in dict.fromkeys((chain[-1], chain[0])))
        return self._text("lead_section_of", self.cite(spans), q, item=names)

    def _abbreviation(self, q: Question, doc_id: str) -> Draft | None:
        """What an abbreviation the question names stands for: the sentences that spell out its members."""
        if not (q.definition or q.wants_list or q.wants_count):
            return None
        for node in self.outline:
            if node.doc_id != doc_id or node.how != "abbreviation":
                continue
            term = normalize(node.title)
            if not any(term == t or term in t for t in q.terms):
                continue
            members = entries(node, self.outline)
            spans = [(node.head_start, node.head_end, doc_id)] + [(m.head_start, m.head_end, doc_id) for m in members]
            cits = self.cite(spans)
            return self._text("lead_members", cits, q, item=display(node.title, q.script), n=str(len(members)))
        return None


def _bare(title: str) -> str:
    """A heading without its number marker and final stop: "（三）坚持创新引领发展。" → "坚持创新引领发展"."""
    text = re.sub(r"^(?:[一二三四五六七八九十]+、|[（(][一二三四五六七八九十]+[）)]|[0-9]{1,2}[.、．])", "", title.strip())
    return re.sub(r"[。；;，,：:]+$", "", text)
