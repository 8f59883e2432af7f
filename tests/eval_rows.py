"""Hand-made evaluation result rows (the shape eval.run writes), for the metric, compare and calibrate tests."""
from __future__ import annotations

from typing import Any, Sequence


def make_row(id: str, *, question: str = "温州的科技政策是什么？", answerable: bool = True, category: str = "fact",
             gold: Sequence[str] = (), must_include: Sequence[str] = (), must_not: Sequence[str] = (),
             ranking: Sequence[str] = (), answer: str | None = None, refused: bool = False,
             citations: Sequence[tuple[str, str]] = (), score: float | None = None,
             timings: dict[str, float] | None = None, error: str | None = None,
             behavior: str | None = None, lang: str = "zh-Hans") -> dict[str, Any]:
    """One result row; `ranking` is hit texts best first, `citations` is (passage, quote) pairs."""
    item = {"id": id, "question": question, "history": [], "category": category, "lang": lang,
            "answerable": answerable,
            "expected_behavior": behavior or ("answer" if answerable else "abstain"),
            "gold_evidence": list(gold), "must_include": list(must_include), "must_not_include": list(must_not),
            "reference_answer": ""}
    hits = [{"rank": i, "chunk_id": f"c{i}", "text": t} for i, t in enumerate(ranking, 1)]
    return {
        "id": id, "question": question, "answer": answer, "refused": refused,
        "citations": [{"n": n, "text": p, "quote": q} for n, (p, q) in enumerate(citations, 1)],
        "hits": hits[:5], "ranking": hits, "engine": "fake", "embedder": "fake",
        "timings_ms": timings if timings is not None else {"retrieve": 10.0, "answer": 0.0, "total": 10.0},
        "answerability": None if score is None else {"answerable": score >= 0.5, "score": score, "reason": ""},
        "error": error, "item": item,
    }
