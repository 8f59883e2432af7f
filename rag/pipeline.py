"""The one entry point the app, CLI and evaluation call: `Pipeline.from_settings(settings).ask(q, history)`."""
from __future__ import annotations

import functools
import logging
import re
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from .answer import Draft, ExtractiveEngine, assess, phrases, refusal
from .embeddings import Embedder, resolve_embedder
from .errors import IndexCorruptError, IndexMissingError, IndexStaleError, InputError
from .llm import make_backend
from .llm_engine import LLMEngine
from .retrieve import CrossEncoderReranker, Retriever, merge_hits
from .settings import Settings
from .query import is_follow_up, retrieval_query, strip_injection, sub_questions
from .store import LoadedIndex, build_index, load_index
from .text import detect_script
from .types import Answer, Answerability, Citation

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
    """The embedder with a small cache of query vectors: retrieval and sentence scoring embed the same query."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder
        self.embed_query = functools.lru_cache(maxsize=512)(embedder.embed_query)

    def embed_documents(self, texts):
        return self._embedder.embed_documents(texts)


class PassageEngine:
    """The simple baseline every evaluation is compared with: quote the top retrieved passage, never refuse."""

    name = "passage"

    def answer(self, question, query, hits, script, history) -> Draft:
        if not hits:
            return Draft("", (), engine=self.name)
        c = hits[0].chunk
        return Draft(c.text, (Citation(1, c, c.text, c.start, c.end),), engine=self.name)


@dataclass(frozen=True)
class StreamEvent:
    """One step of a streamed answer: text to append, and on the last event the complete Answer."""

    delta: str = ""
    answer: Answer | None = None


@dataclass(frozen=True)
class _Prepared:
    """A question made ready for an engine: what retrieval found and whether it can be answered."""

    original: str
    question: str
    turns: list
    script: str
    query: str
    hits: list
    verdict: Answerability
    t0: float
    t1: float


class Pipeline:
    """Retrieval plus an answer engine over one index; safe to share between threads."""

    def __init__(self, settings: Settings, embedder: Embedder, index: LoadedIndex, reranker=None) -> None:
        self.settings = settings
        self.embedder = embedder
        self.index = index
        cached = _CachedQueries(embedder)
        self.retriever = Retriever(index, cached, settings, reranker)
        self.extractive = ExtractiveEngine(index, settings, cached)
        backend = make_backend(settings)
        if settings.answer_engine == "passage":
            self.engine = PassageEngine()
        else:
            self.engine = self.extractive if backend is None else LLMEngine(backend, self.extractive, settings)

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
               k: int | None = None) -> Iterator[StreamEvent]:
        """Answer one question as a stream of text deltas; the last event carries the full Answer, whose
        text is authoritative (an LLM answer that fails verification is replaced by the extractive one)."""
        prepared = self._prepare(question, history, script, k)
        if isinstance(prepared, Answer) or not hasattr(self.engine, "stream") or not prepared.verdict.answerable:
            answer = prepared if isinstance(prepared, Answer) else self._finish(prepared)
            if answer.text:
                yield StreamEvent(delta=answer.text)
            yield StreamEvent(answer=answer)
            return
        draft = None
        for piece in self.engine.stream(prepared.question, prepared.query, prepared.hits, prepared.script, prepared.turns):
            if isinstance(piece, str):
                yield StreamEvent(delta=piece)
            else:
                draft = piece
        yield StreamEvent(answer=self._finish(prepared, draft))

    def ask(self, question: str, history: History | None = None, *, script: str = "auto",
            k: int | None = None) -> Answer:
        """Answer one question (with optional conversation history); `script`: auto | hans | hant."""
        prepared = self._prepare(question, history, script, k)
        return prepared if isinstance(prepared, Answer) else self._finish(prepared)

    def _prepare(self, question, history, script, k) -> "Answer | _Prepared":
        """Validate, strip injections, resolve follow-ups, retrieve and assess answerability."""
        t0 = time.perf_counter()
        q = clean_question(question, self.settings.max_question_chars)
        turns = clean_history(history, self.settings.max_history_turns, self.settings.max_question_chars)
        asked_script = detect_script(q)
        want = script if script in ("hans", "hant") else self.settings.script
        out_script = want if want in ("hans", "hant") and asked_script != "en" else asked_script
        injection = strip_injection(q)
        if injection.only:
            t1 = time.perf_counter()
            verdict = Answerability(False, 0.0, "request to change the rules or invent facts", "", "")
            draft = Draft(phrases()[out_script]["injection"], (), refused=True)
            return self._answer(q, draft, (), verdict, out_script, q, t0, t1, t1)
        effective = injection.question or q
        query = None
        vocabulary = self.extractive.sidx.corpus_norm
        if (turns and self.settings.condense_with_llm and hasattr(self.engine, "condense")
                and is_follow_up(effective, turns, vocabulary)):
            standalone = self.engine.condense(effective, turns)
            if standalone:
                query = retrieval_query(standalone, [], vocabulary)
        query = query or retrieval_query(effective, turns, vocabulary)
        hits = self.retriever.retrieve(query, k or self.settings.top_k)
        for sub in sub_questions(effective):  # "A和B分别…": each part gets its own passages too
            hits = merge_hits(hits, self.retriever.retrieve(retrieval_query(sub, [], vocabulary), 2))
        verdict = assess(self.extractive.sidx, effective, query, hits, self.settings)
        return _Prepared(q, effective, turns, out_script, query, hits, verdict, t0, time.perf_counter())

    def _finish(self, p: "_Prepared", draft=None) -> Answer:
        if draft is None:
            if p.verdict.answerable or isinstance(self.engine, PassageEngine):
                draft = self.engine.answer(p.question, p.query, p.hits, p.script, p.turns)
            else:
                draft = refusal(self.extractive.sidx, p.question, p.query, p.hits, p.script, p.verdict)
        return self._answer(p.original, draft, tuple(p.hits), p.verdict, p.script, p.query, p.t0, p.t1,
                            time.perf_counter())

    def _answer(self, q, draft, hits, verdict, script, query, t0, t1, t2) -> Answer:
        notice = "; ".join(n for n in (draft.notice, self.embedder.notice) if n)
        return Answer(question=q, text=draft.text, refused=draft.refused, citations=draft.citations, hits=hits,
                      engine=draft.engine, embedder=self.embedder.name,
                      timings_ms={"retrieve": (t1 - t0) * 1e3, "answer": (t2 - t1) * 1e3,
                                  "total": (time.perf_counter() - t0) * 1e3},
                      script=script, notice=notice, answerability=verdict, retrieval_query=query)
