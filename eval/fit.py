"""`python -m eval.fit`: refit the candidate model and the answerability model, and write them as JSON.

Training data (never the blind sets under eval/blind/, never CMRC fold 1, which judges):
    the team's sets on the speech (eval/dataset.jsonl, eval/other_voices.jsonl), the development sets written by
    other authors (eval/dev/*.jsonl: the speech and six government work reports of the policy library), and CMRC
    2018 trial fold 0 (outside data, CC BY-SA 4.0; `python -m eval.cmrc` converts it).
Method:
    every unit of the first `candidate_passages` retrieved passages is a row (label: it overlaps a gold evidence
    string); a LightGBM LambdaRank model ranks the units of each question, and a logistic calibration of its
    out-of-fold scores (5 folds by question) gives P(answers). Those out-of-fold probabilities choose the selection
    thresholds (F1 of gold coverage and passage precision, within a length budget). The answerability rows are
    questions the structure does not answer (label: answerable), featured with the out-of-fold probabilities; a
    LightGBM classifier, calibrated the same way, and the highest threshold whose out-of-fold false-refusal rate
    on the development sets stays <= --max-false-refusals and whose refusal rate on CMRC fold 0 stays <=
    --max-cmrc-refusals. The final models are fitted on all rows.
Writes config/fitted/select.json and config/fitted/answerable.json (LightGBM's text model, calibration,
thresholds, provenance: sources with hashes, out-of-fold figures, versions, command), and config/fitted/support.json:
the thresholds an LLM's claim needs (Chinese content-word coverage, English cosine), chosen for balanced accuracy on
labelled pairs from the development sets' reference answers (a claim against its own gold evidence, and against
another item's).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag import answerability, select
from rag.answer import Evidence
from rag.fitted import FITTED, TreeModel
from rag.settings import ROOT, build_settings
from rag.text import normalize
from rag.units import bigrams

from .run import file_sha256, git_commit, load_dataset

LIB = ROOT / "data" / "library"
CMRC = ROOT / "eval" / "runs" / "cmrc2018"
# An answer may quote at most this many times the characters of the passage the baseline quotes, on average.
BUDGET = 1.2


@dataclass(frozen=True)
class Source:
    name: str
    dataset: Path
    corpus: Path | None  # None: the default corpus (the speech)
    fold: int | None = None  # CMRC: keep only items of this fold


SOURCES = (
    Source("speech/dataset", ROOT / "eval" / "dataset.jsonl", None),
    Source("speech/other_voices", ROOT / "eval" / "other_voices.jsonl", None),
    Source("speech/d3", ROOT / "eval" / "dev" / "d3_speech_dev.jsonl", None),
    *(Source(f"report-{y}", ROOT / "eval" / "dev" / f"{f}.jsonl", LIB / f"gov-work-report-{y}.txt")
      for y, f in (("2007", "d1_report2007"), ("2013", "d1_report2013"), ("2017", "d2_report2017"),
                   ("2025", "d2_report2025"), ("2010", "d4_report2010"), ("2015", "d4_report2015"))),
    Source("cmrc/fold0", CMRC / "dataset.jsonl", CMRC / "corpus", fold=0),
)


@dataclass
class Record:
    """One training question: its candidates' features and labels, and what answerability needs."""

    source: str
    id: str
    answerable: bool
    n_gold: int
    x: np.ndarray  # candidates × features
    y: np.ndarray  # candidates: overlaps gold evidence
    covers: list[set[int]]  # per candidate: which gold strings it overlaps
    grams: list[frozenset]  # per candidate: its bigrams
    gold_grams: list[frozenset]  # per gold string: its bigrams
    chunk_gold: np.ndarray  # per candidate: its passage holds a gold string (the citation-precision rule)
    lengths: np.ndarray  # per candidate: characters
    top_chunk_len: int  # the first passage's length (the passage baseline's answer)
    question: object
    hits: list
    cands: list
    pipe: object  # the pipeline of its corpus (units, lexicon)
    resolved: bool = False  # answered from the structure or the conversation: answerability never sees it
    item: dict | None = None  # the dataset line


def overlaps(unit_norm: str, gold_norm: str) -> bool:
    """A unit holds gold evidence: one contains the other, or they share most of the shorter one's bigrams."""
    if gold_norm in unit_norm or (len(unit_norm) >= 6 and unit_norm in gold_norm):
        return True
    a, b = set(bigrams(unit_norm)), set(bigrams(gold_norm))
    shared = len(a & b)
    return shared >= 4 and shared / max(1, min(len(a), len(b))) >= 0.6


def pipeline_for(source: Source, index_root: Path | None = None):
    from rag.pipeline import Pipeline

    from .run import run_overrides

    index = str(index_root / source.name.replace("/", "-")) if index_root else None
    args = argparse.Namespace(corpus=str(source.corpus) if source.corpus else None, index=index, engine=None)
    settings = build_settings(overrides=run_overrides(args, {}))
    return Pipeline.from_settings(settings, rebuild="auto", progress=lambda m: print(m, file=sys.stderr))


def collect(source: Source, limit: int | None = None, index_root: Path | None = None) -> list[Record]:
    """Featured candidates of every usable item of a source."""
    pipe = pipeline_for(source, index_root)
    items = [i for i in load_dataset(source.dataset) if source.fold is None or i.get("fold") == source.fold]
    records = []
    for item in items[:limit]:
        q = pipe.analyse(item["question"], item.get("history") or [])
        if q.injection_only:
            continue
        hits = pipe.retrieve(q, pipe.settings.top_k)
        vector = pipe.queries.embed_query(q.query) if q.query else None
        cands = select.candidates(q, hits, pipe.units, vector, pipe.settings.candidate_passages)
        gold = [normalize(g) for g in item.get("gold_evidence") or [] if normalize(g)] if item["answerable"] else []
        units = [pipe.units.units[c.unit] for c in cands]
        covers = [{k for k, g in enumerate(gold) if overlaps(u.norm, g)} for u in units]
        x = np.array([c.x for c in cands], dtype=np.float64).reshape(len(cands), len(select.FEATURES))
        records.append(Record(
            source.name, item["id"], bool(item["answerable"]), len(gold), x,
            np.array([bool(c) for c in covers], dtype=np.int64), covers, [frozenset(bigrams(u.norm)) for u in units],
            [frozenset(bigrams(g)) or frozenset([g]) for g in gold],
            np.array([any(g in normalize(c.chunk.text) for g in gold) for c in cands], dtype=bool),
            np.array([len(u.text) for u in units]), len(hits[0].chunk.text) if hits else 0, q, hits, cands, pipe,
            pipe.extractive.resolve(Evidence(q, tuple(select.score(cands, None, np.zeros(len(cands)))), (),
                                             tuple(hits))) is not None, item))
    print(f"{source.name}: {len(records)} questions, {sum(len(r.cands) for r in records)} candidates",
          file=sys.stderr)
    return records


def folds(n: int, k: int = 5, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n) % k


RANKER = dict(n_estimators=150, learning_rate=0.05, num_leaves=15, min_child_samples=20, random_state=7, n_jobs=2,
              verbose=-1)
CLASSIFIER = dict(n_estimators=150, learning_rate=0.05, num_leaves=15, min_child_samples=20, random_state=7,
                  n_jobs=2, verbose=-1)


def source_weights(records: list[Record]) -> dict[str, float]:
    """Each source weighs as much as the others in total, whatever its number of questions."""
    counts: dict[str, int] = {}
    for r in records:
        counts[r.source] = counts.get(r.source, 0) + 1
    return {s: len(records) / (len(counts) * n) for s, n in counts.items()}


def fit_ranker(records: list[Record]):
    """A LightGBM LambdaRank model of the candidates, one query group per question."""
    import lightgbm

    used = [r for r in records if len(r.cands)]
    model = lightgbm.LGBMRanker(**RANKER)
    model.fit(np.vstack([r.x for r in used]), np.concatenate([r.y for r in used]), group=[len(r.cands) for r in used])
    return model


def calibration(raw: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> tuple[float, float]:
    """(a, b) of P = sigmoid(a * raw + b), fitted on out-of-fold scores."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=100.0, max_iter=1000).fit(raw.reshape(-1, 1), y, sample_weight=w)
    return float(lr.coef_[0][0]), float(lr.intercept_[0])


def out_of_fold_units(records: list[Record]) -> list[np.ndarray]:
    """Per record, the candidates' raw scores from a model that never saw that question."""
    fold_of = folds(len(records))
    oof: list[np.ndarray] = [np.zeros(len(r.cands)) for r in records]
    for k in range(fold_of.max() + 1):
        model = fit_ranker([r for r, f in zip(records, fold_of) if f != k])
        for i, (r, f) in enumerate(zip(records, fold_of)):
            if f == k and len(r.cands):
                oof[i] = model.predict(r.x)
    return oof


def fit_classifier(x: np.ndarray, y: np.ndarray, w: np.ndarray):
    import lightgbm

    return lightgbm.LGBMClassifier(**CLASSIFIER).fit(x, y, sample_weight=w)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def policy_score(records: list[Record], probs: list[np.ndarray], params: dict, max_n: int) -> tuple[float, float, float]:
    """(gold coverage, passage precision, mean characters) of the chosen units over answerable questions with gold
    in reach: the share of the gold strings' bigrams the chosen units hold (what must-include rewards), the share
    of chosen units whose passage holds gold (what citation precision rewards), the answer's length."""
    recalls, precisions, chars = [], [], []
    for r, p in zip(records, probs):
        if not r.answerable or not r.n_gold or not len(r.cands) or not r.chunk_gold.any():
            continue
        order = np.argsort(-p, kind="stable")
        chosen = [order[i] for i in select.pick([p[j] for j in order], [r.cands[j].unit for j in order],
                                                [r.cands[j].chunk.id for j in order], params, max_n)]
        have = frozenset().union(*(r.grams[i] for i in chosen))
        recalls.append(float(np.mean([len(g & have) / len(g) for g in r.gold_grams])))
        precisions.extend(bool(r.chunk_gold[i]) for i in chosen)
        chars.append(float(sum(r.lengths[i] for i in chosen)))
    if not recalls:
        return float("nan"), float("nan"), 0.0
    return float(np.mean(recalls)), float(np.mean(precisions)), float(np.mean(chars))


def choose_policy(records: list[Record], probs: list[np.ndarray], max_n: int, budget: float) -> dict:
    """The thresholds with the best gold coverage whose passage precision is no lower than quoting the best unit
    alone and whose mean answer length stays within `budget` characters."""
    top1 = {"t_abs": 1.01, "r_rel": 1.01, "t_next": 1.01}
    base_recall, base_precision, _ = policy_score(records, probs, top1, max_n)
    best = (base_recall, top1, base_precision, policy_score(records, probs, top1, max_n)[2])
    for a in np.round(np.arange(0.1, 0.95, 0.05), 2):
        for r in np.round(np.arange(0.5, 1.01, 0.1), 2):
            for t in np.round(list(np.arange(0.1, 0.95, 0.1)) + [1.01], 2):
                params = {"t_abs": float(a), "r_rel": float(r), "t_next": float(t)}
                recall, precision, chars = policy_score(records, probs, params, max_n)
                if chars <= budget and precision >= base_precision - 0.005 and recall > best[0] + 1e-9:
                    best = (recall, params, precision, chars)
    recall, params, precision, chars = best
    return {**params, "oof_gold_coverage": round(recall, 4), "oof_passage_precision": round(precision, 4),
            "oof_chars": round(chars, 1), "budget_chars": round(budget, 1),
            "oof_gold_coverage_best_unit_only": round(base_recall, 4)}


def answerability_rows(records: list[Record], probs: list[np.ndarray]) -> np.ndarray:
    rows = []
    for r, p in zip(records, probs):
        ranked = select.score(r.cands, None, probabilities=p) if len(r.cands) else []
        rows.append(answerability.features(r.question, ranked, r.hits, r.pipe.units, r.pipe.lexicon))
    return np.array(rows, dtype=np.float64)


def choose_threshold(p: np.ndarray, records: list[Record], max_frr: float, max_cmrc: float) -> dict:
    dev = np.array([not r.source.startswith("cmrc") for r in records])
    ans = np.array([r.answerable for r in records])
    best = None
    for t in np.round(np.arange(0.02, 0.98, 0.01), 2):
        frr = float(np.mean(p[dev & ans] < t))
        cmrc = float(np.mean(p[~dev] < t)) if (~dev).any() else 0.0
        if frr <= max_frr and cmrc <= max_cmrc:
            best = t
    t = 0.02 if best is None else float(best)
    return {"threshold": t, "oof_false_refusal_dev": round(float(np.mean(p[dev & ans] < t)), 4),
            "oof_refusal_accuracy_dev": round(float(np.mean(p[dev & ~ans] < t)), 4),
            "oof_refusal_cmrc": round(float(np.mean(p[~dev] < t)), 4) if (~dev).any() else None}


def support_pairs(records: list[Record]) -> dict[str, tuple[list[float], list[int]]]:
    """Labelled (claim, passage) pairs from the development sets' reference answers: a claim of an item's reference
    answer against the item's own gold evidence (supported) and against the gold evidence of the next item of the
    same set (not supported). Scored the way verification scores them: Chinese content-word coverage, English
    cosine."""
    from rag.llm_engine import LLMEngine
    from rag.verify import claims_of

    dev = [r for r in records if not r.source.startswith("cmrc") and r.answerable and r.item
           and r.item.get("reference_answer") and r.item.get("gold_evidence")]
    out: dict[str, tuple[list[float], list[int]]] = {"zh": ([], []), "en": ([], [])}
    for r, other in zip(dev, dev[1:] + dev[:1]):
        if other.source != r.source:
            continue
        english = r.item.get("lang") == "en"
        engine = LLMEngine(type("B", (), {"name": "fit"})(), r.pipe.extractive, r.pipe.settings, r.pipe.queries)
        support = engine.support(english)
        own, foreign = " ".join(r.item["gold_evidence"]), " ".join(other.item["gold_evidence"])
        for claim in claims_of(r.item["reference_answer"])[:3]:
            scores, labels = out["en" if english else "zh"]
            scores += [support(claim, own), support(claim, foreign)]
            labels += [1, 0]
    return out


def support_thresholds(pairs: dict[str, tuple[list[float], list[int]]]) -> dict:
    """Per language, the threshold with the best balanced accuracy on the labelled pairs."""
    params = {}
    for lang, (scores, labels) in pairs.items():
        s, y = np.array(scores), np.array(labels)
        best = (0.0, 0.5)
        for t in np.unique(np.round(s, 3)):
            acc = (np.mean(s[y == 1] >= t) + np.mean(s[y == 0] < t)) / 2 if len(set(y.tolist())) == 2 else 0.0
            if acc > best[0]:
                best = (float(acc), float(t))
        params[f"{lang}_threshold"] = best[1]
        params[f"{lang}_balanced_accuracy"] = round(best[0], 4)
        params[f"{lang}_pairs"] = int(len(s))
    return params


def top1(records: list[Record], probs: list[np.ndarray]) -> float:
    """Share of answerable questions with gold in reach whose best-scored candidate's passage holds gold."""
    hits = [bool(r.chunk_gold[int(np.argmax(p))]) for r, p in zip(records, probs)
            if r.answerable and len(r.cands) and r.chunk_gold.any()]
    return round(float(np.mean(hits)), 4) if hits else float("nan")


def auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return round(float(roc_auc_score(y, p)), 4) if len(set(y.tolist())) == 2 else float("nan")


def provenance(sources, records, argv) -> dict:
    import lightgbm
    import sklearn

    return {"command": "python -m eval.fit " + " ".join(argv), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "git_commit": git_commit(), "scikit_learn": sklearn.__version__, "lightgbm": lightgbm.__version__,
            "sources": [{"name": s.name, "dataset": str(s.dataset.relative_to(ROOT)) if s.dataset.is_relative_to(ROOT)
                         else str(s.dataset), "sha256": file_sha256(s.dataset), "fold": s.fold,
                         "questions": sum(r.source == s.name for r in records)} for s in sources]}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m eval.fit", description=__doc__.split("\n")[0])
    parser.add_argument("--max-false-refusals", type=float, default=0.03)
    parser.add_argument("--max-cmrc-refusals", type=float, default=0.02)
    parser.add_argument("--limit", type=int, help="only the first N items of each source (a quick check)")
    parser.add_argument("--out", default=str(FITTED), help="folder for select.json and answerable.json")
    parser.add_argument("--sources", help="comma-separated source names (default: all): " +
                        ", ".join(s.name for s in SOURCES))
    parser.add_argument("--index-root", help="build the sources' indexes under this folder (default: index/)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    sources = [s for s in SOURCES if not args.sources or s.name in args.sources.split(",")]
    if not sources:
        parser.error(f"--sources names none of {', '.join(s.name for s in SOURCES)}")
    if any(s.name.startswith("cmrc") for s in sources) and not (CMRC / "dataset.jsonl").exists():
        from .cmrc import DEFAULT_SRC, convert

        convert(DEFAULT_SRC, CMRC)
    root = Path(args.index_root).resolve() if args.index_root else None
    records = [r for s in sources for r in collect(s, args.limit, root)]
    weights = source_weights(records)
    raw = out_of_fold_units(records)
    y_units = np.concatenate([r.y for r in records if len(r.cands)])
    a, b = calibration(np.concatenate([s for r, s in zip(records, raw) if len(r.cands)]), y_units)
    oof = [sigmoid(a * s + b) for s in raw]
    max_n = build_settings().max_answer_sentences
    budget = BUDGET * float(np.mean([r.top_chunk_len for r in records if r.answerable and r.top_chunk_len]))
    policy = choose_policy(records, oof, max_n, budget)
    p_units = np.concatenate([p for r, p in zip(records, oof) if len(r.cands)])
    unit = TreeModel(select.FEATURES, fit_ranker(records).booster_.model_to_string(), a, b,
                     {**policy, "oof_auc": auc(y_units, p_units), "oof_top1": top1(records, oof),
                      "lightgbm": RANKER})

    asked = [i for i, r in enumerate(records) if not r.resolved]  # what the answerability model decides
    kept = [records[i] for i in asked]
    xa = answerability_rows(kept, [oof[i] for i in asked])
    ya = np.array([r.answerable for r in kept], dtype=np.int64)
    wa = np.array([weights[r.source] for r in kept])
    fold_of = folds(len(kept), seed=11)
    raw_a = np.zeros(len(kept))
    for k in range(fold_of.max() + 1):
        m = fit_classifier(xa[fold_of != k], ya[fold_of != k], wa[fold_of != k])
        raw_a[fold_of == k] = m.predict_proba(xa[fold_of == k], raw_score=True)
    ca, cb = calibration(raw_a, ya, wa)
    pa = sigmoid(ca * raw_a + cb)
    chosen = choose_threshold(pa, kept, args.max_false_refusals, args.max_cmrc_refusals)
    ans = TreeModel(answerability.FEATURES, fit_classifier(xa, ya, wa).booster_.model_to_string(), ca, cb,
                    {**chosen, "oof_auc": auc(ya, pa), "lightgbm": CLASSIFIER})

    support = support_thresholds(support_pairs(records))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prov = provenance(sources, records, argv)
    (out / "support.json").write_text(json.dumps({"kind": "thresholds", "params": support, "_provenance": prov},
                                                 ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (out / "select.json").write_text(json.dumps(unit.to_json(_provenance=prov), ensure_ascii=False, indent=1) + "\n",
                                     encoding="utf-8")
    (out / "answerable.json").write_text(json.dumps(ans.to_json(_provenance=prov), ensure_ascii=False, indent=1) + "\n",
                                         encoding="utf-8")
    print(f"candidates: {len(y_units)} rows, out-of-fold AUC {unit.params['oof_auc']}, top-1 passage holds gold "
          f"{unit.params['oof_top1']}; policy {policy}")
    print(f"answerability: {len(ya)} questions, out-of-fold AUC {ans.params['oof_auc']}; {chosen}")
    print(f"claim support: {support}")
    print(f"wrote {out / 'select.json'}, {out / 'answerable.json'} and {out / 'support.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
