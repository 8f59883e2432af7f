"""Dense, lexical and fused retrieval (plus an optional cross-encoder) → ranked `Hit`s."""
from __future__ import annotations

import logging
import threading
from typing import Collection, Sequence

from dataclasses import replace

import numpy as np

from .embeddings import Embedder
from .errors import EmbedderError
from .settings import Settings
from .store import LoadedIndex
from .types import Hit

log = logging.getLogger(__name__)


def _top(scores: dict[int, float], n: int) -> list[int]:
    return sorted(scores, key=lambda r: (-scores[r], r))[:n]


def fuse(dense: dict[int, float], lexical: dict[int, float], method: str, dense_weight: float, rrf_k: int) -> dict[int, float]:
    """Combine per-retriever scores of candidate rows into one score per row.

    weighted: dense cosines min-max normalised over the candidates, BM25 divided by its maximum (so a query
    with no known token adds nothing), then mixed by `dense_weight`. rrf: reciprocal rank fusion.
    """
    if method == "dense":
        return dict(dense)
    if method == "lexical":
        return {r: s for r, s in lexical.items() if s > 0}
    rows = set(dense) | {r for r, s in lexical.items() if s > 0}
    if method == "rrf":
        out = {r: 0.0 for r in rows}
        for scores in (dense, {r: s for r, s in lexical.items() if s > 0}):
            for rank, r in enumerate(_top(scores, len(scores)), start=1):
                out[r] += 1.0 / (rrf_k + rank)
        return out
    d_vals = list(dense.values())
    d_lo, d_hi = (min(d_vals), max(d_vals)) if d_vals else (0.0, 1.0)
    l_hi = max(lexical.values(), default=0.0)
    out = {}
    for r in rows:
        d = (dense.get(r, d_lo) - d_lo) / (d_hi - d_lo) if d_hi > d_lo else (1.0 if r in dense else 0.0)
        lx = lexical.get(r, 0.0) / l_hi if l_hi > 0 else 0.0
        w = dense_weight if l_hi > 0 else 1.0
        out[r] = w * d + (1.0 - w) * lx
    return out


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder (any model id or local path), loaded on first use."""

    def __init__(self, model: str, device: str = "cpu") -> None:
        self.model_id = model
        self.device = device
        self._model = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self._model is None:
                try:
                    from sentence_transformers import CrossEncoder

                    self._model = CrossEncoder(self.model_id, device=self.device)
                except Exception as exc:
                    raise EmbedderError(f"cannot load reranker {self.model_id!r} ({exc}); fix RAG_RERANKER_MODEL or unset it") from exc

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        self.warm_up()
        if not passages:
            return []
        return [float(s) for s in self._model.predict([(query, p) for p in passages], show_progress_bar=False)]


class Retriever:
    """Retrieval over one loaded index with one embedder; thread-safe for concurrent questions."""

    def __init__(self, index: LoadedIndex, embedder: Embedder, settings: Settings, reranker: CrossEncoderReranker | None = None) -> None:
        self.index = index
        self.embedder = embedder
        self.settings = settings
        self.reranker = reranker

    def dense_scores(self, query: str, k: int, doc_ids: Collection[str] | None = None) -> dict[int, float]:
        """Cosine of the top-k rows for the query (of the given documents' rows only, when given)."""
        vector = self.embedder.embed_query(query)
        return dict(self.index.vectors.search(vector, k, doc_ids))

    def lexical_scores(self, query: str, k: int, doc_ids: Collection[str] | None = None) -> dict[int, float]:
        """BM25 of the top-k rows with a positive score (of the given documents' rows only, when given)."""
        scores = self.index.lexical.scores(query)
        if doc_ids is not None and scores.size:
            scores = np.where(self._doc_mask(frozenset(doc_ids)), scores, 0.0)
        if not scores.size or float(scores.max()) <= 0:
            return {}
        k = min(k, scores.size)
        rows = np.argpartition(-scores, k - 1)[:k]
        return {int(r): float(scores[r]) for r in rows if scores[r] > 0}

    def _doc_mask(self, doc_ids: frozenset[str]) -> np.ndarray:
        return np.fromiter((c.doc_id in doc_ids for c in self.index.chunks), dtype=bool, count=len(self.index.chunks))

    def retrieve(self, query: str, k: int | None = None, doc_ids: Collection[str] | None = None) -> list[Hit]:
        """The top-k hits for a query, best first, each with its per-retriever scores; `doc_ids` keeps the search to
        those documents. Without it, in a corpus of several documents no document takes more than
        `max_per_document` of the hits but the first (the rest go to the next documents' best)."""
        s = self.settings
        k = k or s.top_k
        ck = max(s.candidate_k, k)
        dense = self.dense_scores(query, ck, doc_ids) if s.fusion != "lexical" else {}
        lexical = self.lexical_scores(query, ck, doc_ids) if s.fusion != "dense" else {}
        fused = fuse(dense, lexical, s.fusion, s.dense_weight, s.rrf_k)
        order = _top(fused, len(fused))
        if doc_ids is None and len(self.index.documents) > 1:
            order = diversify(order, [self.index.chunks[r].doc_id for r in order], s.max_per_document)
        order = order[: max(k, s.rerank_top_n if self.reranker else k)]
        rerank: dict[int, float] = {}
        if self.reranker and order:
            values = self.reranker.score(query, [self.index.chunks[r].text for r in order])
            rerank = dict(zip(order, values))
            order = sorted(order, key=lambda r: -rerank[r])
        hits = []
        for rank, r in enumerate(order[:k], start=1):
            scores = {"dense": dense.get(r, 0.0), "lexical": lexical.get(r, 0.0), "fused": fused[r]}
            if rerank:
                scores["rerank"] = rerank[r]
            hits.append(Hit(self.index.chunks[r], rerank.get(r, fused[r]), rank, scores))
        return hits


def diversify(order: list[int], docs: list[str], per_doc: int) -> list[int]:
    """`order` re-ranked so that no document has more than `per_doc` rows before every other document has had its
    chance: rows beyond a document's share wait until the others' run out (the first row stays first)."""
    seen: dict[str, int] = {}
    first, later = [], []
    for row, doc in zip(order, docs):
        seen[doc] = seen.get(doc, 0) + 1
        (first if seen[doc] <= per_doc else later).append(row)
    return first + later


def merge_hits(hits: list[Hit], extra: list[Hit]) -> list[Hit]:
    """`hits` followed by the hits of `extra` whose chunks it lacks, ranked on after them."""
    have = {h.chunk.id for h in hits}
    added = [h for h in extra if h.chunk.id not in have]
    return list(hits) + [replace(h, rank=len(hits) + i) for i, h in enumerate(added, start=1)]
