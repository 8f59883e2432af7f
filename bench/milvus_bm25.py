"""`python -m bench.milvus_bm25 [--json PATH] [--corpus DIR] [--dev DIR] [--limit N]`: Milvus's built-in BM25
full-text search (Milvus Lite, a BM25 Function over a VARCHAR field with an analyzer) against the project's bm25s
lexical index (rag.lexical) on the policy library.

Corpus: data/library (22 documents), chunked as the index does (rag.ingest.load_corpus → rag.chunking.chunk_corpus
with the default settings). Questions: the dev sets eval/dev/*.jsonl; each file belongs to one document (its name
says which: `..._report2007` → gov-work-report-2007, `..._speech_...` → the speech); scored are the answerable
items with gold evidence. A hit at rank n: one of the top-n chunks is in the question's document and contains a
gold evidence string after rag.text.normalize (the evaluation's rule). Two scopes: the whole library, and the
question's document only (bm25s scores masked to its rows; Milvus `filter='doc_id == "..."'`).

Systems (BM25 k1 1.2, b 0.75 for all):
  bm25s bigram       the project's default lexical index (t2s-normalised character bigrams)
  bm25s jieba        the project's index with the jieba tokenizer (the segmentation Milvus's analyzer uses)
  milvus jieba       Milvus BM25, analyzer {"tokenizer": "jieba"} (search mode), the raw text and questions
  milvus jieba+t2s   the same on rag.text.normalize'd text and questions (what rag.lexical does before tokenising)
  milvus standard    Milvus BM25 with the default `standard` analyzer (\\w+ runs: a Chinese clause is one token)
Milvus Lite 3 supports the `standard` and `jieba` tokenizers; the server's `{"type": "chinese"}` analyzer is
tried and its error recorded. Latency: one question at a time, top-10, query tokenisation included, p50/p95 ms.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import ROOT, BenchError, load_items, machine, percentiles, rounded, scored_items, write_json

DEFAULT_JSON = ROOT / "bench" / "results" / "milvus_bm25.json"
LIBRARY = ROOT / "data" / "library"
DEV = ROOT / "eval" / "dev"
SPEECH = "wenzhou-2023-sci-tech-plan"
K1, B = 1.2, 0.75
DEPTH = 10
JIEBA = {"tokenizer": "jieba"}
STANDARD = {"tokenizer": "standard"}


def document_of(dev_file: Path) -> str:
    """The document a dev set asks about, from its file name."""
    year = re.search(r"report(\d{4})", dev_file.stem)
    if year:
        return f"gov-work-report-{year.group(1)}"
    if "speech" in dev_file.stem:
        return SPEECH
    raise BenchError(f"cannot tell which document {dev_file.name} asks about; name it *_reportYYYY or *_speech*")


def dev_questions(dev_dir: Path, documents: set[str]) -> list[dict]:
    """The scored dev items of every dev set whose document is in the corpus, each with its `doc_id`."""
    out = []
    for path in sorted(Path(dev_dir).glob("*.jsonl")):
        doc = document_of(path)
        if doc not in documents:
            continue
        for item in scored_items(load_items(path)):
            out.append({**item, "doc_id": doc, "set": path.stem})
    if not out:
        raise BenchError(f"no scored dev question in {dev_dir} asks about a document of the corpus")
    return out


def hit_rank(rows: Sequence[int], chunks, item: dict) -> int | None:
    """1-based rank of the first chunk in the item's document containing a gold evidence string."""
    from rag.text import normalize

    gold = [normalize(e) for e in item["gold_evidence"]]
    for rank, row in enumerate(rows, start=1):
        c = chunks[row]
        if c.doc_id == item["doc_id"] and any(g in normalize(c.text) for g in gold):
            return rank
    return None


class Bm25s:
    """The project's lexical index (rag.lexical.LexicalIndex) as a top-k searcher."""

    def __init__(self, chunks, tokenizer: str) -> None:
        from rag.lexical import LexicalIndex

        self.name = f"bm25s {tokenizer}"
        t0 = time.perf_counter()
        self.index = LexicalIndex.build([c.text for c in chunks], tokenizer)
        self.build_s = time.perf_counter() - t0
        self.rows_of: dict[str, np.ndarray] = {}
        for row, c in enumerate(chunks):
            self.rows_of.setdefault(c.doc_id, []).append(row)
        self.rows_of = {d: np.asarray(r) for d, r in self.rows_of.items()}

    def search(self, question: str, k: int, doc_id: str | None = None) -> list[int]:
        scores = self.index.scores(question)
        if doc_id is not None:
            masked = np.zeros_like(scores)
            masked[self.rows_of[doc_id]] = scores[self.rows_of[doc_id]]
            scores = masked
        top = np.argsort(-scores, kind="stable")[:k]
        return [int(r) for r in top if scores[r] > 0]


class MilvusBm25:
    """A Milvus Lite collection with a BM25 Function over the chunk text (VARCHAR with an analyzer)."""

    def __init__(self, chunks, analyzer: dict, name: str, folder: Path, normalise: bool = False) -> None:
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        from rag.text import normalize

        self.name = name
        self.prepare: Callable[[str], str] = normalize if normalise else (lambda s: s)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = str(folder / "bm25.db")
        t0 = time.perf_counter()
        self.client = MilvusClient(self.path)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("row", DataType.INT64, is_primary=True)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=256)
        schema.add_field("text", DataType.VARCHAR, max_length=8192, enable_analyzer=True, analyzer_params=analyzer)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["text"],
                                     output_field_names=["sparse"]))
        index = self.client.prepare_index_params()
        index.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                        params={"bm25_k1": K1, "bm25_b": B})
        self.client.create_collection("chunks", schema=schema, index_params=index)
        rows = [{"row": r, "doc_id": c.doc_id, "text": self.prepare(c.text)} for r, c in enumerate(chunks)]
        for start in range(0, len(rows), 2000):
            self.client.insert("chunks", rows[start : start + 2000])
        self.client.flush("chunks")
        self.client.load_collection("chunks")
        self.build_s = time.perf_counter() - t0

    def search(self, question: str, k: int, doc_id: str | None = None) -> list[int]:
        found = self.client.search("chunks", data=[self.prepare(question)], anns_field="sparse", limit=k,
                                   filter=f"doc_id == {json.dumps(doc_id, ensure_ascii=False)}" if doc_id else "",
                                   output_fields=["row"], search_params={"metric_type": "BM25"})
        return [int(hit.id) for hit in found[0]]

    def close(self) -> None:
        from milvus_lite.server_manager import server_manager_instance

        self.client.close()
        server_manager_instance.release_server(self.path)


def chinese_analyzer_error(folder: Path) -> str | None:
    """What Milvus Lite says to the server's built-in `{"type": "chinese"}` analyzer (None: accepted)."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient
    from pymilvus.exceptions import MilvusException

    path = str(folder / "chinese.db")
    client = MilvusClient(path)
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("row", DataType.INT64, is_primary=True)
    schema.add_field("text", DataType.VARCHAR, max_length=1024, enable_analyzer=True, analyzer_params={"type": "chinese"})
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["text"],
                                 output_field_names=["sparse"]))
    quiet = logging.getLogger("pymilvus")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # the expected refusal, without pymilvus's logged traceback
    try:
        client.create_collection("probe", schema=schema)
        client.insert("probe", [{"row": 0, "text": "科创指数贷"}])
        return None
    except MilvusException as exc:
        return str(getattr(exc, "message", exc))
    finally:
        from milvus_lite.server_manager import server_manager_instance

        quiet.setLevel(level)
        client.close()
        server_manager_instance.release_server(path)


def measure(system, chunks, items: list[dict]) -> dict:
    """hit@1 / hit@5 in both scopes and per-question latency of one system."""
    out: dict[str, Any] = {"build_s": system.build_s}
    system.search(items[0]["question"], DEPTH)  # warm-up
    for scope in ("library", "document"):
        ranks, times = [], []
        for item in items:
            t0 = time.perf_counter()
            rows = system.search(item["question"], DEPTH, item["doc_id"] if scope == "document" else None)
            times.append((time.perf_counter() - t0) * 1e3)
            ranks.append(hit_rank(rows, chunks, item))
        out[scope] = {"hit@1": float(np.mean([r == 1 for r in ranks])),
                      "hit@5": float(np.mean([r is not None and r <= 5 for r in ranks])),
                      "hit@10": float(np.mean([r is not None for r in ranks])),
                      "latency_ms": percentiles(times)}
    return out


def run(corpus: Path, dev: Path, limit: int | None) -> dict:
    from rag.chunking import chunk_corpus
    from rag.ingest import load_corpus
    from rag.settings import build_settings

    import bm25s  # noqa: F401  (imported before any timing)
    import jieba
    import pymilvus  # noqa: F401

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()  # its dictionary loads once, before any build is timed

    settings = build_settings(env={}, overrides={"corpus_dir": corpus})
    started, before = time.perf_counter(), machine()
    docs = load_corpus(settings.corpus_dir)
    chunks = chunk_corpus(docs, settings.chunk_size, settings.chunk_overlap, settings.max_clause_chars)
    items = dev_questions(dev, {d.id for d in docs})
    if limit:
        items = items[:limit]
    work = Path(tempfile.mkdtemp(prefix="rag-milvus-bm25-"))
    systems: dict[str, dict] = {}
    try:
        chinese = chinese_analyzer_error(work)
        for make in (lambda: Bm25s(chunks, "bigram"), lambda: Bm25s(chunks, "jieba"),
                     lambda: MilvusBm25(chunks, JIEBA, "milvus jieba", work / "a"),
                     lambda: MilvusBm25(chunks, JIEBA, "milvus jieba+t2s", work / "b", normalise=True),
                     lambda: MilvusBm25(chunks, STANDARD, "milvus standard", work / "c")):
            system = make()
            print(f"milvus_bm25: {system.name} ...", file=sys.stderr, flush=True)
            systems[system.name] = measure(system, chunks, items)
            if isinstance(system, MilvusBm25):
                system.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    from importlib.metadata import version

    return rounded({
        "corpus": {"path": str(corpus.relative_to(ROOT) if corpus.is_relative_to(ROOT) else corpus),
                   "documents": len(docs), "chunks": len(chunks)},
        "questions": {"scored": len(items), "by_set": {s: sum(i["set"] == s for i in items)
                                                        for s in dict.fromkeys(i["set"] for i in items)}},
        "systems": systems,
        "milvus_chinese_analyzer": {"params": {"type": "chinese"}, "error": chinese},
        "versions": {p: version(p) for p in ("pymilvus", "milvus-lite", "bm25s", "jieba")},
        "machine": {**before, "loadavg_1m_end": machine()["loadavg_1m"]},
        "config": {"k1": K1, "b": B, "depth": DEPTH, "chunk_size": settings.chunk_size,
                   "total_s": time.perf_counter() - started},
    })


def table(result: dict) -> str:
    """Systems × scopes: hit@1, hit@5, latency p50/p95."""
    head = (f"{'system':<18}{'build s':>8} | {'library hit@1':>13}{'hit@5':>7}{'p50 ms':>8}{'p95 ms':>8} | "
            f"{'document hit@1':>14}{'hit@5':>7}{'p50 ms':>8}{'p95 ms':>8}")
    lines = [head, "-" * len(head)]
    for name, s in result["systems"].items():
        lib, doc = s["library"], s["document"]
        lines.append(f"{name:<18}{s['build_s']:>8.2f} | {lib['hit@1']:>13.3f}{lib['hit@5']:>7.3f}"
                     f"{lib['latency_ms']['p50']:>8.2f}{lib['latency_ms']['p95']:>8.2f} | {doc['hit@1']:>14.3f}"
                     f"{doc['hit@5']:>7.3f}{doc['latency_ms']['p50']:>8.2f}{doc['latency_ms']['p95']:>8.2f}")
    c, q, m = result["corpus"], result["questions"], result["machine"]
    err = result["milvus_chinese_analyzer"]["error"]
    lines += ["", f"{c['documents']} documents, {c['chunks']} chunks; {q['scored']} scored dev questions "
                  f"({', '.join(f'{k} {v}' for k, v in q['by_set'].items())})",
              f"hit: a top-n chunk of the question's document containing a gold evidence string (normalised)",
              f"Milvus Lite and the server's analyzer {{'type': 'chinese'}}: "
              + ("accepted" if err is None else f"rejected ({err})"),
              f"{m['cpu_count']} CPUs, load average {m['loadavg_1m']} -> {m['loadavg_1m_end']}; "
              f"{', '.join(f'{k} {v}' for k, v in result['versions'].items())}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.milvus_bm25", description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--corpus", type=Path, default=LIBRARY, help="a corpus folder (default data/library)")
    parser.add_argument("--dev", type=Path, default=DEV, help="a folder of dev sets (default eval/dev)")
    parser.add_argument("--limit", type=int, help="only the first N scored questions (a quick look)")
    args = parser.parse_args(argv)
    try:
        result = run(args.corpus.resolve(), args.dev, args.limit)
    except BenchError as exc:
        print(f"bench.milvus_bm25: {exc}", file=sys.stderr)
        return 2
    print(table(result))
    print(f"\nJSON written to {write_json(args.json, result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
