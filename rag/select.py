"""Candidate scoring and selection: every unit of the retrieved passages gets generic features, a fitted logistic
model turns them into P(the unit answers), and fitted thresholds decide which units the answer quotes."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .fitted import Model, load_model
from .question import Question
from .text import CJK
from .types import Chunk, Hit
from .units import UnitIndex, bigrams, holds, items, states_near

FEATURES = (
    "lex_own",  # IDF-weighted share of the asker's own words' bigrams in the unit
    "lex_added",  # the same for the corpus terms their words stand for (synonyms, glossary, typo repairs)
    "chars_own",  # IDF-weighted share of their words' characters
    "terms_all",  # share of their content words the unit holds whole
    "lex_rel",  # lex_own minus the best lex_own among the candidates
    "dense",  # cosine of the unit's vector to the question's
    "dense_rel",  # dense minus the best dense among the candidates
    "p_fused",  # the passage's fused retrieval score over the best passage's
    "p_rank",  # 1 / the passage's rank
    "p_lexical",  # the passage's BM25 over the best passage's
    "p_dense",  # the passage's cosine
    "asks_kind",  # the question asks for a figure, date, name, place, organisation, procedure or specific
    "kind_here",  # … and a clause of the unit states one beside the focus or a topic word
    "list_here",  # the question asks for a list or count and the unit enumerates
    "count_here",  # the question names a number of items and the unit enumerates exactly that many
    "purpose_here",  # the question asks what for and the unit states an aim
    "quoted_here",  # the unit puts one of the asker's words in quotation marks (where a term is introduced)
    "first_in_par",  # the unit opens its paragraph
    "par_pos",  # relative position in its paragraph
    "heading_lex",  # lex_own of the unit's paragraph opening
    "nb_lex",  # the best lex_own of the units next to it
    "tail",  # a later clause of a sentence cut at commas
    "log_len",  # log of its length in characters
    "top_doc",  # it comes from the best passage's document
    "in_topic",  # a follow-up: it lies in the section the conversation was about
)
MODEL = "select"


@dataclass(frozen=True)
class Candidate:
    """A unit of a retrieved passage with its features and fitted probability."""

    unit: int  # position in the UnitIndex
    chunk: Chunk
    rank: int  # of its passage
    x: tuple[float, ...]
    p: float = 0.0


def query_grams(q: Question) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(the asker's own words' bigrams, the added terms' bigrams, the own words' characters)."""
    own = frozenset(g for t in q.terms for g in bigrams(t))
    added = frozenset(g for t in q.added for g in bigrams(t)) - own
    chars = frozenset(c for t in q.terms for c in re.findall(f"[{CJK}]", t))
    return own, added, chars


def _quoted(text: str, terms: tuple[str, ...]) -> bool:
    return any(f"“{t}" in text or f"{t}”" in text or f"「{t}" in text or f"\"{t}" in text for t in terms)


def candidates(q: Question, hits: list[Hit], uidx: UnitIndex, query_vector: np.ndarray | None,
               pool: int) -> list[Candidate]:
    """Every unit of the first `pool` passages with its features (a unit in several passages: its best passage)."""
    hits = hits[:pool]
    if not hits:
        return []
    own, added, chars = query_grams(q)
    seen: dict[int, Hit] = {}
    for h in hits:
        for i in uidx.within(h.chunk):
            seen.setdefault(i, h)
    rows = list(seen)
    lex = {i: uidx.overlap(own, i) for i in rows}
    dense = dict(zip(rows, uidx.dense(query_vector, rows).tolist()))
    best_lex, best_dense = max(lex.values(), default=0.0), max(dense.values(), default=0.0)
    top_fused = max(h.score for h in hits) or 1.0
    top_bm25 = max(h.scores.get("lexical", 0.0) for h in hits) or 1.0
    kind = q.asks
    listy = q.wants_list or q.wants_count
    anchors = q.focus or q.topic_terms
    span = q.topic_span
    out = []
    for i in rows:
        h, u = seen[i], uidx.units[i]
        par = uidx.paragraph(i)
        nb = [lex.get(j, uidx.overlap(own, j)) for j in uidx.neighbours(i)]
        x = (
            lex[i], uidx.overlap(added, i) if added else 0.0, uidx.char_overlap(chars, i),
            (sum(t in u.norm for t in q.terms) / len(q.terms)) if q.terms else 0.0,
            lex[i] - best_lex, dense[i], dense[i] - best_dense,
            h.score / top_fused, 1.0 / h.rank, h.scores.get("lexical", 0.0) / top_bm25, h.scores.get("dense", 0.0),
            float(bool(kind)), float(bool(kind) and states_near(kind, u.norm, anchors, q.norm)),
            float(listy and holds("list", u.norm)),
            float(bool(q.count) and q.count >= 2 and items(u.norm) == q.count),
            float(q.purpose and holds("purpose", u.norm)), float(_quoted(u.norm, q.terms)),
            float(par[0] == i), par.index(i) / max(1, len(par) - 1), lex.get(par[0], uidx.overlap(own, par[0])),
            max(nb, default=0.0), float(uidx.continues(i)), math.log(1 + len(u.norm)) / 5,
            float(u.doc_id == hits[0].chunk.doc_id),
            float(bool(span) and u.doc_id == span[0] and span[1] <= u.start < span[2]),
        )
        out.append(Candidate(i, h.chunk, h.rank, x))
    return out


def scorer() -> Model:
    """The fitted candidate model (config/fitted/select.json)."""
    return load_model(MODEL, FEATURES)


def score(cands: list[Candidate], model: Model | None, probabilities=None) -> list[Candidate]:
    """Candidates with their fitted probability (or the given ones), best first (ties: document order)."""
    if not cands:
        return []
    p = model.proba(np.array([c.x for c in cands])) if probabilities is None else probabilities
    scored = [Candidate(c.unit, c.chunk, c.rank, c.x, float(v)) for c, v in zip(cands, p)]
    return sorted(scored, key=lambda c: (-c.p, c.unit))


def choose(ranked: list[Candidate], uidx: UnitIndex, model: Model, max_n: int,
           exclude: frozenset[int] = frozenset()) -> list[Candidate]:
    """The units an answer quotes, in document order: the best one; others that clear the fitted absolute and
    relative thresholds (at most `max_n` in all); and after each, the units that follow it in the same passage
    while they clear the fitted run threshold, so a unit that only names the asked thing is followed by the
    sentences that spell it out, and a quote stays one contiguous run."""
    ranked = [c for c in ranked if c.unit not in exclude] or ranked
    if not ranked:
        return []
    return [ranked[i] for i in pick([c.p for c in ranked], [c.unit for c in ranked], [c.chunk.id for c in ranked],
                                    model.params, max_n, exclude)]


def pick(p: list[float], units: list[int], chunks: list[str], params, max_n: int,
         exclude: frozenset[int] = frozenset()) -> list[int]:
    """Positions (into the best-first lists) of the chosen candidates, in document order; shared by the engine and
    the fitting of its thresholds."""
    t_abs, r_rel, t_next = params.get("t_abs", 0.5), params.get("r_rel", 0.8), params.get("t_next", 1.01)
    order = sorted(range(len(p)), key=lambda i: -p[i])
    top = order[0]
    chosen = [top] + [i for i in order[1:] if p[i] >= t_abs and p[i] >= r_rel * p[top]][: max_n - 1]
    at = {u: i for i, u in enumerate(units)}
    for i in list(chosen):
        j = at.get(units[i] + 1)
        while (j is not None and j not in chosen and chunks[j] == chunks[i] and p[j] >= t_next
               and units[j] not in exclude and len(chosen) < max_n + 2):
            chosen.append(j)
            j = at.get(units[j] + 1)
    return sorted(chosen, key=lambda i: units[i])
