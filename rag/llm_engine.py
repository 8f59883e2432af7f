"""Answers composed by an LLM (rag.llm backends) from the evidence the fitted selection chose, verified claim by
claim (rag.verify), with the extractive answer as the fallback: an endpoint that is down, slow or returns garbage,
an answer with no supported claim, a figure or quotation its evidence does not hold, a "not covered" for a question
judged answerable. The LLM never decides on its own that the document is silent: answerability does."""
from __future__ import annotations

import functools
import logging
import re
from typing import Iterator

import numpy as np

from .answer import Evidence, ExtractiveEngine
from .compose import Draft, display, doc_names
from .conversation import State
from .errors import LLMError, RagError
from .prompts import render
from .question import STOP
from .settings import Settings
from .text import normalize
from .types import Citation
from .verify import Thresholds, complete_part, content_words, coverage, load_thresholds, verify

log = logging.getLogger(__name__)
LANGUAGE = {"hans": "简体中文", "hant": "繁體中文", "en": "English (keep the Chinese names of things in parentheses)"}
_MARKER = re.compile(r"\[(\d{1,3})\]")


def messages_for(question: str, cits: tuple[Citation, ...], script: str, domain) -> list[dict[str, str]]:
    """System + user messages: the numbered evidence (in the asker's script) and the question."""
    meta = domain.meta(cits[0].chunk.doc_id if cits else None)
    names = doc_names(meta, "hans", False)
    system = render("answer_system", language=LANGUAGE[script], scope=names["scope"], doc=names["doc"],
                    doc_en=meta.kind_en)
    passages = "\n".join(f"[{c.n}] {display(c.quote, 'hans' if script == 'en' else script)}" for c in cits)
    return [{"role": "system", "content": system},
            {"role": "user", "content": render("answer_user", passages=passages, question=question)}]


class LLMEngine:
    """An LLM backend behind the answer-engine protocol: composes from the chosen evidence, verified."""

    def __init__(self, backend, extractive: ExtractiveEngine, settings: Settings, embedder=None,
                 thresholds: Thresholds | None = None) -> None:
        self.backend = backend
        self.extractive = extractive
        self.settings = settings
        self.embedder = embedder
        self._thresholds = thresholds
        self.name = backend.name

    @property
    def thresholds(self) -> Thresholds:
        if self._thresholds is None:
            self._thresholds = load_thresholds()
        return self._thresholds

    def support(self, english: bool):
        """How well a passage supports a claim: Chinese content-word coverage, or (English) the embedder's cosine;
        memoised, since a streamed answer is verified again as each claim arrives."""
        if english and self.embedder is not None:
            def cosine(claim: str, passage: str) -> float:
                a = np.asarray(self.embedder.embed_query(claim))
                b = np.asarray(self.embedder.embed_documents([passage])[0])
                return float(a @ b)
            return functools.lru_cache(maxsize=256)(cosine)
        segment = self.extractive.lexicon.segment
        return functools.lru_cache(maxsize=256)(lambda claim, passage: coverage(claim, passage, segment, STOP))

    def answer(self, ev: Evidence) -> Draft:
        quoted = self.extractive.answer(ev)  # its units are the evidence the model composes from
        if not quoted.citations:
            return self._fallback(quoted, "no evidence to compose from")
        try:
            raw = self.backend.complete(messages_for(ev.question.text, quoted.citations, ev.question.script,
                                                     self.extractive.domain))
        except (LLMError, RagError) as exc:
            return self._fallback(quoted, f"LLM unavailable: {exc}")
        return self.finish(raw, ev, quoted)

    def stream(self, ev: Evidence, quoted: Draft | None = None) -> Iterator[str | Draft]:
        """Verified text pieces as the LLM writes them (each complete claim once it passes verification, in the
        model's numbering), then the verified Draft (renumbered: it replaces what was streamed) or the fallback.
        `quoted`: the extractive answer already made for this evidence (its units are what the model sees)."""
        quoted = quoted or self.extractive.answer(ev)
        cits = quoted.citations
        if not cits:
            yield self._fallback(quoted, "no evidence to compose from")
            return
        raw, shown, support = "", "", self.support(ev.question.script == "en")
        try:
            for piece in self.backend.stream(messages_for(ev.question.text, cits, ev.question.script,
                                                         self.extractive.domain)):
                raw += piece
                done = complete_part(raw)
                if len(done) > len(shown):
                    text, verification = self._verify(done, ev, cits, support)
                    if verification.outcome == "accepted" and text.startswith(shown) and len(text) > len(shown):
                        yield text[len(shown):]
                        shown = text
        except (LLMError, RagError) as exc:
            yield self._fallback(quoted, f"LLM unavailable: {exc}")
            return
        yield self.finish(raw, ev, quoted, support)

    def known(self, cits: tuple[Citation, ...]) -> str:
        """What an answer may name beyond its evidence: the cited documents' titles and bylines."""
        metas = [self.extractive.domain.meta(c.chunk.doc_id) for c in cits]
        return " ".join(f"{m.title} {m.speaker} {m.role} {m.place}" for m in {m.doc_id: m for m in metas}.values())

    def _verify(self, raw: str, ev: Evidence, cits: tuple[Citation, ...], support):
        q = ev.question
        return verify(raw, [c.quote for c in cits], question_norm=q.norm, english=q.script == "en", answerable=True,
                      support=support, thresholds=self.thresholds,
                      segment=self.extractive.lexicon.segment, stop=STOP, known=self.known(cits))

    def finish(self, raw: str, ev: Evidence, quoted: Draft, support=None) -> Draft:
        """The verified answer, its citations renumbered in order of use, or the extractive answer `quoted`."""
        cits = quoted.citations
        text, verification = self._verify(raw, ev, cits, support or self.support(ev.question.script == "en"))
        if verification.outcome != "accepted":
            return self._fallback(quoted, f"LLM answer rejected: {verification.reason}", verification.to_json())
        order: dict[int, int] = {}
        for k in (int(m) for m in _MARKER.findall(text)):
            if 1 <= k <= len(cits) and k not in order:
                order[k] = len(order) + 1
        renumbered = _MARKER.sub(lambda m: f"[{order[int(m.group(1))]}]" if int(m.group(1)) in order else "", text)
        used = tuple(Citation(order[k], cits[k - 1].chunk, cits[k - 1].quote, cits[k - 1].start, cits[k - 1].end)
                     for k in sorted(order, key=order.get))
        return Draft(renumbered.strip(), used, engine=self.name, verification=verification.to_json())

    def _fallback(self, quoted: Draft, reason: str, verification: dict | None = None) -> Draft:
        log.warning("%s; using the extractive answer", reason)
        return Draft(quoted.text, quoted.citations, quoted.refused, engine=f"extractive (fallback from {self.name})",
                     notice=reason, verification=verification or {"outcome": "fallback", "reason": reason,
                                                                  "claims": []})

    def condense(self, question: str, history: list[tuple[str, str]], state: State | None = None) -> str | None:
        """A standalone rewrite of a follow-up, given the conversation's state; kept only when every content word
        of it comes from the question or the conversation (else None: the state's own resolution stands)."""
        convo = "\n".join(f"用户：{u}\n助手：{a}" for u, a in history[-3:])
        topic = "、".join(state.topic) if state is not None and state.topic else "（无）"
        try:
            out = self.backend.complete([{"role": "user", "content": render(
                "condense", history=convo, question=question, topic=topic)}])
        except (LLMError, RagError) as exc:
            log.warning("condense failed (%s); the conversation's state resolves the follow-up", exc)
            return None
        out = (out or "").strip().splitlines()[0].strip() if (out or "").strip() else ""
        if not 2 <= len(out) <= 300:
            return None
        said = normalize(question + " " + convo)
        return out if all(w in said for w in content_words(out, self.extractive.lexicon.segment, STOP)) else None
