"""The answer-or-refuse decision: generic features of a question and its best candidates, a fitted logistic model,
and one threshold chosen on a development split for few false refusals."""
from __future__ import annotations

import math
import re

import numpy as np

from .fitted import Model, load_model
from .lexicon import Lexicon
from .question import Question
from .select import Candidate
from .types import Answerability, Hit
from .units import UnitIndex, bigrams, holds, items, new_fact, states_near

KINDS = ("quantity", "time", "person", "place", "organisation", "procedure", "detail")
FEATURES = (
    "cov_corpus",  # share of the asker's content words the corpus holds
    "added_found",  # the corpus holds a term their words stand for (synonym, glossary, typo repair)
    "no_terms",  # the question has no content word of its own
    "cov_top",  # share of its topic words in the best three candidates
    "miss_top",  # the most specific (IDF) of its topic words missing from the best three candidates, 0..1
    "miss_corpus",  # the most specific of its words missing from the corpus, 0..1
    "numbers_missing",  # share of the question's numbers and years missing from the best three candidates
    "p1",  # the best candidate's probability
    "p_margin",  # … minus the second's
    "p_mean3",  # mean of the best three
    "dense_max",  # the best passage's cosine
    "lex_top",  # the best candidate's lexical overlap
    *(f"ask_{k}" for k in KINDS),  # what kind of fact it asks for
    "kind_found",  # … and whether the best candidate states one it does not already state
    "kind_with_topic",  # … in a clause of the best three that also names the focus (or a topic word)
    "attribute_found",  # the attribute it names (利率, 期限…) is in the best three candidates
    "list_found",  # it asks for a list or count and the best three candidates enumerate
    "count_asked",  # it names a number of items ("哪八项")
    "count_found",  # … and one of the best three candidates (or its sentence) enumerates that many
    "focus_asked",  # it asks for something to be named ("哪些城市": 城市)
    "focus_found",  # … and the best three candidates hold that word
    "focus_listed",  # … in an enumeration
    "specific",  # it insists on specifics (具体, 到底…)
    "en_dense",  # English: the best passage's cosine (English has no lexical signal)
    "en_p1",  # English: the best candidate's probability
    "names_document",  # it names the document, its kind or its speaker
    "about_document",  # it asks about the document as a whole
    "refers_back",
    "log_terms",
    "english",
)
MODEL = "answerable"
_NUMBERS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def model() -> Model:
    """The fitted answerability model (config/fitted/answerable.json)."""
    return load_model(MODEL, FEATURES)


def specificity(term: str, uidx: UnitIndex) -> float:
    """How rare a term's bigrams are among the units (0..1): a missing rare word matters more than a common one."""
    grams = bigrams(term)
    if not grams:
        return 0.0
    return sum(uidx.idf2.get(g, uidx.max_idf2) for g in grams) / len(grams) / uidx.max_idf2


def features(q: Question, ranked: list[Candidate], hits: list[Hit], uidx: UnitIndex, lexicon: Lexicon) -> tuple[float, ...]:
    """The answerability features of a question, given its ranked candidates."""
    terms = q.topic_terms
    found = [t for t in q.terms if lexicon.has(t)]
    top = ranked[:3]
    text = "".join(uidx.units[c.unit].norm for c in top)
    ps = [c.p for c in top] + [0.0] * (3 - len(top))
    kind_found = bool(q.asks) and bool(top) and new_fact(q.asks, uidx.units[top[0].unit].norm, q.norm)
    clauses = [cl for c in top for cl in re.split(r"[，,；;。]", uidx.units[c.unit].norm) if cl]
    kind_with_topic = bool(q.asks) and any(states_near(q.asks, uidx.units[c.unit].norm, q.focus or terms, q.norm)
                                           for c in top)
    missing_top = [specificity(t, uidx) for t in terms if t not in text]
    missing_corpus = [specificity(t, uidx) for t in q.terms if not lexicon.has(t)]
    numbers = _NUMBERS.findall(q.norm)
    sentences = [[uidx.units[j].norm for j in uidx.sentence(c.unit)] for c in top]
    count_found = bool(q.count) and any(items("".join(s)) == q.count for s in sentences)
    focus_units = [cl for cl in clauses if any(f in cl for f in q.focus)]
    dense = max((h.scores.get("dense", 0.0) for h in hits), default=0.0)
    english = q.script == "en"
    return (
        len(found) / len(q.terms) if q.terms else 0.0,
        float(any(lexicon.has(t) for t in q.added)),
        float(not q.terms),
        (sum(t in text for t in terms) / len(terms)) if terms else 0.0,
        max(missing_top, default=0.0),
        max(missing_corpus, default=0.0),
        (sum(n not in text for n in numbers) / len(numbers)) if numbers else 0.0,
        ps[0], ps[0] - ps[1], sum(ps) / 3,
        dense,
        top[0].x[0] if top else 0.0,
        *(float(q.asks == k) for k in KINDS),
        float(kind_found), float(kind_with_topic),
        float(bool(q.attribute) and q.attribute in text),
        float((q.wants_list or q.wants_count) and any(holds("list", uidx.units[c.unit].norm) for c in top)),
        float(bool(q.count) and q.count >= 2), float(count_found and q.count >= 2),
        float(bool(q.focus)), float(bool(focus_units)), float(any(holds("list", u) for u in focus_units)),
        float(q.specific),
        dense if english else 0.0, ps[0] if english else 0.0,
        float(q.names_document), float(bool(q.about)), float(q.refers_back),
        math.log(1 + len(terms)), float(english),
    )


def decide(q: Question, ranked: list[Candidate], hits: list[Hit], uidx: UnitIndex, lexicon: Lexicon,
           fitted: Model, threshold: float | None = None) -> Answerability:
    """Whether the passages answer the question, with the fitted probability as the score and what a refusal
    names: the kind of fact asked for and the question's topic in the corpus."""
    x = features(q, ranked, hits, uidx, lexicon)
    p = float(fitted.proba(np.array([x]))[0])
    limit = fitted.params.get("threshold", 0.5) if threshold is None else threshold
    translated = q.added if q.script == "en" else ()  # an English question's words, in the corpus's language
    own = [t for t in q.terms + q.context + translated if lexicon.has(t)]
    added = [t for t in q.added if lexicon.has(t)]
    answerable = p >= limit and bool(own or added or q.names_document or q.about or q.refers_back)
    # a refusal names a topic in the asker's own words; when none of them is in the documents, the question is
    # outside them, whatever a synonym of one of its words may have matched
    topic = max(own, key=len) if own else ""
    # an English question the corpus has no glossary for has no words to check: only the model judges it
    unknown = (q.script == "en" and not lexicon.domain.glossary and not q.terms
               and len(re.findall(r"[a-z]{2,}", q.text.lower())) >= 3)
    off_topic = (not own and not unknown and not q.names_document and not q.about and not q.refers_back
                 and (not added or not answerable))
    answerable = answerable or (unknown and p >= limit)
    reason = (f"P(answerable) {p:.3f} vs threshold {limit:.3f}; coverage {x[0]:.2f}, "
              f"best candidate {x[FEATURES.index('p1')]:.2f}")
    if q.asks:
        reason += f"; asks for {q.asks}, {'stated' if x[FEATURES.index('kind_found')] else 'none'} in the passages"
    return Answerability(answerable and not off_topic, p, reason, q.asks, topic, off_topic=off_topic)
