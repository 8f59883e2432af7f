"""`python -m eval.calibrate --dataset PATH [--out-settings config/settings.json] [--set key=value ...]`.

Runs the pipeline once over the dataset, collects `answer.answerability.score` per item (higher = more
answerable), and picks the `answerable_threshold` that maximises balanced accuracy between answerable and
non-answerable items: an item is predicted answerable when score >= threshold; the candidates are the midpoints
between consecutive distinct sorted scores; ties go to the widest gap between scores (the most margin), then to
the lowest threshold. The value is written into the settings JSON (read-modify-write: other keys are kept) with a
"_calibration" note (date, dataset and its hash, balanced accuracy). Exits non-zero when no item has a score.
Calibrating on the evaluation set makes its refusal metrics optimistic: calibrate on a separate split when one exists.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from rag.errors import RagError, SettingsError
from rag.settings import DEFAULT_SETTINGS_FILE, Settings, parse_overrides

from . import EvalError
from .run import DEFAULT_DATASET, evaluate, file_sha256, load_dataset, run_settings


@dataclass(frozen=True)
class Calibration:
    """The chosen threshold and how well it separates the two groups."""

    threshold: float
    balanced_accuracy: float
    true_positive_rate: float  # answerable items with score >= threshold
    true_negative_rate: float  # non-answerable items with score < threshold
    n_answerable: int
    n_unanswerable: int


def balanced_accuracy(scores: Sequence[float], answerable: Sequence[bool],
                      threshold: float) -> tuple[float, float, float]:
    """(balanced accuracy, TPR, TNR) of predicting answerable when score >= threshold."""
    pos = [s for s, a in zip(scores, answerable) if a]
    neg = [s for s, a in zip(scores, answerable) if not a]
    if not pos or not neg:
        raise EvalError(f"need answerable and non-answerable items with scores (have {len(pos)} and {len(neg)})")
    tpr = sum(s >= threshold for s in pos) / len(pos)
    tnr = sum(s < threshold for s in neg) / len(neg)
    return (tpr + tnr) / 2, tpr, tnr


def choose_threshold(scores: Sequence[float], answerable: Sequence[bool]) -> Calibration:
    """The midpoint threshold with the best balanced accuracy (ties: widest gap, then lowest)."""
    if len(scores) != len(answerable):
        raise ValueError("scores and answerable labels differ in length")
    distinct = sorted(set(float(s) for s in scores))
    if len(distinct) < 2:
        raise EvalError("every item has the same answerability score; nothing to calibrate")
    best: tuple[float, float, float] | None = None  # (accuracy, gap, -threshold)
    for lo, hi in zip(distinct, distinct[1:]):
        t = (lo + hi) / 2
        acc, _, _ = balanced_accuracy(scores, answerable, t)
        key = (round(acc, 12), hi - lo, -t)
        if best is None or key > best:
            best = key
    threshold = -best[2]
    acc, tpr, tnr = balanced_accuracy(scores, answerable, threshold)
    return Calibration(threshold, acc, tpr, tnr, sum(map(bool, answerable)), sum(not a for a in answerable))


def collect_scores(rows: Sequence[Mapping[str, Any]]) -> tuple[list[float], list[bool], int]:
    """(scores, answerable labels, rows without a score) from result rows."""
    scores, labels, missing = [], [], 0
    for r in rows:
        a = r.get("answerability") or {}
        score = a.get("score") if isinstance(a, Mapping) else None
        if r.get("error") or not isinstance(score, (int, float)):
            missing += 1
            continue
        scores.append(float(score))
        labels.append(bool((r.get("item") or {}).get("answerable")))
    return scores, labels, missing


def write_threshold(path: str | Path, calibration: Calibration, note: Mapping[str, Any]) -> dict:
    """Set answerable_threshold and a "_calibration" note in a settings JSON file, keeping its other keys."""
    path = Path(path)
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise EvalError(f"settings file {path} is unreadable ({exc}); fix it before calibrating") from None
        if not isinstance(data, dict):
            raise EvalError(f"settings file {path} must hold a JSON object")
    previous = data.get("answerable_threshold")
    data["answerable_threshold"] = round(calibration.threshold, 6)
    data["_calibration"] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "balanced_accuracy": round(calibration.balanced_accuracy, 4),
        "true_positive_rate": round(calibration.true_positive_rate, 4),
        "true_negative_rate": round(calibration.true_negative_rate, 4),
        "n_answerable": calibration.n_answerable,
        "n_unanswerable": calibration.n_unanswerable,
        "previous_threshold": previous,
        **note,
    }
    try:
        Settings(answerable_threshold=data["answerable_threshold"])
    except SettingsError as exc:
        raise EvalError(f"the calibrated threshold is not a valid setting ({exc}); "
                        "the engine's scores must lie in 0..1") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    os.replace(tmp, path)
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.calibrate",
                                     description="Choose answerable_threshold by balanced accuracy on a dataset.")
    parser.add_argument("--dataset", default=str(DEFAULT_DATASET), help="dataset JSONL (default: eval/dataset.jsonl)")
    parser.add_argument("--out-settings", default=str(DEFAULT_SETTINGS_FILE),
                        help="settings JSON to update (default: config/settings.json)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting for this run")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        from rag.pipeline import Pipeline

        items = load_dataset(args.dataset)
        with tempfile.TemporaryDirectory(prefix="calibrate-") as scratch:
            settings = run_settings(parse_overrides(args.set), Path(scratch))
            own = settings.index_dir == Path(scratch).resolve() / "index"
            pipeline = Pipeline.from_settings(settings, rebuild="always" if own else "auto",
                                              progress=lambda m: print(m, file=sys.stderr))
            rows = evaluate(pipeline, items, progress=not args.quiet)
        scores, labels, missing = collect_scores(rows)
        if not scores:
            print("error: no item has an answerability score (answer.answerability is null): the answer engine "
                  "does not report one yet, so there is nothing to calibrate; nothing written", file=sys.stderr)
            return 1
        cal = choose_threshold(scores, labels)
        before, _, _ = balanced_accuracy(scores, labels, settings.answerable_threshold)
        write_threshold(args.out_settings, cal, {
            "dataset": str(args.dataset), "dataset_sha256": file_sha256(args.dataset), "items_scored": len(scores),
            "items_without_score": missing, "previous_threshold": settings.answerable_threshold,
            "previous_balanced_accuracy": round(before, 4),
            "embedder": pipeline.embedder.name, "engine": settings.answer_engine})
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"answerable_threshold = {round(cal.threshold, 6)}: balanced accuracy {cal.balanced_accuracy:.3f} "
          f"(answerable kept {cal.true_positive_rate:.3f} of {cal.n_answerable}, unanswerable caught "
          f"{cal.true_negative_rate:.3f} of {cal.n_unanswerable}); was {settings.answerable_threshold} "
          f"({before:.3f}); {missing} items without a score")
    print(f"wrote {args.out_settings}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
