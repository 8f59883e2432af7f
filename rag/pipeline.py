"""The one entry point the app, CLI and evaluation call: `Pipeline.from_settings(settings).ask(q, history)`."""
from __future__ import annotations

import functools
import logging
import re
import time
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Sequence

from . import answerability, conversation, select
from .answer import Evidence, ExtractiveEngine
from .compose import Draft
from .embeddings import Embedder, resolve_embedder
from .errors import IndexCorruptError, IndexMissingError, IndexStaleError, InputError
from .lexicon import Lexicon
from .llm import make_backend
from .llm_engine import LLMEngine
from .question import Question, analyse
from .retrieve import CrossEncoderReranker, Retriever, merge_hits
from .settings import Settings
from .store import LoadedIndex, build_index, load_index
from .structure import Structure
from .types import Answer, Answerability, Citation, Hit
from .units import UnitIndex

log = logging.getLogger(__name__)
History = Sequence[Sequence[str]]
# control, zero-width and direction characters, and lone surrogates (which no encoder accepts)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")


def clean_question(question: object, max_chars: int) -> str:
    """Strip control and bidi characters and surrounding space; reject empty or over-long questions."""
    if not isinstance(question, str):
        raise InputError(f"the question must be text, not {type(question).__name__}")
    text = _CONTROL.sub("", question).replace("\n", " ").strip()
    if not text:
        raise InputError("the question is empty; type a question about the document (问题不能为空)")
    if len(text) > max_chars:
        raise InputError(
            f"the question has {len(text)} characters; the limit is {max_chars}. Ask about one point at a time "
            f"(问题过长：{len(text)} 字，上限 {max_chars} 字)"
        )
    return text


def clean_history(history: History | None, max_turns: int, max_chars: int) -> list[tuple[str, str]]:
    """The last `max_turns` well-formed [user, assistant] pairs, control characters stripped."""
    if history is not None and not isinstance(history, (list, tuple)):
        raise InputError("history must be a list of [user, assistant] pairs")
    out = []
    for turn in list(history or [])[-max_turns:] if max_turns else []:
        if not isinstance(turn, (list, tuple)) or len(turn) != 2:
            raise InputError("history must be a list of [user, assistant] pairs")
        user, bot = (_CONTROL.sub("", t if isinstance(t, str) else "")[: max_chars * 4] for t in turn)
        out.append((user, bot))
    return out


class _CachedQueries:
    """The embedder with a small cache of query vectors: retrieval and candidate scoring embed the same query."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder
        self.embed_query = functools.lru_cache(maxsize=512)(embedder.embed_query)

    def embed_documents(self, texts):
        return self._embedder.embed_documents(texts)


class PassageEngine:
    """The simple baseline every evaluation is compared with: quote the top retrieved passage, never refuse."""

    name = "passage"

    def answer(self, ev: Evidence) -> Draft:
        if not ev.hits:
            return Draft("", (), engine=self.name)
        c = ev.hits[0].chunk
        return Draft(c.text, (Citation(1, c, c.text, c.start, c.end),), engine=self.name)


@dataclass(frozen=True)
class StreamEvent:
    """One step of a streamed answer: text to append (`delta`), the quoted answer shown at once while an LLM
    composes (`quoted`), and on the last event the complete, authoritative Answer (`answer`)."""

    delta: str = ""
    answer: Answer | None = None
    quoted: Answer | None = None


@dataclass(frozen=True)
class Prepared:
    """A question made ready for an engine: its analysis, what retrieval and selection found, the verdict."""

    evidence: Evidence
    verdict: Answerability
    t0: float
    t1: float

    @property
    def question(self) -> Question:
        return self.evidence.question


class Pipeline:
    """Retrieval, fitted selection and answerability, and an answer engine over one index; thread-safe."""

    def __init__(self, settings: Settings, embedder: Embedder, index: LoadedIndex, reranker=None) -> None:
        self.settings = settings
        self.embedder = embedder
        self.index = index
        cached = _CachedQueries(embedder)
        self.queries = cached
        self.retriever = Retriever(index, cached, settings, reranker)
        self.lexicon = Lexicon(index.domain, list(index.documents.values()))
        self.units = UnitIndex(index, settings.max_clause_chars, cached)
        self.structure = Structure(index.outline, self.units, index.domain)
        self.extractive = ExtractiveEngine(self.units, self.lexicon, self.structure, settings)
        backend = make_backend(settings)
        if settings.answer_engine == "passage":
            self.engine = PassageEngine()
        else:
            self.engine = self.extractive if backend is None else LLMEngine(backend, self.extractive, settings,
                                                                            embedder=cached)

    @classmethod
    def from_settings(cls, settings: Settings, *, rebuild: str = "auto",
                      progress: Callable[[str], None] | None = None) -> "Pipeline":
        """Resolve the embedder and load the index; `rebuild`: auto (missing/stale/corrupt → build), never, always."""
        embedder = resolve_embedder(settings)
        if rebuild == "always":
            build_index(settings, embedder, progress)
        try:
            index = load_index(settings, embedder.name)
        except (IndexMissingError, IndexStaleError, IndexCorruptError) as exc:
            if rebuild != "auto":
                raise
            (progress or log.warning)(f"{exc} — rebuilding now")
            build_index(settings, embedder, progress)
            index = load_index(settings, embedder.name)
        reranker = CrossEncoderReranker(settings.reranker_model, settings.embedding_device) if settings.reranker_model else None
        return cls(settings, embedder, index, reranker)

    def stream(self, question: str, history: History | None = None, *, script: str = "auto",
               k: int | None = None, doc_ids: Sequence[str] | None = None) -> Iterator[StreamEvent]:
        """Answer one question as a stream. With an LLM: first the quoted (extractive) answer at once
        (`quoted`), then each claim of the LLM's answer once it passes verification (`delta`), then the authoritative
        Answer (`answer`: the verified LLM answer, or the quoted one when verification or the model fails).
        Without one: the answer's text as one delta, then the Answer."""
        prepared = self.prepare(question, history, script, k, doc_ids)
        if isinstance(prepared, Answer) or not isinstance(self.engine, LLMEngine) or not prepared.verdict.answerable:
            answer = prepared if isinstance(prepared, Answer) else self._finish(prepared)
            if answer.text:
                yield StreamEvent(delta=answer.text)
            yield StreamEvent(answer=answer)
            return
        quoted = self.extractive.answer(prepared.evidence)
        yield StreamEvent(quoted=self._answer(prepared.evidence, quoted, prepared.verdict, prepared.t0, prepared.t1))
        draft = None
        for piece in self.engine.stream(prepared.evidence, quoted):
            if isinstance(piece, str):
                yield StreamEvent(delta=piece)
            else:
                draft = piece
        yield StreamEvent(answer=self._finish(prepared, draft))

    def ask(self, question: str, history: History | None = None, *, script: str = "auto",
            k: int | None = None, doc_ids: Sequence[str] | None = None) -> Answer:
        """Answer one question (with optional conversation history); `script`: auto | hans | hant; `doc_ids`:
        answer from these documents only."""
        prepared = self.prepare(question, history, script, k, doc_ids)
        return prepared if isinstance(prepared, Answer) else self._finish(prepared)

    def analyse(self, question: str, history: History | None = None, script: str = "auto") -> Question:
        """The validated question, analysed once, with the script the answer will be written in."""
        text = clean_question(question, self.settings.max_question_chars)
        turns = clean_history(history, self.settings.max_history_turns, self.settings.max_question_chars)
        state = conversation.rebuild(turns, self.units, self.index.outline, self.lexicon) if turns else None
        q = analyse(text, turns, self.lexicon, state=state)
        want = script if script in ("hans", "hant") else self.settings.script
        return replace(q, script=want) if want in ("hans", "hant") and q.script != "en" else q

    def condense(self, q: Question) -> Question:
        """A follow-up the conversation's state cannot resolve (it refers back and the state carries no topic),
        rewritten by the LLM as a standalone question and analysed in its place; the asker's own words, script and
        conversation are kept. Without an LLM, or when the rewrite brings words from outside the conversation,
        the question stands as analysed."""
        if not isinstance(self.engine, LLMEngine) or not (q.refers_back and q.history) or q.context or q.topic_span:
            return q
        text = self.engine.condense(q.text, list(q.history), q.state)
        if not text:
            return q
        rewritten = analyse(text, (), self.lexicon)
        return replace(rewritten, raw=q.raw, script=q.script, history=q.history, state=q.state)

    def rank(self, q: Question, hits: list[Hit]) -> list[select.Candidate]:
        """The units of the first passages, scored by the fitted model, best first."""
        vector = self.queries.embed_query(q.query) if q.query else None
        cands = select.candidates(q, hits, self.units, vector, self.settings.candidate_passages)
        return select.score(cands, select.scorer())

    def retrieve(self, q: Question, k: int, doc_ids: Sequence[str] | None = None) -> list[Hit]:
        """The passages for a question (and for each of its parts), from the given documents, else from those the
        question names, else from all."""
        docs = list(doc_ids) if doc_ids else (list(q.documents) or None)
        hits = self.retriever.retrieve(q.query, max(k, self.settings.candidate_passages), docs)
        for part in q.parts:
            hits = merge_hits(hits, self.retriever.retrieve(part.query, 2, docs))
        return hits

    def prepare(self, question, history=None, script: str = "auto", k: int | None = None,
                doc_ids: Sequence[str] | None = None) -> "Answer | Prepared":
        """Validate and analyse, retrieve, score the candidates, decide whether the passages answer."""
        t0 = time.perf_counter()
        q = self.condense(self.analyse(question, history, script))
        k = k or self.settings.top_k
        doc_ids = self.check_documents(doc_ids)
        if isinstance(self.engine, PassageEngine):  # the baseline: the raw question's top passage, whatever it asks
            hits = self.retriever.retrieve(q.raw, k, doc_ids)
            ev = Evidence(q, (), (), tuple(hits))
            return self._answer(ev, self.engine.answer(ev), Answerability(True, 1.0, "passage baseline"), t0,
                                time.perf_counter())
        if q.injection_only:
            draft = self.extractive.injection(q)
            hits = self.retriever.retrieve(q.raw, k, doc_ids)  # shown nowhere, but what a baseline would quote
            verdict = Answerability(False, 0.0, "request to change the rules or invent facts")
            return self._answer(Evidence(q, (), (), tuple(hits)), draft, verdict, t0, time.perf_counter())
        hits = self.retrieve(q, k, doc_ids)
        ranked = self.rank(q, hits)
        parts = tuple(tuple(self.rank(p, hits)) for p in q.parts)
        resolved = self.extractive.resolve(Evidence(q, tuple(ranked), parts, tuple(hits[:k])))
        if resolved is not None:
            verdict = Answerability(True, 1.0, "answered from the document's structure or the conversation")
            ev = Evidence(q, tuple(ranked), parts, tuple(hits[:k]))
            return self._answer(ev, resolved, verdict, t0, time.perf_counter())
        verdict = answerability.decide(q, ranked, hits, self.units, self.lexicon, answerability.model(),
                                       self.settings.answerable_threshold)
        ev = Evidence(q, tuple(ranked), parts, tuple(hits[:k]))
        return Prepared(ev, verdict, t0, time.perf_counter())

    def check_documents(self, doc_ids: Sequence[str] | None) -> list[str] | None:
        """The requested documents, checked: InputError naming the unknown ids and the known ones."""
        if not doc_ids:
            return None
        if isinstance(doc_ids, str) or not all(isinstance(d, str) for d in doc_ids):
            raise InputError("doc_ids must be a list of document ids")
        unknown = [d for d in doc_ids if d not in self.index.documents]
        if unknown:
            known = ", ".join(sorted(self.index.documents)[:10])
            raise InputError(f"unknown document ids {unknown}; known: {known}{' …' if len(self.index.documents) > 10 else ''}")
        return list(dict.fromkeys(doc_ids))

    def _finish(self, p: Prepared, draft: Draft | None = None) -> Answer:
        if draft is None:
            if p.verdict.answerable:
                draft = self.engine.answer(p.evidence)
            else:
                draft = self.extractive.refuse(p.evidence, p.verdict)
        return self._answer(p.evidence, draft, p.verdict, p.t0, p.t1)

    def _answer(self, ev: Evidence, draft: Draft, verdict: Answerability, t0: float, t1: float) -> Answer:
        t2 = time.perf_counter()
        notice = "; ".join(n for n in (draft.notice, self.embedder.notice) if n)
        cits = tuple(self.structure.source(c) for c in draft.citations)
        return Answer(question=ev.question.raw, text=draft.text, refused=draft.refused, citations=cits,
                      verification=draft.verification,
                      hits=ev.hits, engine=draft.engine, embedder=self.embedder.name,
                      timings_ms={"retrieve": (t1 - t0) * 1e3, "answer": (t2 - t1) * 1e3, "total": (t2 - t0) * 1e3},
                      script=ev.question.script, notice=notice, answerability=verdict,
                      retrieval_query=ev.question.query)
