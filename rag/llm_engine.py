"""Answers written by an LLM (rag.llm backends), verified against the passages, with the extractive answer as
the fallback for anything unverifiable: no valid citation, an unsupported sentence, an invented number or name,
an endpoint that is down, slow or returns garbage."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Iterator

from .answer import Evidence, ExtractiveEngine
from .compose import Draft, display, doc_names
from .domain import Domain
from .units import bigrams as _bigrams
from .errors import LLMError, RagError
from .prompts import render
from .settings import Settings
from .text import CJK, normalize
from .types import Citation, Hit

log = logging.getLogger(__name__)
LANGUAGE = {"hans": "简体中文", "hant": "繁體中文", "en": "English (quote the Chinese passages you rely on, in Chinese)"}
_MARKER = re.compile(r"\[(\d{1,3})\]")
_NOT_COVERED = re.compile(r"没有提到|沒有提到|未提及|没有提及|沒有提及|没有涉及|沒有涉及|没有说明|沒有說明|没有给出|沒有給出|"
                          r"does not (say|mention|state|specify|give|cover)|doesn't (say|mention)|not (mentioned|stated|covered)", re.I)
_NUMBER = re.compile(r"[0-9０-９]+(?:[.,][0-9]+)*\s*(?:%|％|亿|万|元|个|家|所|项|倍|周年|年|月|日|号)?|百分之[一二三四五六七八九十]+")
_QUOTED = re.compile(r"[“「『\"《]([^”」』\"》]{2,30})[”」』\"》]")


@dataclass(frozen=True)
class Verdict:
    """The outcome of verifying an LLM answer."""

    ok: bool
    reason: str
    text: str = ""
    citations: tuple[Citation, ...] = ()
    refused: bool = False


def passages_block(hits: list[Hit], script: str) -> str:
    """The numbered passages the prompt shows, in the asker's script."""
    return "\n".join(f"[{i}] {display(h.chunk.text, script)}" for i, h in enumerate(hits, start=1))


def messages_for(question: str, hits: list[Hit], script: str, domain: Domain) -> list[dict[str, str]]:
    """System + user messages of the grounded-answer prompt; the document is named by its metadata."""
    meta = domain.meta(hits[0].chunk.doc_id if hits else None)
    names = doc_names(meta, "hans", False)
    system = render("answer_system", language=LANGUAGE[script], scope=names["scope"], doc=names["doc"],
                    doc_en=meta.kind_en)
    return [{"role": "system", "content": system},
            {"role": "user", "content": render("answer_user", passages=passages_block(hits, script), question=question)}]


def _support(sentence: str, passage: str, script: str) -> float:
    """Share of the sentence's Chinese bigrams found in the passage (English: of its Chinese runs)."""
    body = normalize(_MARKER.sub("", sentence))
    ptext = normalize(passage)
    if script == "en":
        runs = re.findall(f"[{CJK}]{{2,}}", body)
        return 1.0 if not runs else sum(r in ptext for r in runs) / len(runs)
    grams = [g for g in _bigrams(body) if re.match(f"[{CJK}]", g)]
    if not grams:
        return 1.0
    have = set(_bigrams(ptext))
    return sum(g in have for g in grams) / len(grams)


def _best_unit(engine: ExtractiveEngine, hit: Hit, sentence: str):
    rows = engine.uidx.within(hit.chunk)
    if not rows:
        return None
    grams = set(_bigrams(normalize(_MARKER.sub("", sentence))))
    units = [engine.uidx.units[i] for i in rows]
    return max(units, key=lambda u: (len(grams & set(_bigrams(u.norm))), -u.start))


def verify(text: str, hits: list[Hit], engine: ExtractiveEngine, settings: Settings, script: str) -> Verdict:
    """Check an LLM answer against its passages; renumber its citations 1..n in order of first use."""
    text = (text or "").strip()
    if not text or len(text) > 4000 or not re.search(f"[{CJK}A-Za-z]", text):
        return Verdict(False, "empty or unreadable answer")
    allowed = normalize(" ".join(h.chunk.text for h in hits))
    for number in _NUMBER.findall(_MARKER.sub(" ", text)):
        n = normalize(number)
        if n and n not in allowed:
            return Verdict(False, f"states {number.strip()!r}, which no passage contains")
    for quoted in _QUOTED.findall(text):
        if normalize(quoted) not in allowed and re.search(f"[{CJK}]", quoted):
            return Verdict(False, f"quotes “{quoted}”, which no passage contains")
    sentences = [s for s in re.split(r"(?<=[。！？!?；;\n])|(?<=\.)\s+", text) if s.strip()]
    order: dict[int, int] = {}
    citations: list[Citation] = []
    for sentence in sentences:
        for m in _MARKER.finditer(sentence):
            k = int(m.group(1))
            if not 1 <= k <= len(hits):
                log.warning("dropped out-of-range citation [%d] (passages: %d)", k, len(hits))
                continue
            said_not = bool(_NOT_COVERED.search(sentence))  # "the speech does not say X; it only says …[k]"
            if not said_not and _support(sentence, hits[k - 1].chunk.text, script) < settings.support_threshold:
                return Verdict(False, f"sentence citing [{k}] is not supported by that passage")
            if k not in order:
                unit = _best_unit(engine, hits[k - 1], sentence)
                if unit is None:
                    continue
                order[k] = len(order) + 1
                citations.append(Citation(order[k], hits[k - 1].chunk, unit.text, unit.start, unit.end))

    def renumber(m: re.Match) -> str:
        k = int(m.group(1))
        return f"[{order[k]}]" if k in order else ""

    cleaned = _MARKER.sub(renumber, text).strip()
    refused = bool(_NOT_COVERED.search(cleaned))
    if not citations and not refused:
        return Verdict(False, "no valid citation")
    return Verdict(True, "verified", cleaned, tuple(citations), refused)


class LLMEngine:
    """An LLM backend behind the answer-engine protocol, verified, falling back to the extractive engine."""

    def __init__(self, backend, extractive: ExtractiveEngine, settings: Settings) -> None:
        self.backend = backend
        self.extractive = extractive
        self.settings = settings
        self.name = backend.name

    def answer(self, ev: Evidence) -> Draft:
        q, hits = ev.question, list(ev.hits)
        try:
            raw = self.backend.complete(messages_for(q.text, hits, q.script, self.extractive.domain))
        except (LLMError, RagError) as exc:
            return self._fallback(ev, f"LLM unavailable: {exc}")
        return self.finish(raw, ev)

    def stream(self, ev: Evidence) -> Iterator[str | Draft]:
        """Yields text pieces as the LLM writes them, then the verified Draft (or the extractive fallback)."""
        pieces: list[str] = []
        try:
            for piece in self.backend.stream(messages_for(ev.question.text, list(ev.hits), ev.question.script,
                                                         self.extractive.domain)):
                pieces.append(piece)
                yield piece
        except (LLMError, RagError) as exc:
            yield self._fallback(ev, f"LLM unavailable: {exc}")
            return
        yield self.finish("".join(pieces), ev)

    def finish(self, raw: str, ev: Evidence) -> Draft:
        verdict = verify(raw, list(ev.hits), self.extractive, self.settings, ev.question.script)
        if not verdict.ok:
            return self._fallback(ev, f"LLM answer rejected: {verdict.reason}")
        return Draft(verdict.text, verdict.citations, refused=verdict.refused, engine=self.name)

    def _fallback(self, ev: Evidence, reason: str) -> Draft:
        log.warning("%s; using the extractive answer", reason)
        draft = self.extractive.answer(ev)
        return Draft(draft.text, draft.citations, draft.refused, engine=f"extractive (fallback from {self.name})",
                     notice=reason)

    def condense(self, question: str, history: list[tuple[str, str]]) -> str | None:
        """A standalone rewrite of a follow-up question, or None when the LLM fails."""
        convo = "\n".join(f"用户：{u}\n助手：{a}" for u, a in history[-3:])
        try:
            out = self.backend.complete([{"role": "user", "content": render("condense", history=convo, question=question)}])
        except (LLMError, RagError) as exc:
            log.warning("condense failed (%s); using the heuristic merge", exc)
            return None
        out = (out or "").strip().splitlines()[0].strip() if (out or "").strip() else ""
        return out if 2 <= len(out) <= 300 else None
