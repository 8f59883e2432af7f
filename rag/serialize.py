"""Answer → the JSON schema shared by `rag ask --json`, `rag batch`, the HTTP API and the evaluation."""
from __future__ import annotations

from typing import Any, Mapping

from .types import Answer, Citation, Hit


def hit_to_dict(hit: Hit) -> dict[str, Any]:
    c = hit.chunk
    return {"rank": hit.rank, "chunk_id": c.id, "doc_id": c.doc_id, "paragraph": c.paragraph, "start": c.start,
            "end": c.end, "text": c.text, "heading": c.heading, "score": round(float(hit.score), 6),
            "scores": {k: round(float(v), 6) for k, v in hit.scores.items()}}


def citation_to_dict(cit: Citation, documents: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A citation as JSON; with `documents` ({id: {"title", "kind", "date", "section"}}), where it comes from."""
    c = cit.chunk
    out = {"n": cit.n, "chunk_id": c.id, "doc_id": c.doc_id, "paragraph": c.paragraph, "start": cit.start,
           "end": cit.end, "text": c.text, "quote": cit.quote, "chunk_start": c.start, "chunk_end": c.end,
           "document": cit.document, "section": cit.section}
    if documents and c.doc_id in documents:
        out["document"] = documents[c.doc_id]
    return out


def answer_to_dict(answer: Answer, id: str | None = None) -> dict[str, Any]:
    """The full answer JSON; extra keys (script, notice, answerability) come after the schema's own."""
    out: dict[str, Any] = {
        "id": id,
        "question": answer.question,
        "answer": answer.text,
        "refused": answer.refused,
        "citations": [citation_to_dict(c) for c in answer.citations],
        "hits": [hit_to_dict(h) for h in answer.hits],
        "engine": answer.engine,
        "embedder": answer.embedder,
        "timings_ms": {k: round(float(v), 3) for k, v in answer.timings_ms.items()},
        "script": answer.script,
        "notice": answer.notice,
        "retrieval_query": answer.retrieval_query,
        "verification": answer.verification,
    }
    a = answer.answerability
    out["answerability"] = None if a is None else {"answerable": a.answerable, "score": round(a.score, 4),
                                                   "reason": a.reason, "asks_for": a.asks_for, "topic": a.topic,
                                                   "off_topic": a.off_topic}
    return out
