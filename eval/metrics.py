"""Evaluation metrics: pure arithmetic on result rows (no I/O, no pipeline).

Matching rule
    Both sides are normalised with `rag.text.normalize` (OpenCC t2s, NFKC, lower case, all whitespace removed).
    A text (a retrieved chunk, a cited passage, a quote, an answer) *contains* an evidence string or a term when
    the normalised string is a substring of the normalised text.

Which items count
    Retrieval and answer metrics count answerable items only (`answerable == true`); retrieval ones also need at
    least one gold evidence string. An item *has an answer* when its row has answer text or `refused == true`;
    answer metrics count only items with an answer, so a run without an answer engine scores them NaN ("n/a"),
    never 0. A row whose pipeline call failed (`error`) has no hits (a retrieval miss) and no answer; errors
    are counted on their own.

Retrieval (the ranking is the pipeline's hits, extended to depth 10 by the runner; `hits` when absent)
    hit@k               some gold evidence is contained in one of the top-k hits' text; mean over items.
    mrr@10              1 / rank of the first hit containing any gold evidence, 0 when none in the top 10.
    evidence_recall@5   share of an item's gold evidence strings contained in some top-5 hit; mean over items.
    doc_hit@1           items with a `doc_id`: the top hit comes from that document.
Answer (answerable items with an answer, unless said otherwise)
    answered_rate          share of all items that have an answer (coverage; 0 without an answer engine).
    must_include_recall    share of must_include terms contained in the answer text (the answer text only,
                           never the quotes), pooled over the terms of all counted items.
    all_terms_rate         share of items with must_include terms whose answer contains every one of them.
    citation_precision     share of citations whose passage (`text`) contains some gold evidence; pooled.
    quote_precision        the same for the citation's `quote` (the quoted sentence); pooled.
    citation_recall        share of gold evidence strings contained in some cited passage; pooled.
    refusal_accuracy       share of non-answerable items (with an answer) that were refused.
    false_refusal_rate     share of answerable items (with an answer) that were refused.        lower is better
    must_not_violations    number of items (all items with answer text) whose answer contains a
                           must_not_include term that is not in the normalised question: an echo of the
                           question is not an invention.                                          lower is better
    must_not_violation_rate  the same as a share of those items.                                 lower is better
    contains_answer        items with `answers_any` (outside sets such as CMRC 2018): share whose answer text contains
                           one of those spans (citation markers removed from the answer, punctuation at the span's
                           ends ignored); a refusal counts as a miss, whatever its text quotes.
    length_chars           mean length of the answer text in characters (answered, non-refused items).   ungated
    script_match           share of items (all items with non-empty answer text) answered in the question's
                           script: detect_script(answer) == detect_script(question); for an English question
                           detect_script(first non-empty line of the answer) == 'en'.
Latency (rows without error)    latency_ms.<retrieve|answer|total>.<p50|p95>                 lower is better
Errors (all items)              errors.count, errors.rate                                     lower is better

Aggregation: each row gives every metric a (numerator, denominator) pair; the value is sum(num) / sum(den)
over the rows with den > 0 (a plain mean when den is 1), `n` is the number of those rows, and "no score" is NaN
with n = 0. Intervals: percentile bootstrap over items (1000 resamples, fixed seed); `paired_delta` resamples the
items shared by two runs together.
"""
from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from rag.text import detect_script, normalize

SEED = 20240611
RESAMPLES = 1000
RANK_DEPTH = 10
STAGES = ("retrieve", "answer", "total")
HIGHER, LOWER = "higher", "lower"


@dataclass(frozen=True)
class Metric:
    """One reported figure: its dotted key, which direction is better, how rows aggregate, whether compare gates it."""

    key: str
    better: str
    kind: str = "ratio"  # ratio: sum(num)/sum(den) | sum: sum(num) | p50, p95: percentile of num
    gated: bool = True  # compare/CI treat a move the wrong way as a regression


METRICS: tuple[Metric, ...] = (
    Metric("retrieval.hit@1", HIGHER),
    Metric("retrieval.hit@3", HIGHER),
    Metric("retrieval.hit@5", HIGHER),
    Metric("retrieval.mrr@10", HIGHER),
    Metric("retrieval.evidence_recall@5", HIGHER),
    Metric("retrieval.doc_hit@1", HIGHER),
    Metric("answer.answered_rate", HIGHER),
    Metric("answer.must_include_recall", HIGHER),
    Metric("answer.all_terms_rate", HIGHER),
    Metric("answer.citation_precision", HIGHER),
    Metric("answer.quote_precision", HIGHER),
    Metric("answer.citation_recall", HIGHER),
    Metric("answer.refusal_accuracy", HIGHER),
    Metric("answer.false_refusal_rate", LOWER),
    Metric("answer.must_not_violations", LOWER, "sum", gated=False),  # the rate below carries the gate
    Metric("answer.must_not_violation_rate", LOWER),
    Metric("answer.contains_answer", HIGHER),
    Metric("answer.length_chars", LOWER, gated=False),
    Metric("answer.script_match", HIGHER),
    *(Metric(f"latency_ms.{stage}.{q}", LOWER, q, gated=False) for stage in STAGES for q in ("p50", "p95")),
    Metric("errors.count", LOWER, "sum", gated=False),
    Metric("errors.rate", LOWER),
)
BY_KEY = {m.key: m for m in METRICS}
HEADLINE = tuple(m.key for m in METRICS if m.key.split(".")[0] in ("retrieval", "answer") or m.key == "errors.rate")


@dataclass(frozen=True)
class Stat:
    """A metric's value with its bootstrap 95% interval and the number of items behind it (NaN when n == 0)."""

    value: float
    ci95: tuple[float, float]
    n: int

    def to_json(self) -> dict[str, Any]:
        return {"value": json_number(self.value), "ci95": [json_number(self.ci95[0]), json_number(self.ci95[1])],
                "n": self.n}


@dataclass(frozen=True)
class Verdict:
    """What one result row got right and wrong, in the terms the metrics count."""

    id: str | None
    category: str
    answerable: bool
    expected_behavior: str
    error: str | None
    answered: bool  # answer text or a refusal
    has_text: bool  # answer text, possibly empty
    refused: bool
    n_gold: int
    first_hit_rank: int | None  # 1-based rank of the first hit containing gold evidence, within RANK_DEPTH
    evidence_found_at5: int  # gold strings contained in some top-5 hit
    must_include_found: tuple[str, ...]
    must_include_missing: tuple[str, ...]
    citations_supported: tuple[bool, ...]  # per citation: its passage contains some gold evidence
    quotes_supported: tuple[bool, ...]  # per citation: its quote contains some gold evidence
    evidence_cited: int  # gold strings contained in some cited passage
    must_not_found: tuple[str, ...]  # violations: in the answer, not in the question
    must_not_echoed: tuple[str, ...]  # in the answer and in the question: not counted
    question_script: str
    answer_script: str | None  # for an English question: the script of the answer's first line
    script_match: bool | None
    doc_hit1: bool | None = None  # the top hit's document is the item's `doc_id` (None: the item names none)
    contains_answer: bool | None = None  # the answer holds one of `answers_any` (None: the item has none)
    answer_chars: int | None = None  # length of a non-refused answer text
    voice: str = ""
    timings_ms: Mapping[str, float] = field(default_factory=dict)


def json_number(x: float | int | None) -> float | int | None:
    """A JSON-safe number: NaN and infinities become null."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return x


def contains(text: str | None, needle: str) -> bool:
    """The matching rule: normalised `needle` is a substring of normalised `text` (both via rag.text.normalize)."""
    return bool(text) and normalize(needle) in normalize(text)


_MARKERS = re.compile(r"\[\d{1,3}\]")
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")


def span_form(text: str) -> str:
    """The matching form of an answer span and of the text searched for it: normalised, citation markers removed,
    and (for a span) no punctuation at either end, as span-extraction benchmarks compare."""
    return _EDGE_PUNCT.sub("", normalize(_MARKERS.sub("", text or "")))


def first_line(text: str) -> str:
    """The first non-empty line of a text ('' when there is none)."""
    return next((line for line in text.splitlines() if line.strip()), "")


def judge(row: Mapping[str, Any]) -> Verdict:
    """Score one result row: `item` (the dataset line) plus the answer JSON, `ranking` and optional `error`."""
    item = row.get("item") or {}
    question = row.get("question") or item.get("question") or ""
    error = row.get("error")
    gold = [normalize(g) for g in item.get("gold_evidence") or [] if normalize(g)]
    ranking = [] if error else (row.get("ranking") or row.get("hits") or [])
    hit_texts = [normalize(h.get("text") or "") for h in ranking[:RANK_DEPTH]]
    first_hit = next((i for i, t in enumerate(hit_texts, 1) if any(g in t for g in gold)), None)
    found5 = sum(any(g in t for t in hit_texts[:5]) for g in gold)

    text = None if error else row.get("answer")
    refused = bool(row.get("refused")) and not error
    answer_norm = normalize(text or "")
    question_norm = normalize(question)
    terms = list(item.get("must_include") or [])
    found = tuple(t for t in terms if normalize(t) and normalize(t) in answer_norm)
    missing = tuple(t for t in terms if t not in found)

    citations = [] if error else list(row.get("citations") or [])
    passages = [normalize(c.get("text") or "") for c in citations]
    quotes = [normalize(c.get("quote") or "") for c in citations]
    cit_ok = tuple(any(g in p for g in gold) for p in passages)
    quote_ok = tuple(any(g in q for g in gold) for q in quotes)
    cited = sum(any(g in p for p in passages) for g in gold)

    violations, echoes = [], []
    for term in item.get("must_not_include") or []:
        t = normalize(term)
        if t and t in answer_norm:
            (echoes if t in question_norm else violations).append(term)

    q_script = detect_script(question) if question.strip() else ""
    a_script, match = None, None
    if text and text.strip() and q_script:
        a_script = detect_script(first_line(text)) if q_script == "en" else detect_script(text)
        match = a_script == q_script

    doc_id = item.get("doc_id")
    doc_hit1 = None if not doc_id else bool(ranking) and (ranking[0].get("doc_id") or _doc_of(ranking[0])) == doc_id
    spans = [span_form(a) for a in item.get("answers_any") or [] if span_form(a)]
    contains_answer = None if not spans else bool(text) and not refused and any(
        a in span_form(text) for a in spans)
    timings = row.get("timings_ms") or {}
    return Verdict(
        id=row.get("id"), category=str(item.get("category") or "uncategorised"),
        answerable=bool(item.get("answerable")), expected_behavior=str(item.get("expected_behavior") or ""),
        error=str(error) if error else None, answered=not error and (text is not None or refused),
        has_text=text is not None, refused=refused, n_gold=len(gold), first_hit_rank=first_hit,
        evidence_found_at5=found5, must_include_found=found, must_include_missing=missing,
        citations_supported=cit_ok, quotes_supported=quote_ok, evidence_cited=cited,
        must_not_found=tuple(violations), must_not_echoed=tuple(echoes), question_script=q_script,
        answer_script=a_script, script_match=match, doc_hit1=doc_hit1, contains_answer=contains_answer,
        answer_chars=len(text) if text and not refused else None, voice=str(item.get("voice") or ""),
        timings_ms={k: float(v) for k, v in timings.items() if isinstance(v, (int, float))} if not error else {},
    )


def _doc_of(hit: Mapping[str, Any]) -> str | None:
    """A hit's document id, from its chunk id ("doc:start-end:hash") when the row has no doc_id field."""
    chunk_id = hit.get("chunk_id") or ""
    return chunk_id.rsplit(":", 2)[0] if chunk_id.count(":") >= 2 else None


def contributions(v: Verdict) -> dict[str, tuple[float, float]]:
    """Each metric's (numerator, denominator) for one verdict; a metric the item does not count is absent."""
    out: dict[str, tuple[float, float]] = {}
    if v.answerable and v.n_gold:
        for k in (1, 3, 5):
            out[f"retrieval.hit@{k}"] = (float(v.first_hit_rank is not None and v.first_hit_rank <= k), 1.0)
        out["retrieval.mrr@10"] = (1.0 / v.first_hit_rank if v.first_hit_rank else 0.0, 1.0)
        out["retrieval.evidence_recall@5"] = (v.evidence_found_at5 / v.n_gold, 1.0)
    if v.doc_hit1 is not None:  # an error row is a miss, as for hit@k
        out["retrieval.doc_hit@1"] = (float(bool(v.doc_hit1) and not v.error), 1.0)
    out["answer.answered_rate"] = (float(v.answered), 1.0)
    if v.answered and v.answerable:
        n_terms = len(v.must_include_found) + len(v.must_include_missing)
        if n_terms:
            out["answer.must_include_recall"] = (float(len(v.must_include_found)), float(n_terms))
            out["answer.all_terms_rate"] = (float(not v.must_include_missing), 1.0)
        if v.n_gold and v.citations_supported:
            out["answer.citation_precision"] = (float(sum(v.citations_supported)), float(len(v.citations_supported)))
            out["answer.quote_precision"] = (float(sum(v.quotes_supported)), float(len(v.quotes_supported)))
        if v.n_gold:
            out["answer.citation_recall"] = (float(v.evidence_cited), float(v.n_gold))
        out["answer.false_refusal_rate"] = (float(v.refused), 1.0)
    if v.answered and v.contains_answer is not None:
        out["answer.contains_answer"] = (float(v.contains_answer), 1.0)
    if v.answer_chars is not None:
        out["answer.length_chars"] = (float(v.answer_chars), 1.0)
    if v.answered and not v.answerable:
        out["answer.refusal_accuracy"] = (float(v.refused), 1.0)
    if v.has_text:
        out["answer.must_not_violations"] = (float(bool(v.must_not_found)), 1.0)
        out["answer.must_not_violation_rate"] = (float(bool(v.must_not_found)), 1.0)
    if v.script_match is not None:
        out["answer.script_match"] = (float(v.script_match), 1.0)
    for stage in STAGES:
        if stage in v.timings_ms:
            out[f"latency_ms.{stage}.p50"] = out[f"latency_ms.{stage}.p95"] = (v.timings_ms[stage], 1.0)
    out["errors.count"] = out["errors.rate"] = (float(v.error is not None), 1.0)
    return out


def arrays(verdicts: Sequence[Verdict]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per metric, the (num, den) arrays over the verdicts, den 0 where an item does not count."""
    parts = [contributions(v) for v in verdicts]
    out = {}
    for m in METRICS:
        pairs = [p.get(m.key, (0.0, 0.0)) for p in parts]
        out[m.key] = (np.array([a for a, _ in pairs], dtype=float).reshape(-1),
                      np.array([b for _, b in pairs], dtype=float).reshape(-1))
    return out


def statistic(kind: str, num: np.ndarray, den: np.ndarray) -> np.ndarray | float:
    """A metric's value over the last axis: works on one row of items or on a (resamples, items) matrix."""
    counted = den > 0
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        if kind == "ratio":
            total = den.sum(axis=-1)
            return np.where(total > 0, num.sum(axis=-1) / np.where(total > 0, total, 1.0), np.nan)
        if kind == "sum":
            return np.where(counted.any(axis=-1), np.where(counted, num, 0.0).sum(axis=-1), np.nan)
        return masked_percentile(num, counted, {"p50": 50.0, "p95": 95.0}[kind])


def masked_percentile(values: np.ndarray, mask: np.ndarray, q: float) -> np.ndarray | float:
    """np.percentile (linear interpolation) of the masked-in values along the last axis; NaN where none are.

    Vectorised over rows, unlike np.nanpercentile, which loops over a (resamples, items) matrix row by row.
    """
    ordered = np.sort(np.where(mask, values, np.inf), axis=-1)  # masked-out values sort to the end
    k = mask.sum(axis=-1)
    pos = np.maximum(k - 1, 0) * (q / 100.0)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, np.maximum(k - 1, 0))
    a = np.take_along_axis(ordered, np.asarray(lo)[..., None], axis=-1)[..., 0]
    b = np.take_along_axis(ordered, np.asarray(hi)[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore"):  # inf - inf in rows with nothing masked in: those become NaN
        out = np.where(k > 0, a + (b - a) * (pos - lo), np.nan)
    return float(out) if out.ndim == 0 else out


def _resample_index(n: int, seed: int, resamples: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _interval(samples: np.ndarray) -> tuple[float, float]:
    samples = samples[np.isfinite(samples)]
    if not samples.size:
        return (math.nan, math.nan)
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return (float(lo), float(hi))


def bootstrap(kind: str, num: np.ndarray, den: np.ndarray, *, seed: int = SEED, resamples: int = RESAMPLES) -> Stat:
    """The value and a percentile-bootstrap 95% interval, resampling items with replacement."""
    n = int((den > 0).sum())
    if n == 0:
        return Stat(math.nan, (math.nan, math.nan), 0)
    value = float(statistic(kind, num, den))
    idx = _resample_index(len(num), seed, resamples)
    return Stat(value, _interval(np.asarray(statistic(kind, num[idx], den[idx]), dtype=float)), n)


def paired_delta(kind: str, a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], *,
                 seed: int = SEED, resamples: int = RESAMPLES) -> tuple[float, tuple[float, float]]:
    """B − A on items aligned by position, with a paired bootstrap 95% interval (both runs resampled together)."""
    (num_a, den_a), (num_b, den_b) = a, b
    if len(num_a) != len(num_b):
        raise ValueError(f"paired arrays differ in length ({len(num_a)} vs {len(num_b)}); align items by id first")
    delta = float(statistic(kind, num_b, den_b)) - float(statistic(kind, num_a, den_a))
    if not len(num_a) or not math.isfinite(delta):
        return delta, (math.nan, math.nan)
    idx = _resample_index(len(num_a), seed, resamples)
    diffs = np.asarray(statistic(kind, num_b[idx], den_b[idx]), dtype=float) - np.asarray(
        statistic(kind, num_a[idx], den_a[idx]), dtype=float)
    return delta, _interval(diffs)


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{"a.b.c": x} → {"a": {"b": {"c": x}}}."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def lookup(metrics: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    """The {"value", "ci95", "n"} entry of a dotted key in a nested metrics dict (None when absent)."""
    node: Any = metrics
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, Mapping) and "value" in node else None


def value_of(metrics: Mapping[str, Any], key: str) -> float:
    """A metric's value from a nested metrics dict; NaN when absent or null."""
    entry = lookup(metrics, key)
    v = None if entry is None else entry.get("value")
    return math.nan if v is None else float(v)


def counts(verdicts: Sequence[Verdict]) -> dict[str, int]:
    """How many items, answerable and not, answered, errored."""
    return {"items": len(verdicts), "answerable": sum(v.answerable for v in verdicts),
            "unanswerable": sum(not v.answerable for v in verdicts), "answered": sum(v.answered for v in verdicts),
            "errors": sum(v.error is not None for v in verdicts)}


def score(verdicts: Sequence[Verdict], *, seed: int = SEED, resamples: int = RESAMPLES) -> dict[str, Any]:
    """Every metric of METRICS with its interval, nested by group, plus item counts."""
    data = arrays(verdicts)
    flat = {m.key: bootstrap(m.kind, *data[m.key], seed=seed, resamples=resamples).to_json() for m in METRICS}
    return nest(flat) | {"counts": counts(verdicts)}


def summarize(rows: Iterable[Mapping[str, Any]], *, seed: int = SEED, resamples: int = RESAMPLES) -> dict[str, Any]:
    """The metrics of a run: every metric overall and by category (config is added by the runner)."""
    rows = list(rows)
    verdicts = [judge(r) for r in rows]
    if not verdicts:
        raise ValueError("no result rows to score; the dataset is empty")
    out = score(verdicts, seed=seed, resamples=resamples)
    out["error_ids"] = [v.id for v in verdicts if v.error]
    out["by_category"] = {cat: score([v for v in verdicts if v.category == cat], seed=seed, resamples=resamples)
                          for cat in sorted({v.category for v in verdicts})}
    llm = llm_summary(rows)
    if llm is not None:
        out["llm"] = llm
    voices = sorted({v.voice for v in verdicts if v.voice})
    if voices:
        out["by_voice"] = {voice: score([v for v in verdicts if v.voice == voice], seed=seed, resamples=resamples)
                           for voice in voices}
    return out


def llm_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """For a run with an LLM engine: the share of answers kept from the LLM, the fallbacks by reason, the claims
    dropped, the "not covered" answers overridden (questions judged answerable), latency. None without an LLM."""
    asked = [r for r in rows if not r.get("error") and r.get("verification")]
    if not asked:
        return None
    kept = [r for r in asked if (r["verification"] or {}).get("outcome") == "accepted"]
    reasons: dict[str, int] = {}
    for r in asked:
        v = r["verification"] or {}
        if v.get("outcome") != "accepted":
            reason = re.sub(r"“[^”]*”|\b[0-9.]+\b|[0-9]+", "…", str(v.get("reason") or r.get("notice") or "unknown"))
            reasons[reason[:120]] = reasons.get(reason[:120], 0) + 1
    claims = [c for r in asked for c in (r["verification"] or {}).get("claims") or []]
    totals = sorted(float((r.get("timings_ms") or {}).get("total", 0.0)) for r in asked)
    pick = lambda q: totals[min(len(totals) - 1, int(round(q * (len(totals) - 1))))]  # noqa: E731
    return {"asked": len(asked), "kept_from_llm": len(kept), "kept_share": round(len(kept) / len(asked), 4),
            "fallbacks_by_reason": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
            "claims": len(claims), "claims_dropped": sum(c.get("action") == "dropped" for c in claims),
            "claims_cited_by_verification": sum(c.get("action") == "cited" for c in claims),
            "not_covered_overridden": sum("does not cover an answerable" in str((r["verification"] or {}).get("reason"))
                                          for r in asked),
            "latency_ms": {"p50": round(pick(0.5), 1), "p95": round(pick(0.95), 1)}}


def passage_baseline(row: Mapping[str, Any]) -> dict[str, Any]:
    """The same row answered by the simple baseline: quote the top retrieved passage verbatim, never refuse."""
    hits = [] if row.get("error") else list(row.get("hits") or [])
    out = dict(row)
    out["engine"] = "passage"
    out["refused"] = False
    if not hits:
        out["answer"], out["citations"] = None, []
        return out
    top = hits[0]
    out["answer"] = top.get("text") or ""
    out["citations"] = [{"n": 1, "chunk_id": top.get("chunk_id"), "doc_id": top.get("doc_id"),
                         "paragraph": top.get("paragraph"), "start": top.get("start"), "end": top.get("end"),
                         "text": top.get("text"), "quote": top.get("text")}]
    return out


def problems(v: Verdict) -> list[tuple[float, str]]:
    """(weight, description) of what went wrong with one item, worst first; empty when nothing did."""
    out: list[tuple[float, str]] = []
    if v.error:
        out.append((100.0, f"error: {v.error}"))
    if v.must_not_found:
        out.append((50.0, f"says a forbidden term: {', '.join(v.must_not_found)}"))
    if v.answered and not v.answerable and not v.refused:
        out.append((40.0, f"answered a question it should decline ({v.expected_behavior})"))
    if v.answered and v.answerable and v.refused:
        out.append((30.0, "refused an answerable question"))
    if v.answerable and v.n_gold and not v.error and (v.first_hit_rank is None or v.first_hit_rank > 5):
        where = "in the top 10" if v.first_hit_rank is None else f"first at rank {v.first_hit_rank}"
        out.append((20.0, f"no gold evidence in the top 5 hits ({where})"))
    if v.script_match is False:
        out.append((15.0, f"answer script {v.answer_script} for a {v.question_script} question"))
    if v.answered and v.answerable and v.must_include_missing:
        share = len(v.must_include_missing) / (len(v.must_include_missing) + len(v.must_include_found))
        out.append((10.0 * share, f"missing terms: {', '.join(v.must_include_missing)}"))
    if v.answered and v.answerable and v.n_gold and v.citations_supported and not all(v.citations_supported):
        bad = v.citations_supported.count(False)
        out.append((5.0 * bad / len(v.citations_supported),
                    f"{bad} of {len(v.citations_supported)} citations hold no gold evidence"))
    return sorted(out, key=lambda p: -p[0])


def worst(verdicts: Sequence[Verdict], n: int = 10) -> list[tuple[Verdict, list[str]]]:
    """The n items with the heaviest problems (ties by id), each with its problem descriptions."""
    scored = [(sum(w for w, _ in problems(v)), v) for v in verdicts]
    scored = [(s, v) for s, v in scored if s > 0]
    scored.sort(key=lambda sv: (-sv[0], str(sv[1].id)))
    return [(v, [d for _, d in problems(v)]) for _, v in scored[:n]]


def check_thresholds(metrics: Mapping[str, Any], thresholds: Mapping[str, Any]) -> list[str]:
    """What fails a run against {"retrieval.hit@1": 0.65, ...}: a minimum for higher-is-better metrics, a maximum
    for lower-is-better ones. null = not gated yet (the metric may be n/a); a number with an n/a metric fails;
    keys starting with "_" are notes."""
    failures = []
    for key, limit in thresholds.items():
        if key.startswith("_"):
            continue
        if key not in BY_KEY:
            failures.append(f"{key}: unknown metric; known: {', '.join(BY_KEY)}")
            continue
        if limit is None:
            continue
        value = value_of(metrics, key)
        if math.isnan(value):
            failures.append(f"{key}: no score (n/a) but the threshold is {limit}; "
                            "set it to null while it cannot be measured")
        elif BY_KEY[key].better == HIGHER and value < limit:
            failures.append(f"{key} = {value:.4f} is below the minimum {limit}")
        elif BY_KEY[key].better == LOWER and value > limit:
            failures.append(f"{key} = {value:.4f} is above the maximum {limit}")
    return failures
