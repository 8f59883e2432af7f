"""`python -m eval.compare DIR_A DIR_B [--tolerance 0.02]`: every metric of two runs side by side, B against A.

Both runs' results.jsonl are scored again (eval.metrics.judge) on the items they share (by id), so a delta and its
interval come from the same items: delta = B − A, with a paired bootstrap 95% interval (both runs resampled
together; 1000 resamples, fixed seed); "excludes 0" says whether that interval lies wholly above or below zero.

Exit code 1 on a regression, 0 otherwise (2 when a run folder is unusable). A regression is a gated metric that
moves the wrong way by more than the tolerance (higher-is-better dropping, lower-is-better rising), or one that
had a score in A and has none in B. Counts and latencies are shown but not gated; latencies are gated only with
--latency-tolerance, a relative rise (0.5 = p50/p95 more than 50% slower).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import EvalError
from .metrics import HIGHER, METRICS, RESAMPLES, SEED, arrays, judge, paired_delta, statistic


@dataclass(frozen=True)
class Delta:
    """One metric of two runs on their shared items."""

    key: str
    better: str
    a: float
    b: float
    delta: float
    ci95: tuple[float, float]
    status: str  # regression | improved | ok | new | n/a

    @property
    def excludes_zero(self) -> bool | None:
        lo, hi = self.ci95
        if math.isnan(lo) or math.isnan(hi):
            return None
        return lo > 0 or hi < 0


@dataclass(frozen=True)
class Comparison:
    """All metrics compared, with the items both runs share and those only one has."""

    deltas: tuple[Delta, ...]
    shared: int
    only_a: tuple[str, ...]
    only_b: tuple[str, ...]
    tolerance: float

    @property
    def regressions(self) -> tuple[Delta, ...]:
        return tuple(d for d in self.deltas if d.status == "regression")


def load_results(run_dir: str | Path) -> list[dict]:
    """The rows of a run folder's results.jsonl."""
    path = Path(run_dir) / "results.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvalError(f"cannot read {path} ({exc}); pass a folder written by `python -m eval.run`") from None


def _status(better: str, gated: bool, a: float, b: float, tolerance: float, relative: bool) -> str:
    if math.isnan(a) and math.isnan(b):
        return "n/a"
    if math.isnan(b):
        return "regression" if gated else "n/a"
    if math.isnan(a):
        return "new"
    allowed = tolerance * abs(a) if relative else tolerance
    worse = (a - b) if better == HIGHER else (b - a)
    if gated and worse > allowed + 1e-12:
        return "regression"
    if worse < -allowed - 1e-12:
        return "improved"
    return "ok"


def compare(rows_a: Sequence[Mapping[str, Any]], rows_b: Sequence[Mapping[str, Any]], *, tolerance: float = 0.02,
            latency_tolerance: float | None = None, seed: int = SEED, resamples: int = RESAMPLES) -> Comparison:
    """Every metric on the items shared by both runs: values, B − A, paired 95% interval and status."""
    by_a = {r.get("id"): r for r in rows_a}
    by_b = {r.get("id"): r for r in rows_b}
    shared = [i for i in by_a if i in by_b]
    if not shared:
        raise EvalError("the two runs share no item ids; compare runs of the same dataset")
    data_a = arrays([judge(by_a[i]) for i in shared])
    data_b = arrays([judge(by_b[i]) for i in shared])
    deltas = []
    for m in METRICS:
        a = float(statistic(m.kind, *data_a[m.key]))
        b = float(statistic(m.kind, *data_b[m.key]))
        delta, ci = paired_delta(m.kind, data_a[m.key], data_b[m.key], seed=seed, resamples=resamples)
        is_latency = m.key.startswith("latency_ms.")
        gated = m.gated or (is_latency and latency_tolerance is not None)
        tol = latency_tolerance if is_latency and latency_tolerance is not None else tolerance
        deltas.append(Delta(m.key, m.better, a, b, delta, ci, _status(m.better, gated, a, b, tol, is_latency)))
    return Comparison(tuple(deltas), len(shared), tuple(str(i) for i in by_a if i not in by_b),
                      tuple(str(i) for i in by_b if i not in by_a), tolerance)


def _f(x: float, digits: int) -> str:
    return "n/a" if math.isnan(x) else f"{x:.{digits}f}"


def render(c: Comparison) -> str:
    """A plain-text table of the comparison."""
    lines = [f"{'metric':34s} {'A':>9s} {'B':>9s} {'B-A':>9s} {'95% CI of B-A':>21s} {'excl. 0':>7s}  status"]
    for d in c.deltas:
        digits = 1 if d.key.startswith("latency_ms.") else 3
        sign = "" if math.isnan(d.delta) else "+" if d.delta >= 0 else ""
        ci = "n/a" if math.isnan(d.ci95[0]) else f"[{d.ci95[0]:+.{digits}f}, {d.ci95[1]:+.{digits}f}]"
        excl = {None: "n/a", True: "yes", False: "no"}[d.excludes_zero]
        lines.append(f"{d.key:34s} {_f(d.a, digits):>9s} {_f(d.b, digits):>9s} "
                     f"{sign + _f(d.delta, digits):>9s} {ci:>21s} {excl:>7s}  {d.status}")
    lines.append(f"{c.shared} shared items" + (f"; only in A: {len(c.only_a)}" if c.only_a else "")
                 + (f"; only in B: {len(c.only_b)}" if c.only_b else "") + f"; tolerance {c.tolerance}")
    return "\n".join(lines)


def settings_diff(dir_a: str | Path, dir_b: str | Path) -> list[str]:
    """Settings (and embedder/engine) that differ between the two runs' metrics.json, as 'key: a → b'."""
    def config(d: str | Path) -> dict:
        try:
            cfg = json.loads((Path(d) / "metrics.json").read_text(encoding="utf-8")).get("config", {})
        except (OSError, ValueError):
            return {}
        return {**cfg.get("settings", {}), "embedder": cfg.get("embedder"), "engine": cfg.get("engine"),
                "dataset_sha256": cfg.get("dataset_sha256"), "git_commit": cfg.get("git_commit")}

    a, b = config(dir_a), config(dir_b)
    return [f"{k}: {a.get(k)!r} → {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.compare",
                                     description="Compare two evaluation runs (B against A).")
    parser.add_argument("dir_a", help="baseline run folder")
    parser.add_argument("dir_b", help="candidate run folder")
    parser.add_argument("--tolerance", type=float, default=0.02, help="allowed absolute drop of a gated metric")
    parser.add_argument("--latency-tolerance", type=float, default=None,
                        help="also gate latency: allowed relative rise (0.5 = +50%%); off by default")
    args = parser.parse_args(argv)
    try:
        c = compare(load_results(args.dir_a), load_results(args.dir_b), tolerance=args.tolerance,
                    latency_tolerance=args.latency_tolerance)
    except EvalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render(c))
    diff = settings_diff(args.dir_a, args.dir_b)
    if diff:
        print("differences in config:\n  " + "\n  ".join(diff))
    if c.regressions:
        print(f"REGRESSION in {len(c.regressions)} metric(s): {', '.join(d.key for d in c.regressions)}")
        return 1
    print("no regression")
    return 0


if __name__ == "__main__":
    sys.exit(main())
