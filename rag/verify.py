"""Verifying an LLM's answer claim by claim against the evidence it was given.

An answer is split into claims (sentences; list numbering is not a claim). A claim is supported by the evidence it
cites when its content words are found there (Chinese: coverage on Simplified text) or its meaning is close (English:
the multilingual embedder's cosine), over thresholds fitted on labelled pairs (config/fitted/support.json). Every
number it states (Arabic or Chinese numerals) must be in the cited evidence or in the question, every quotation
verbatim in the evidence. An uncited claim takes the citation of the evidence that supports it best, when that
clears the threshold; otherwise it is dropped. Every decision is recorded.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

from .errors import SettingsError
from .fitted import FITTED
from .text import CJK, normalize

_MARKER = re.compile(r"\[(\d{1,3})\]")
_LEADING_MARKERS = re.compile(r"^(?:\[\d{1,3}\]\s*)+")
_SPLIT = re.compile(r"(?<=[。！？!?；;\n])|(?<=[.!?])\s+(?=[A-Z“\"(\[])")
_LIST_NUMBER = re.compile(r"^\s*(?:[0-9]{1,2}[.、．)）]|[（(][0-9一二三四五六七八九十]{1,2}[）)]|[一二三四五六七八九十]{1,2}、|[-*•·]\s)\s*")
_NOT_COVERED = re.compile(r"没有提到|沒有提到|未提及|没有提及|沒有提及|没有涉及|沒有涉及|没有说明|沒有說明|没有给出|沒有給出|并未|並未|"
                          r"does not (say|mention|state|specify|give|cover|provide)|doesn't (say|mention|specify)|"
                          r"not (mentioned|stated|covered|specified)|no (mention|information)", re.IGNORECASE)
# a claim that negates (而不是…, not …) where its evidence does not: coverage of its words cannot see the polarity
_NEGATION = re.compile(r"而不是|不是|并非|並非|并不|並不|不会|不會|不再|没有|沒有|无需|無需|\bnot\b|\bnever\b|n't\b", re.IGNORECASE)
# an alternative question (A还是B): the option a Chinese claim picks must be held by its (Chinese) evidence
_ALTERNATIVE = re.compile(r"还是|還是")
_QUOTED = re.compile(r"[“「『\"]([^”」』\"]{2,40})[”」』\"]")
_ARABIC = re.compile(r"[0-9]+(?:[.,][0-9]+)*")
_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
# a Chinese numeral counts as a figure when a measure word or unit follows it (三块, 两次, 十四五 is a plan's name)
_CN_NUMBER = re.compile(r"[零〇一二两三四五六七八九十百千]+(?=[个项块次条家所倍年月日周人名亿万千元%％点成大类])")


@dataclass(frozen=True)
class Claim:
    """One claim of an answer and what verification decided about it."""

    text: str
    cites: tuple[int, ...]  # evidence numbers it cites (1-based, valid ones)
    support: float  # how well its cited evidence supports it (0..1)
    action: str  # accepted | cited (an uncited claim given the best evidence) | dropped | kept (a statement of fact
    #              about the document's silence or a heading) | rejected (a number, quote or silence claim fails)
    reason: str = ""


@dataclass(frozen=True)
class Verification:
    """The whole answer's verification: its claims, and whether the answer is kept or replaced."""

    claims: tuple[Claim, ...]
    outcome: str  # accepted | fallback
    reason: str = ""

    def to_json(self) -> dict:
        return {"outcome": self.outcome, "reason": self.reason, "claims": [asdict(c) for c in self.claims]}


@dataclass(frozen=True)
class Thresholds:
    zh: float  # content-word coverage a Chinese claim needs
    en: float  # cosine an English claim needs


def load_thresholds(folder=FITTED) -> Thresholds:
    """config/fitted/support.json (python -m eval.fit)."""
    path = folder / "support.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Thresholds(float(data["params"]["zh_threshold"]), float(data["params"]["en_threshold"]))
    except (OSError, ValueError, KeyError) as exc:
        raise SettingsError(f"fitted support thresholds {path} are missing or unreadable ({exc}); refit with "
                            "`python -m eval.fit`") from None


def complete_part(text: str) -> str:
    """The part of a text being written that ends at its last claim boundary ("" when no claim is complete yet):
    what a stream can verify and show while the rest is still coming."""
    ends = [m.start() for m in _SPLIT.finditer(text or "") if m.start() > 0]
    return text[: ends[-1]] if ends else ""


def claims_of(text: str) -> list[str]:
    """The sentences of an answer, without list numbering; empty pieces dropped."""
    out = []
    for piece in _SPLIT.split(text or ""):
        lead = _LEADING_MARKERS.match(piece.strip())
        if lead and out:  # "…。[1] Next": the markers belong to the sentence they follow
            out[-1] += "".join(m.group(0) for m in _MARKER.finditer(lead.group(0)))
            piece = piece.strip()[lead.end():]
        piece = _LIST_NUMBER.sub("", piece.strip())
        if re.search(f"[{CJK}A-Za-z0-9]", _MARKER.sub("", piece)):
            out.append(piece)
    return out


def _cn_value(token: str) -> int | None:
    """'三' → 3, '十四' → 14, '二十' → 20, '一百零五' → 105; None for anything else."""
    total, current = 0, 0
    for ch in token:
        if ch in _CN_DIGITS:
            current = _CN_DIGITS[ch]
        elif ch in _CN_UNITS:
            total += (current or 1) * _CN_UNITS[ch]
            current = 0
        else:
            return None
    return total + current


def numbers_in(text: str) -> set[str]:
    """The figures a text states, as canonical strings (Arabic digits; Chinese numerals before a unit converted)."""
    found = {n.replace(",", "") for n in _ARABIC.findall(normalize(text))}
    for m in _CN_NUMBER.finditer(normalize(text)):
        value = _cn_value(m.group(0))
        if value is not None and m.group(0) != "一":  # 一个, 一项: the indefinite article, not a figure
            found.add(str(value))
    return found


def _entity_words(text: str) -> set[str]:
    """Names a Chinese text states: words jieba's tagger marks as a person, place, organisation or other proper noun."""
    import jieba.posseg as pseg

    from .text import _jieba

    _jieba()
    return {w.word for w in pseg.lcut(text) if len(w.word) >= 2 and w.flag[:2] in ("nr", "ns", "nt", "nz")}


@functools.lru_cache(maxsize=1)
def _syllables() -> frozenset[str]:
    """Every toneless pinyin syllable (from pypinyin's table of CJK characters)."""
    from pypinyin import Style, pinyin

    chars = "".join(chr(c) for c in range(0x4E00, 0x9FA6))
    return frozenset(s for group in pinyin(chars, style=Style.NORMAL, heteronym=True, errors="ignore") for s in group)


def _is_pinyin(word: str) -> bool:
    """Whether a Latin word splits into pinyin syllables ("Weilin" → wei+lin)."""
    word, syl = word.lower(), _syllables()
    ok = [True] + [False] * len(word)
    for i in range(1, len(word) + 1):
        ok[i] = any(ok[j] and word[j:i] in syl for j in range(max(0, i - 6), i))
    return ok[-1]


def _pinyin_of(text: str) -> str:
    from pypinyin import lazy_pinyin

    return "".join(lazy_pinyin(normalize(text))).lower()


def _pinyin_runs(claim: str) -> list[str]:
    """Runs of two or more capitalised words that are all pinyin ("Director Gu Weilin of" → "Gu Weilin")."""
    runs, current = [], []
    for word in re.findall(r"[A-Za-z]+|[^A-Za-z\s]+", claim) + [""]:
        if word[:1].isupper() and word[1:].islower() and _is_pinyin(word):
            current.append(word)
            continue
        if len(current) >= 2:
            runs.append(" ".join(current))
        current = []
    return runs


def names_not_held(claim: str, held: str) -> list[str]:
    """Names a claim states that `held` (its evidence, the question, the document's title and byline) does not:
    Chinese proper nouns (by the tagger) and Chinese runs, and romanised names (two or more capitalised pinyin
    words, compared by sound)."""
    held = normalize(held)
    if re.search(f"[{CJK}]", claim) and not re.search("[A-Za-z]{3,}", claim):
        return sorted(w for w in _entity_words(normalize(claim)) if w not in held)
    bad = [r for r in re.findall(f"[{CJK}]{{2,}}", normalize(claim)) if r not in held]
    sounds = _pinyin_of(held)
    return bad + [run for run in _pinyin_runs(claim) if run.replace(" ", "").lower() not in sounds]


def content_words(text: str, segment: Callable[[str], list[str]], stop: frozenset[str]) -> list[str]:
    """A Chinese text's content words (two characters or more, not function words), on Simplified text."""
    return [w for w in segment(normalize(_MARKER.sub("", text))) if len(w) >= 2 and w not in stop
            and re.search(f"[{CJK}]", w)]


def held_in(word: str, evidence_norm: str, grams: set[str]) -> bool:
    """A word is held by evidence verbatim, or when every bigram of it is."""
    return word in evidence_norm or all(word[i : i + 2] in grams for i in range(len(word) - 1))


def coverage(claim: str, evidence: str, segment: Callable[[str], list[str]], stop: frozenset[str]) -> float:
    """Share of a Chinese claim's content words found in the evidence (verbatim, or every bigram of them)."""
    words = content_words(claim, segment, stop)
    if not words:
        return 1.0
    have = normalize(evidence)
    grams = {have[i : i + 2] for i in range(len(have) - 1)}
    return sum(1 for w in words if held_in(w, have, grams)) / len(words)


def unheld_options(question_norm: str, evidence: Sequence[str], segment, stop) -> frozenset[str]:
    """In an alternative question (A还是B), the question's words that no evidence holds: a claim must not pick them."""
    if not _ALTERNATIVE.search(question_norm):
        return frozenset()
    have = normalize(" ".join(evidence))
    grams = {have[i : i + 2] for i in range(len(have) - 1)}
    return frozenset(w for w in content_words(question_norm, segment, stop) if not held_in(w, have, grams))


def unsupported_turn(body: str, source: str, options: frozenset[str], segment, stop) -> str:
    """Why a claim says what coverage cannot check — it negates where its evidence does not, or picks an option of
    the question its evidence does not hold — or "" when it does neither."""
    negation = _NEGATION.search(body)
    if negation and re.search(f"[{CJK}]", negation.group(0)) and normalize(negation.group(0)) not in normalize(source):
        return f"negates (“{negation.group(0)}”) where its evidence does not"
    picked = sorted(set(content_words(body, segment, stop)) & options)
    return f"picks “{picked[0]}” from the question, which its evidence does not hold" if picked else ""


_EN_FUNCTION = frozenset("the a an and or of to in on for with by from at as is are was were be been it its this that "
                         "these those what which who when where why how does did do can will would about there their "
                         "they speech document report says said mentions mentioned".split())


def restates(answer_claims: Sequence[str], question_norm: str, segment, stop) -> bool:
    """Whether an answer only restates the question: none of its content words is new."""
    words = set()
    for c in answer_claims:
        body = _MARKER.sub("", c)
        if numbers_in(body) - numbers_in(question_norm):  # a figure the question did not give is an answer
            return False
        words |= set(content_words(body, segment, stop))
        words |= {w for w in re.findall(r"[a-z]{3,}", body.lower()) if w not in _EN_FUNCTION}
    return not words or all(w in question_norm for w in words)


@dataclass(frozen=True)
class _Context:
    """What every claim of one answer is checked against."""

    evidence: Sequence[str]
    question_norm: str
    answerable: bool
    support: Callable[[str, str], float]
    threshold: float
    segment: Callable[[str], list[str]]
    stop: frozenset[str]
    known: str
    options: frozenset[str]


def _judge(claim: str, ctx: _Context) -> tuple[Claim, str, str]:
    """(the decision on one claim, the claim's text as shown when kept, the answer's fallback reason or "")."""
    evidence = ctx.evidence
    cites = tuple(dict.fromkeys(int(k) for k in _MARKER.findall(claim) if 1 <= int(k) <= len(evidence)))
    body = _MARKER.sub("", claim).strip()
    if _NOT_COVERED.search(body):
        if ctx.answerable:
            return (Claim(body, cites, 0.0, "rejected", "says the document is silent on a question judged answerable"),
                    "", "the model said the document does not cover an answerable question")
        return Claim(body, cites, 1.0, "kept", "a statement of the document's silence"), claim, ""
    action = "accepted"
    if not cites:  # give it the evidence that supports it best, if any does enough
        scores = [ctx.support(body, e) for e in evidence]
        best = max(range(len(evidence)), key=lambda i: scores[i]) if evidence else None
        if best is None or scores[best] < ctx.threshold:
            return Claim(body, (), max(scores, default=0.0), "dropped", "no evidence supports it"), "", ""
        cites, claim, action = (best + 1,), f"{claim.rstrip()}[{best + 1}]", "cited"
    source = " ".join(evidence[k - 1] for k in cites)
    score = ctx.support(body, source)
    reason = _not_held(body, source, ctx)
    if reason:
        return Claim(body, cites, score, "rejected", reason), "", reason
    if score < ctx.threshold:
        return Claim(body, cites, score, "dropped", f"support {score:.2f} below {ctx.threshold:.2f}"), "", ""
    turn = unsupported_turn(body, source, ctx.options, ctx.segment, ctx.stop)
    if turn:
        return Claim(body, cites, score, "dropped", turn), "", ""
    return Claim(body, cites, score, action), claim, ""


def _not_held(body: str, source: str, ctx: _Context) -> str:
    """Why a claim's figure, quotation or name is not in its evidence (figures of the question allowed), or ""."""
    numbers = sorted(numbers_in(body) - numbers_in(source) - numbers_in(ctx.question_norm))
    if numbers:
        return f"states {numbers[0]}, which its evidence does not"
    quotes = [q for q in _QUOTED.findall(body) if re.search(f"[{CJK}]", q) and normalize(q) not in normalize(source)]
    if quotes:
        return f"quotes “{quotes[0]}”, which its evidence does not hold"
    names = names_not_held(body, f"{source} {ctx.question_norm} {ctx.known}")
    return f"names {names[0]}, which its evidence does not hold" if names else ""


def verify(text: str, evidence: Sequence[str], *, question_norm: str, english: bool, answerable: bool,
           support: Callable[[str, str], float], thresholds: Thresholds, segment, stop,
           known: str = "") -> tuple[str, Verification]:
    """(the verified answer text with its citations renumbered as given, the decisions). `evidence`: the numbered
    passages the model saw (1-based); `support(claim, passage)`: coverage (Chinese) or cosine (English); `known`:
    names an answer may state beyond its evidence (the document's title and byline)."""
    raw_claims = claims_of(text)
    if not raw_claims:
        return "", Verification((), "fallback", "empty or unreadable answer")
    substantive = [c for c in raw_claims if not _NOT_COVERED.search(c)]
    if substantive and restates(substantive, question_norm, segment, stop):
        return "", Verification((), "fallback", "the answer restates the question")
    ctx = _Context(evidence, question_norm, answerable, support, thresholds.en if english else thresholds.zh, segment,
                   stop, known, unheld_options(question_norm, evidence, segment, stop))
    claims, kept_text = [], []
    for claim in raw_claims:
        decision, shown, fallback = _judge(claim, ctx)
        claims.append(decision)
        if fallback:
            return "", Verification(tuple(claims), "fallback", fallback)
        if shown:
            kept_text.append(shown)
    if not any(c.action in ("accepted", "cited") for c in claims):
        return "", Verification(tuple(claims), "fallback", "no claim is supported by the evidence")
    return "".join(kept_text) if not english else " ".join(kept_text), Verification(tuple(claims), "accepted")
