"""The extractive engine (the offline default): quotes the units that fitted selection chose, in the asker's script;
and the refusal that shows what the document does say."""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .compose import Draft, answer_text, citations, display, english_topic, injection_text, refusal_text
from .domain import Domain
from .lexicon import Lexicon
from .question import Question
from .conversation import State
from .select import Candidate, choose, scorer
from .structure import Structure
from .settings import Settings
from .text import normalize
from .types import Answerability, Chunk, Citation, Hit
from .units import SENTENCE_END, UnitIndex, bigrams, holds

# A unit counts as already said by the previous answer when this share of its bigrams is in that answer.
QUOTED_SHARE = 0.6
# A unit ending with a colon announces an elaboration; at most this many characters of it are quoted.
COLON_END = re.compile(r"[：:]\s*$")
ELABORATION_CHARS = 240
# A paragraph's opening shorter than this (an exclamation) is skipped.
MIN_HEADLINE_CHARS = 10


@dataclass(frozen=True)
class Evidence:
    """What the engines answer from: the question, its ranked candidates (and each part's), the passages."""

    question: Question
    ranked: tuple[Candidate, ...]
    parts: tuple[tuple[Candidate, ...], ...]
    hits: tuple[Hit, ...]


class ExtractiveEngine:
    """Composes an answer from verbatim source units chosen by the fitted selection."""

    name = "extractive"

    def __init__(self, uidx: UnitIndex, lexicon: Lexicon, structure: Structure, settings: Settings) -> None:
        self.uidx = uidx
        self.lexicon = lexicon
        self.structure = structure
        self.settings = settings

    @property
    def domain(self) -> Domain:
        return self.lexicon.domain

    def chosen(self, ev: Evidence) -> list[tuple[int, Chunk]]:
        """The units the answer quotes (unit position, passage), in document order."""
        q = ev.question
        if ev.parts:
            picks = []
            for part in ev.parts:
                best = next((c for c in part if c.unit not in {p for p, _ in picks}), None)
                if best is not None:
                    picks.append((best.unit, best.chunk))
            if picks:
                return sorted(picks)
        exclude = q.state.units if q.besides and q.state is not None else frozenset()
        if q.mentions and q.terms:
            term = max((t for t in q.terms if self.lexicon.has(t)), key=len, default="")
            found = [c for c in ev.ranked if term and term in self.uidx.units[c.unit].norm]
            if found:
                return sorted((c.unit, c.chunk) for c in found[: self.settings.max_answer_sentences])
        picked = choose(list(ev.ranked), self.uidx, scorer(), self.settings.max_answer_sentences, exclude)
        return self.announced([(c.unit, c.chunk) for c in picked])

    def announced(self, picked: list[tuple[int, Chunk]]) -> list[tuple[int, Chunk]]:
        """A chosen unit that ends with a colon announces what follows it: the units after it (the rest of its
        paragraph, or the next paragraph when the colon ends one) join the quote, up to ELABORATION_CHARS, so
        "主要是：" is never quoted without what it introduces."""
        out = list(picked)
        have = {i for i, _ in out}
        units = self.uidx.units
        for i, _ in picked:
            if not COLON_END.search(units[i].text):
                continue
            used, j = 0, i + 1
            while j < len(units) and units[j].doc_id == units[i].doc_id and used < ELABORATION_CHARS \
                    and units[j].paragraph <= units[i].paragraph + 1:
                chunk = self.uidx.chunk_of(j)
                if j not in have and chunk is not None:
                    out.append((j, chunk))
                    have.add(j)
                used += len(units[j].text)
                j += 1
        return sorted(out)

    def resolve(self, ev: Evidence) -> Draft | None:
        """An answer read off the document's structure or the conversation, before answerability: the byline, the
        first or last sentence, the outline (parts, summary, the n-th or a run of items, counts, which part, what an
        abbreviation stands for). None when the question is not of that kind or the structure cannot answer it."""
        q, hits = ev.question, list(ev.hits)
        if q.about in ("speaker", "start", "end") and hits:
            return self._whole_document(q, hits[0].chunk.doc_id)
        state = q.state if q.state is not None else State()
        return self.structure.answer(q, state, list(ev.ranked), hits)

    def answer(self, ev: Evidence) -> Draft:
        """The answer to an answerable question."""
        q = ev.question
        cits = citations(self.chosen(ev), self.uidx)
        if not cits:
            return self.refuse(ev, Answerability(False, 0.0, "no passage", q.asks, "", off_topic=True))
        key = "lead_list" if (q.wants_list or q.wants_count) and any(holds("list", normalize(c.quote)) for c in cits) \
            and q.script == "en" else "lead"
        topic = english_topic(normalize(q.query + " " + " ".join(c.quote for c in cits)), self.domain) \
            if q.script == "en" else ""
        return Draft(answer_text(key, cits, q.script, self.domain, topic=topic), cits)

    def refuse(self, ev: Evidence, verdict: Answerability) -> Draft:
        """'The document does not say', naming what was asked, with the closest passage it does have."""
        q = ev.question
        cits = () if verdict.off_topic or not ev.ranked else citations([(ev.ranked[0].unit, ev.ranked[0].chunk)], self.uidx)
        text = refusal_text(cits, q.script, self.domain, off_topic=verdict.off_topic, topic=verdict.topic,
                            asks=verdict.asks_for, attribute=q.attribute)
        return Draft(text, cits, refused=True)

    def injection(self, q: Question) -> Draft:
        return Draft(injection_text(q.script, self.domain), (), refused=True)

    def _cite(self, rows: list[int]) -> tuple[Citation, ...]:
        pairs = [(i, c) for i in dict.fromkeys(rows) if (c := self.uidx.chunk_of(i)) is not None]
        return citations(pairs, self.uidx)

    def _body(self, doc_id: str) -> list[list[int]]:
        """A document's paragraphs without its title or byline lines (short, with no sentence end)."""
        paragraphs = self.uidx.document(self.uidx.index.documents[doc_id])
        body = [p for p in paragraphs
                if any(SENTENCE_END.search(self.uidx.units[i].text) for i in p)
                or sum(len(self.uidx.units[i].norm) for i in p) >= 40]
        return body or paragraphs

    def _opening(self, paragraph: list[int]) -> int:
        """A paragraph's opening unit, skipping a short exclamation."""
        return next((i for i in paragraph if len(self.uidx.units[i].norm) >= MIN_HEADLINE_CHARS), paragraph[0])

    def _whole_document(self, q: Question, doc_id: str) -> Draft | None:
        """The document's byline, or its first or last sentence (the first or last one naming the question's topic,
        when it names one)."""
        body = self._body(doc_id)
        units = self.uidx.units
        if q.about == "speaker":
            if not self.domain.meta(doc_id).speaker:
                return None  # no byline: the question is answered (or refused) from the text like any other
            first = self.uidx.by_doc[doc_id][0]
            return Draft(answer_text("lead_speaker", self._cite([first]), q.script, self.domain), self._cite([first]))
        if q.about in ("start", "end"):
            topic = [t for t in q.terms if self.lexicon.has(t)]
            pool = [i for p in body for i in p]
            pool = pool[: max(2, len(pool) // 3)] if q.about == "start" else pool[::-1][: max(1, len(pool) // 3)]
            naming = [i for i in pool if any(t in units[i].norm for t in topic)]
            pick = naming[0] if naming else (self._opening(body[0]) if q.about == "start" else body[-1][-1])
            cits = self._cite(self.uidx.sentence(pick))
            return Draft(answer_text(f"lead_{q.about}", cits, q.script, self.domain), cits)
        return None


def query_vector(embedder, text: str) -> np.ndarray | None:
    return None if embedder is None or not text else embedder.embed_query(text)
