"""A run's report: report.md (PNG figures beside it) and a self-contained report.html (figures inlined as base64).

Contents: the headline table with intervals, per-category metrics and bars, the answerability signal for
answerable vs unanswerable items with the threshold marked, a latency histogram, and the worst failures quoted
in full. Both files are rendered from one list of blocks so they never disagree. "No score" shows as "n/a".
"""
from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from .metrics import HEADLINE, STAGES, BY_KEY, judge, lookup, value_of, worst

CATEGORY_BARS = ("retrieval.hit@5", "retrieval.mrr@10", "answer.must_include_recall", "answer.citation_precision",
                 "answer.refusal_accuracy")
CATEGORY_COLUMNS = ("retrieval.hit@1", "retrieval.hit@5", "retrieval.mrr@10", "retrieval.evidence_recall@5",
                    "answer.must_include_recall", "answer.citation_precision", "answer.refusal_accuracy",
                    "answer.false_refusal_rate", "answer.script_match")
WORST_N = 10


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Figure:
    file: str
    alt: str
    png: bytes


@dataclass(frozen=True)
class Quote:
    label: str
    text: str


Block = Heading | Para | Table | Figure | Quote


def fmt(value: Any, digits: int = 3) -> str:
    """A number for the report: 'n/a' for a missing or NaN score, never 0."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and digits == 0):
        return str(int(value))
    return f"{value:.{digits}f}"


def fmt_entry(entry: Mapping[str, Any] | None, digits: int = 3) -> tuple[str, str, str]:
    """(value, '[lo, hi]', n) of a metrics entry."""
    if not entry or entry.get("value") is None:
        return "n/a", "n/a", str((entry or {}).get("n", 0))
    lo, hi = entry.get("ci95") or (None, None)
    return fmt(entry["value"], digits), f"[{fmt(lo, digits)}, {fmt(hi, digits)}]", str(entry.get("n", 0))


def _digits(key: str) -> int:
    return 1 if key.startswith("latency_ms") else (0 if BY_KEY[key].kind == "sum" else 3)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def category_figure(metrics: Mapping[str, Any]) -> bytes:
    """Grouped horizontal bars: a few metrics per category (a missing score has no bar and reads 'n/a')."""
    plt = _pyplot()
    cats = list(metrics.get("by_category", {}))
    keys = list(CATEGORY_BARS)
    height = 0.8 / len(keys)
    fig, ax = plt.subplots(figsize=(8, 1.0 + 0.12 * max(len(cats), 1) * len(keys)))
    for j, key in enumerate(keys):
        ys = [i + j * height for i in range(len(cats))]
        vals = [value_of(metrics["by_category"][c], key) for c in cats]
        ax.barh(ys, [0 if math.isnan(v) else v for v in vals], height=height, label=key)
        for y, v in zip(ys, vals):
            if math.isnan(v):
                ax.text(0.01, y, "n/a", va="center", fontsize=6, color="grey")
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(cats))], cats)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("score")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("metrics by category")
    return _png(fig)


def answerability_figure(rows: Sequence[Mapping[str, Any]], threshold: float | None) -> bytes:
    """Histograms of answerability.score for answerable vs unanswerable items, the threshold as a line."""
    plt = _pyplot()
    groups: dict[bool, list[float]] = {True: [], False: []}
    for r in rows:
        a = r.get("answerability") or {}
        if isinstance(a.get("score"), (int, float)):
            groups[bool((r.get("item") or {}).get("answerable"))].append(float(a["score"]))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    if not groups[True] and not groups[False]:
        ax.text(0.5, 0.5, "no answerability scores in this run\n(no answer engine yet)", ha="center", va="center")
        ax.set_axis_off()
        return _png(fig)
    scores = groups[True] + groups[False]
    lo, hi = min(scores + [threshold or 0.0]), max(scores + [threshold or 1.0])
    bins = [lo + (hi - lo) * i / 30 for i in range(31)] if hi > lo else 10
    ax.hist(groups[True], bins=bins, alpha=0.6, label=f"answerable (n={len(groups[True])})", color="tab:green")
    ax.hist(groups[False], bins=bins, alpha=0.6, label=f"unanswerable (n={len(groups[False])})", color="tab:red")
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", label=f"answerable_threshold = {threshold:g}")
    ax.set_xlabel("answerability.score (higher = more answerable)")
    ax.set_ylabel("items")
    ax.legend(fontsize=8)
    return _png(fig)


def latency_figure(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Histogram of per-item latency by stage (rows without error)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    series = {}
    for stage in STAGES:
        vals = [float(r["timings_ms"][stage]) for r in rows
                if not r.get("error") and isinstance((r.get("timings_ms") or {}).get(stage), (int, float))]
        if vals and max(vals) > 0:  # a stage that never takes time (no answer engine) is left out
            series[stage] = vals
    if series:
        top = max(max(v) for v in series.values())
        bins = [top * i / 40 for i in range(41)]
        for stage, vals in series.items():
            ax.hist(vals, bins=bins, alpha=0.5, label=f"{stage} (n={len(vals)})")
    else:
        ax.text(0.5, 0.5, "no timings", ha="center", va="center")
        ax.set_axis_off()
        return _png(fig)
    ax.set_xlabel("ms")
    ax.set_ylabel("items")
    ax.legend(fontsize=8)
    return _png(fig)


def _citations_text(row: Mapping[str, Any]) -> str:
    cits = row.get("citations") or []
    if not cits:
        return "(none)"
    return "\n".join(f"[{c.get('n')}] quote: {c.get('quote')}\n    passage: {c.get('text')}" for c in cits)


def _hits_text(row: Mapping[str, Any], n: int = 3) -> str:
    hits = row.get("ranking") or row.get("hits") or []
    return "\n".join(f"{h.get('rank')}. {h.get('text')}" for h in hits[:n]) or "(none)"


def failure_blocks(rows: Sequence[Mapping[str, Any]], n: int = WORST_N) -> list[Block]:
    """The n worst items, each quoted in full: question, expected, answer, citations (and hits when uncited)."""
    by_id = {r.get("id"): r for r in rows}
    picked = worst([judge(r) for r in rows], n)
    if not picked:
        return [Para("No failures.")]
    out: list[Block] = []
    for i, (v, descriptions) in enumerate(picked, 1):
        row = by_id[v.id]
        item = row.get("item") or {}
        out.append(Heading(3, f"{i}. {v.id} · {v.category} · expected {v.expected_behavior or '?'}"))
        out.append(Para("Problems: " + "; ".join(descriptions)))
        out.append(Quote("Question", str(row.get("question") or item.get("question") or "")))
        if item.get("history"):
            out.append(Quote("History", "\n".join(f"user: {u}\nassistant: {a}" for u, a in item["history"])))
        expected = [f"behaviour: {item.get('expected_behavior')} (answerable: {item.get('answerable')})",
                    f"reference answer: {item.get('reference_answer') or '(none)'}",
                    f"gold evidence: {' | '.join(item.get('gold_evidence') or []) or '(none)'}",
                    f"must include: {', '.join(item.get('must_include') or []) or '(none)'}",
                    f"must not include: {', '.join(item.get('must_not_include') or []) or '(none)'}"]
        out.append(Quote("Expected", "\n".join(expected)))
        if row.get("error"):
            out.append(Quote("Error", str(row["error"])))
        answer = row.get("answer")
        shown = "n/a (no answer)" if answer is None else answer
        if row.get("refused"):
            shown = f"(refused) {shown}"
        out.append(Quote("Answer", shown))
        out.append(Quote("Citations", _citations_text(row)))
        if not row.get("citations"):
            out.append(Quote("Top hits", _hits_text(row)))
    return out


def build_blocks(rows: Sequence[Mapping[str, Any]], metrics: Mapping[str, Any]) -> list[Block]:
    """The whole report as blocks."""
    cfg = metrics.get("config", {})
    settings = cfg.get("settings", {})
    c = metrics.get("counts", {})
    blocks: list[Block] = [Heading(1, "Evaluation report")]
    blocks.append(Para(
        f"{c.get('items')} items ({c.get('answerable')} answerable, {c.get('unanswerable')} not), "
        f"{c.get('answered')} answered, {c.get('errors')} errors · embedder {cfg.get('embedder')} · "
        f"engine {cfg.get('engine')} · settings {cfg.get('settings_fingerprint')} · commit "
        f"{cfg.get('git_commit') or 'unknown'} · dataset {cfg.get('dataset')} (sha256 "
        f"{str(cfg.get('dataset_sha256'))[:12]}) · {cfg.get('started_at')}"))
    blocks.append(Heading(2, "Headline"))
    blocks.append(Para("Values with a 95% bootstrap interval over items (1000 resamples, fixed seed); "
                       "n = items counted; n/a = no score (nothing to count)."))
    head_rows = []
    for key in HEADLINE:
        value, ci, n = fmt_entry(lookup(metrics, key), _digits(key))
        head_rows.append((key, value, ci, n, BY_KEY[key].better))
    blocks.append(Table(("metric", "value", "95% CI", "n", "better"), tuple(head_rows)))

    blocks.append(Heading(2, "By category"))
    cat_rows = []
    for cat, m in metrics.get("by_category", {}).items():
        cc = m.get("counts", {})
        cat_rows.append((cat, str(cc.get("items")), str(cc.get("answerable")),
                         *(fmt(value_of(m, k)) for k in CATEGORY_COLUMNS)))
    blocks.append(Table(("category", "items", "answerable", *(k.split(".")[1] for k in CATEGORY_COLUMNS)),
                        tuple(cat_rows)))
    blocks.append(Figure("category_bars.png", "metrics by category", category_figure(metrics)))

    threshold = settings.get("answerable_threshold")
    blocks.append(Heading(2, "Answerability signal"))
    blocks.append(Para(f"answer.answerability.score for answerable vs unanswerable items; dashed line: "
                       f"answerable_threshold = {threshold}."))
    blocks.append(Figure("answerability.png", "answerability score distribution",
                         answerability_figure(rows, threshold)))

    blocks.append(Heading(2, "Latency"))
    lat_rows = []
    for stage in STAGES:
        p50, ci50, n = fmt_entry(lookup(metrics, f"latency_ms.{stage}.p50"), 1)
        p95, ci95, _ = fmt_entry(lookup(metrics, f"latency_ms.{stage}.p95"), 1)
        lat_rows.append((stage, p50, ci50, p95, ci95, n))
    blocks.append(Table(("stage", "p50 ms", "p50 95% CI", "p95 ms", "p95 95% CI", "n"), tuple(lat_rows)))
    blocks.append(Figure("latency.png", "latency histogram", latency_figure(rows)))

    blocks.append(Heading(2, f"Worst failures (up to {WORST_N})"))
    blocks.extend(failure_blocks(rows))

    warnings = cfg.get("dataset_warnings") or []
    if warnings:
        blocks.append(Heading(2, "Dataset warnings"))
        blocks.append(Quote("Warnings", "\n".join(warnings)))
    blocks.append(Heading(2, "Config"))
    blocks.append(Table(("setting", "value"), tuple((k, str(v)) for k, v in settings.items())))
    return blocks


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: Sequence[Block]) -> str:
    """Markdown with figures referenced as PNG files beside it."""
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {b.text}\n")
        elif isinstance(b, Para):
            out.append(f"{b.text}\n")
        elif isinstance(b, Table):
            out.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
            out.append("|" + "---|" * len(b.header))
            out.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows)
            out.append("")
        elif isinstance(b, Figure):
            out.append(f"![{b.alt}]({b.file})\n")
        elif isinstance(b, Quote):
            out.append(f"**{b.label}:**\n")
            out.extend(f"> {line}  " if line else ">" for line in b.text.splitlines() or [""])
            out.append("")
    return "\n".join(out)


_CSS = ("body{font-family:system-ui,'Noto Sans CJK SC',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
        "blockquote{white-space:pre-wrap;border-left:3px solid #ccc;margin:.2em 0 .8em;padding-left:.8em}"
        "img{max-width:100%}")


def render_html(blocks: Sequence[Block]) -> str:
    """One self-contained HTML page: every figure inlined as a base64 PNG."""
    e = html.escape
    out = ["<!doctype html>", "<html lang=\"zh\"><head><meta charset=\"utf-8\"><title>Evaluation report</title>",
           f"<style>{_CSS}</style></head><body>"]
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{e(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            out.append(f"<p>{e(b.text)}</p>")
        elif isinstance(b, Table):
            out.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in b.header) + "</tr>")
            out.extend("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in b.rows)
            out.append("</table>")
        elif isinstance(b, Figure):
            data = base64.b64encode(b.png).decode("ascii")
            out.append(f"<p><img alt=\"{e(b.alt)}\" src=\"data:image/png;base64,{data}\"></p>")
        elif isinstance(b, Quote):
            out.append(f"<p><b>{e(b.label)}:</b></p><blockquote>{e(b.text)}</blockquote>")
    out.append("</body></html>")
    return "\n".join(out)


def write_report(out_dir: str | Path, rows: Sequence[Mapping[str, Any]],
                 metrics: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write report.md, its PNG figures and report.html into out_dir; returns (md path, html path)."""
    out_dir = Path(out_dir)
    blocks = build_blocks(rows, metrics)
    for b in blocks:
        if isinstance(b, Figure):
            (out_dir / b.file).write_bytes(b.png)
    md, page = out_dir / "report.md", out_dir / "report.html"
    md.write_text(render_markdown(blocks), encoding="utf-8")
    page.write_text(render_html(blocks), encoding="utf-8")
    return md, page
