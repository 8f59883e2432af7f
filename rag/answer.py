"""Answer engines behind one protocol, and the answerability check that decides when to refuse.

The extractive engine (default, offline) composes an answer from verbatim source sentences; the LLM engines
(rag.llm backends) are verified against the passages and fall back to the extractive answer.
"""
from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from .chunking import sentences
from .glossary import english_name
from .query import (asks_for, asks_list, attribute, content_terms, coverage, has_evidence, ordinal, synonyms)
from .settings import ROOT, Settings
from .store import LoadedIndex
from .text import normalize, s2t, t2s
from .types import Answerability, Chunk, Citation, Hit

PROMPTS = ROOT / "prompts"
# Sentence scoring and selection, tuned on eval/dataset.jsonl (see README): weights of the lexical overlap, the
# sentence's own embedding similarity and its passage's retrieval score; a further sentence is quoted only when
# it scores within SELECT_RATIO of the best one and overlaps the question at least LEX_RATIO as much.
W_LEX, W_DENSE, W_CHUNK = 0.4, 0.3, 0.3
SELECT_RATIO, LEX_RATIO = 0.85, 0.6
# An enumeration ("推进A、B、C…") names many topics in passing: for a question that is not asking for a list it
# matches almost anything, so it yields to the sentence that elaborates the topic.
ENUM_PENALTY = 0.6


@functools.lru_cache(maxsize=1)
def phrases() -> dict:
    """User-facing phrasing per script (prompts/extractive.json)."""
    return json.loads((PROMPTS / "extractive.json").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Unit:
    """A sentence (or comma clause of a long sentence) of a document: what an answer quotes."""

    doc_id: str
    paragraph: int
    start: int
    end: int
    text: str
    norm: str


@dataclass(frozen=True)
class Draft:
    """An engine's answer before it becomes an Answer."""

    text: str
    citations: tuple[Citation, ...]
    refused: bool = False
    engine: str = "extractive"
    notice: str = ""


class AnswerEngine(Protocol):
    name: str

    def answer(self, question: str, query: str, hits: list[Hit], script: str,
               history: list[tuple[str, str]]) -> Draft: ...


def _bigrams(text: str) -> list[str]:
    runs = re.findall(r"[\u4e00-\u9fff]+|[a-z0-9]+", text)
    out = []
    for r in runs:
        if re.match(r"[a-z0-9]", r):
            out.append(r)
        else:
            out.extend(r[i : i + 2] for i in range(len(r) - 1))
    return out


def _strip_end(text: str) -> str:
    return re.sub(r"[,，。；;、:：\s]+$", "", text)


def display(text: str, script: str) -> str:
    """A verbatim quote rendered for the asker: their script, full-width commas for Chinese readers."""
    if script == "hant":
        shown = text if t2s(text) != text or s2t(text) == text else s2t(text)  # Traditional sources stay verbatim
    else:
        shown = t2s(text)
    return shown.replace(",", "，").replace(";", "；")


class SentenceIndex:
    """Every answer unit of the corpus with bigram IDF, built once per loaded index."""

    def __init__(self, index: LoadedIndex, max_clause_chars: int, embedder=None) -> None:
        self.index = index
        self.embedder = embedder
        self.units: list[Unit] = []
        for doc in index.documents.values():
            for p, s, e in sentences(doc, max_clause_chars):
                self.units.append(Unit(doc.id, p, s, e, doc.text[s:e], normalize(doc.text[s:e])))
        df: Counter[str] = Counter()
        for u in self.units:
            df.update(set(_bigrams(u.norm)))
        n = max(1, len(self.units))
        self.idf = {g: math.log(1 + n / c) for g, c in df.items()}
        self.corpus_norm = "\n".join(normalize(d.text) for d in index.documents.values())
        self.by_doc: dict[str, list[Unit]] = {}
        for u in self.units:
            self.by_doc.setdefault(u.doc_id, []).append(u)
        self._pos = {(u.doc_id, u.start): i for i, u in enumerate(self.units)}
        self._grams = [frozenset(_bigrams(u.norm)) for u in self.units]
        stored = index.sentence_vectors
        self._vectors = stored if stored is not None and len(stored) == len(self.units) else None

    def dense(self, query: str, units: list[Unit]) -> list[float]:
        """Cosine of each unit to the query (unit vectors from the index; embedded on first use if absent)."""
        if self.embedder is None or not units:
            return [0.0] * len(units)
        if self._vectors is None:
            self._vectors = self.embedder.embed_documents([u.text for u in self.units])
        q = self.embedder.embed_query(query)
        return [float(self._vectors[self._pos[(u.doc_id, u.start)]] @ q) for u in units]

    def chunk_of(self, unit: Unit) -> Chunk | None:
        """The first indexed chunk that contains a unit."""
        return next((c for c in self.index.chunks
                     if c.doc_id == unit.doc_id and c.start <= unit.start and unit.end <= c.end), None)

    def within(self, chunk: Chunk) -> list[Unit]:
        return [u for u in self.by_doc.get(chunk.doc_id, []) if chunk.start <= u.start and u.end <= chunk.end]

    def lexical(self, query_grams: set[str], unit: Unit) -> float:
        """IDF-weighted share of the query's bigrams found in the unit."""
        if not query_grams:
            return 0.0
        total = sum(self.idf.get(g, 0.0) for g in query_grams)
        if total <= 0:
            return 0.0
        have = self._grams[self._pos[(unit.doc_id, unit.start)]]
        return sum(self.idf.get(g, 0.0) for g in query_grams if g in have) / total


def query_terms(query: str) -> list[str]:
    """Content terms of a retrieval query plus the document's terms for its colloquial words."""
    return list(dict.fromkeys(content_terms(query) + synonyms(query)))


@dataclass(frozen=True)
class Scored:
    unit: Unit
    chunk: Chunk
    score: float
    lexical: float


_ENUM = re.compile(r"[、]")


def _is_enumeration(text: str) -> bool:
    return len(_ENUM.findall(text)) >= 2


def rank_units(sidx: SentenceIndex, query: str, hits: list[Hit], wants_list: bool | None = None) -> list[Scored]:
    """Units of the retrieved chunks scored against the query: lexical overlap, the unit's own embedding
    similarity and its chunk's retrieval score; enumerations yield unless a list is asked for."""
    wants_list = asks_list(query) if wants_list is None else wants_list
    grams = set()
    for t in query_terms(query):
        grams.update(_bigrams(normalize(t)) or [normalize(t)])
    top = max((h.score for h in hits), default=1.0) or 1.0
    pairs = [(h, u) for h in hits for u in sidx.within(h.chunk)]
    cos = sidx.dense(query, [u for _, u in pairs])
    lo, hi = (min(cos), max(cos)) if cos else (0.0, 1.0)
    seen: dict[tuple[str, int], Scored] = {}
    for (h, u), c in zip(pairs, cos):
        lex = sidx.lexical(grams, u)
        dn = (c - lo) / (hi - lo) if hi > lo else 0.0
        score = W_LEX * lex + W_DENSE * dn + W_CHUNK * (h.score / top) * (1.0 - 0.04 * (h.rank - 1))
        if not wants_list and _is_enumeration(u.text):
            score *= ENUM_PENALTY
        key = (u.doc_id, u.start)
        if key not in seen or seen[key].score < score:
            seen[key] = Scored(u, h.chunk, score, lex)
    return sorted(seen.values(), key=lambda s: -s.score)


def select_units(sidx: SentenceIndex, ranked: list[Scored], question: str, max_n: int) -> list[Scored]:
    """The best units: the top one, those close to it, the enumeration a list question asks for; in document order."""
    if not ranked:
        return []
    best = ranked[0].score
    chosen = [ranked[0]]
    for s in ranked[1:]:
        if len(chosen) >= max_n:
            break
        if s.score >= SELECT_RATIO * best and s.lexical >= max(0.2, LEX_RATIO * ranked[0].lexical):
            chosen.append(s)
    if asks_list(question):
        enum = [s for s in chosen if _is_enumeration(s.unit.text)]
        if not enum:
            # the list often follows the clause that names it: "八大抓手", then "推进…、…、…"
            units = sidx.by_doc[ranked[0].unit.doc_id]
            for s in list(chosen[:2]):
                i = units.index(s.unit)
                for nxt in units[i + 1 : i + 3]:
                    if nxt.paragraph == s.unit.paragraph and _is_enumeration(nxt.text):
                        chunk = next((h.chunk for h in ranked if h.unit == nxt), s.chunk)
                        chosen.append(Scored(nxt, chunk, s.score, s.lexical))
                        break
            enum_ranked = [s for s in ranked[:6] if _is_enumeration(s.unit.text) and s not in chosen]
            if not any(_is_enumeration(s.unit.text) for s in chosen) and enum_ranked:
                chosen.append(enum_ranked[0])
        chosen = chosen[: max_n + 1]
    unique: list[Scored] = []
    for s in chosen:
        if any(s.unit.norm in o.unit.norm or o.unit.norm in s.unit.norm for o in unique):
            continue
        unique.append(s)
    return sorted(unique, key=lambda s: (s.unit.doc_id, s.unit.start))


def _citations(selected: list[Scored]) -> tuple[Citation, ...]:
    return tuple(Citation(n, s.chunk, s.unit.text, s.unit.start, s.unit.end) for n, s in enumerate(selected, start=1))


def _join_quotes(cits: tuple[Citation, ...], script: str) -> str:
    ph = phrases()[script]
    if script == "en":
        return "\n".join(f"“{_strip_end(display(c.quote, script))}”[{c.n}]" for c in cits)
    return ph["sep"].join(f"{_strip_end(display(c.quote, script))}[{c.n}]" for c in cits) + ph["end"]


def _where_en(cits: tuple[Citation, ...]) -> str:
    ph = phrases()["en"]
    ps = sorted({c.chunk.paragraph + 1 for c in cits})  # 1-based for readers, as in the app
    if len(ps) == 1:
        return ph["where_one"].format(p=ps[0])
    return ph["where_many"].format(ps=", ".join(map(str, ps[:-1])) + f" and {ps[-1]}")


class ExtractiveEngine:
    """Composes a short answer from verbatim source sentences of the retrieved passages."""

    name = "extractive"

    def __init__(self, index: LoadedIndex, settings: Settings, embedder=None) -> None:
        self.settings = settings
        self.sidx = SentenceIndex(index, settings.max_clause_chars, embedder)

    def answer(self, question: str, query: str, hits: list[Hit], script: str,
               history: list[tuple[str, str]]) -> Draft:
        ranked = rank_units(self.sidx, query, hits, asks_list(question))
        if hits and asks_for(question) == "person" and not content_terms(question) and _META.search(question):
            # "这篇讲话是谁讲的？": the byline, the first line of the document the passages come from
            byline = self.sidx.by_doc[hits[0].chunk.doc_id][0]
            ranked = [Scored(byline, self.sidx.chunk_of(byline), 1.0, 1.0)] + ranked
        n = ordinal(question)
        if n and history:
            draft = self._ordinal(n, history, ranked, script)
            if draft:
                return draft
        selected = select_units(self.sidx, ranked, question + " " + query, self.settings.max_answer_sentences)
        cits = _citations(selected)
        ph = phrases()[script]
        if script == "en":
            topic = english_name(t2s(query)) or english_name(normalize(" ".join(c.quote for c in cits))) or ph["topic_default"]
            key = "lead_list" if asks_list(question) and any(_is_enumeration(c.quote) for c in cits) else "lead"
            lead = ph[key].format(topic=topic, where=_where_en(cits))
            return Draft(f"{lead}\n{_join_quotes(cits, script)}", cits)
        return Draft(ph["lead"] + _join_quotes(cits, script), cits)

    def _ordinal(self, n: int, history, ranked: list[Scored], script: str) -> Draft | None:
        """'其中第三个呢？' after a list: the n-th item of the enumeration the previous answer quoted."""
        previous = normalize(history[-1][1] + " " + history[-1][0])
        for u in self.sidx.units:
            if not _is_enumeration(u.text) or not any(seg in previous for seg in re.split("[、，,]", u.norm) if len(seg) >= 4):
                continue
            body = re.sub(r"^[^、]*?(推进|包括|以|打造|建设)", r"\1", _strip_end(u.text))
            items = [i for i in re.split("[、]", body) if i]
            if n > len(items):
                return None
            chunk = next((h.chunk for h in ranked if h.unit == u), None) or self.sidx.chunk_of(u)
            if chunk is None:
                return None
            item = re.sub(r"^(推进|包括)", "", items[n - 1])
            cits = (Citation(1, chunk, u.text, u.start, u.end),)
            ph = phrases()[script]
            shown = display(item, script)
            return Draft(ph["ordinal"].format(n=n, item=shown) + ("\n" if script == "en" else "") + _join_quotes(cits, script), cits)
        return None


# --- answerability ----------------------------------------------------------------------------------------


_META = re.compile(r"讲话|講話|发言|發言|演讲|演講|这篇|這篇|文件|报告|報告|speech|speaker|document|talk", re.IGNORECASE)


def assess(sidx: SentenceIndex, question: str, query: str, hits: list[Hit], settings: Settings) -> Answerability:
    """Whether the passages answer the question: topicality (content words in the corpus, dense similarity)
    and, for questions that ask for a figure, date, name or procedure, whether the passages hold one."""
    terms = query_terms(query)
    cov, missing = coverage(content_terms(query), sidx.corpus_norm)
    syn_cov = 1.0 if any(t in sidx.corpus_norm for t in terms) else 0.0
    dense = max((h.scores.get("dense", 0.0) for h in hits), default=0.0)
    dense_n = min(1.0, max(0.0, (dense - 0.78) / 0.12))
    topical = max(cov, 0.5 * syn_cov) if terms else 0.0
    if not terms and _META.search(question):
        topical = 1.0  # a question about the speech itself: who gave it, what it is about
    score = 0.55 * topical + 0.45 * dense_n
    kind = asks_for(question)
    found = [t for t in content_terms(query) if t in sidx.corpus_norm]
    topic = max(found, key=len) if found else ""
    reason = f"coverage {cov:.2f}, dense {dense:.3f}"
    meta_person = kind == "person" and not content_terms(question) and bool(_META.search(question))
    if kind and not meta_person:  # the byline names the speaker of the speech itself
        ranked = rank_units(sidx, query, hits)[:3]
        if topic and kind == "person":
            ranked = [s for s in ranked if topic in s.unit.norm]  # the person must be named with the topic
        if not any(has_evidence(kind, s.unit.text, question) for s in ranked):
            score *= 0.35
            reason += f"; asks for {kind}, none in the passages"
    if missing and kind:
        score *= 0.6  # asks for an attribute the corpus never mentions (利率, 主任, 截止…)
    answerable = score >= settings.answerable_threshold
    if topical == 0:
        reason += "; off-topic"
    return Answerability(answerable, float(score), reason + (f"; missing {missing}" if missing else ""), kind, topic,
                         off_topic=topical == 0)


def refusal(sidx: SentenceIndex, question: str, query: str, hits: list[Hit], script: str,
            verdict: Answerability) -> Draft:
    """A plain 'the document does not say', with the related passages it does have."""
    ph = phrases()[script]
    if verdict.off_topic or not hits:
        return Draft(ph["off_topic"], (), refused=True)
    ranked = rank_units(sidx, query, hits)
    cits = _citations(ranked[:1])
    topic_zh = verdict.topic
    detail = attribute(question)
    if script == "en":
        topic = english_name(t2s(query)) or ph["topic_default"]
        detail_en = {"quantity": "figures", "time": "dates", "person": "names", "named": "names",
                     "procedure": "procedure"}.get(verdict.asks_for, "")
        lead = ph["not_covered_kind"].format(kind=detail_en, topic=topic) if detail_en else ph["not_covered"]
        return Draft(f"{lead}\n{_join_quotes(cits, script)}", cits, refused=True)
    topic = display(topic_zh, script) if topic_zh else ""
    if topic and detail:
        lead = ph["not_covered_detail"].format(topic=topic, detail=display(detail, script))
    elif topic and verdict.asks_for:
        lead = ph["not_covered_kind"].format(topic=topic, kind=ph["kinds"][verdict.asks_for])
    else:
        lead = ph["not_covered"]
    return Draft(lead + _join_quotes(cits, script), cits, refused=True)
