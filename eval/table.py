"""`python -m eval.table RUN_DIR [RUN_DIR ...] [--by category|voice]`: the headline figures of evaluation runs as a
Markdown table, the engine beside the passage baseline (quote the top retrieved passage, never refuse), with 95%
intervals. Reads only each run's metrics.json (aggregates), never its items."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .metrics import lookup

COLUMNS = (("retrieval.hit@1", "hit@1"), ("answer.must_include_recall", "must-include"),
           ("answer.citation_precision", "citation precision"), ("answer.refusal_accuracy", "refusal accuracy"),
           ("answer.false_refusal_rate", "false refusals"))
CMRC_COLUMNS = (("retrieval.doc_hit@1", "doc hit@1"), ("answer.contains_answer", "contains a gold span"),
                ("answer.false_refusal_rate", "refusals"), ("answer.length_chars", "mean answer chars"))


def cell(metrics: dict, key: str, interval: bool = True) -> str:
    entry = lookup(metrics, key)
    if not entry or entry.get("value") is None:
        return "n/a"
    digits = 1 if key.endswith("length_chars") else 2
    value = f"{entry['value']:.{digits}f}"
    lo, hi = entry.get("ci95") or (None, None)
    return f"{value} [{lo:.{digits}f}, {hi:.{digits}f}]" if interval and lo is not None else value


def rows(name: str, metrics: dict, columns) -> list[str]:
    n = metrics.get("counts", {}).get("items", "?")
    engine = [cell(metrics, k) for k, _ in columns]
    base = metrics.get("baseline") or {}
    baseline = [cell(base, k, interval=False) for k, _ in columns]
    return [f"| {name} ({n}) | engine | " + " | ".join(engine) + " |",
            f"| | passage baseline | " + " | ".join(baseline) + " |"]


def table(runs: list[Path], by: str | None = None) -> str:
    out = []
    for run in runs:
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        cmrc = lookup(metrics, "answer.contains_answer") and (lookup(metrics, "answer.contains_answer") or {}).get("n")
        columns = CMRC_COLUMNS if cmrc else COLUMNS
        if not out or by:
            out += ["", f"| set | answered by | {' | '.join(label for _, label in columns)} |",
                    "|---|---|" + "---|" * len(columns)]
        if by:
            for group, m in sorted((metrics.get(f"by_{by}") or {}).items()):
                m = dict(m, baseline=((metrics.get("baseline") or {}).get(f"by_{by}") or {}).get(group, {}))
                out += rows(f"{run.name} · {group}", m, columns)
        else:
            out += rows(run.name, metrics, columns)
    return "\n".join(out).strip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.table", description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders written by eval.run")
    parser.add_argument("--by", choices=("category", "voice"), help="one row per category or voice")
    args = parser.parse_args(argv)
    print(table([Path(r) for r in args.runs], args.by))
    return 0


if __name__ == "__main__":
    sys.exit(main())
