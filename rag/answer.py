"""Answer engines behind one protocol, and the answerability check that decides when to refuse.

The extractive engine (default, offline) composes an answer from verbatim source sentences; the LLM engines
(rag.llm backends) are verified against the passages and fall back to the extractive answer.
"""
from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, replace
from typing import Collection, Protocol

from .chunking import sentences
from .glossary import english_name
from .query import (META, OCCURRENCES, add_domain_terms, asks_for, asks_list, attribute, content_terms, coverage, doc_intents,
                    expansions, has_evidence, ordinal, retrieval_query, sub_questions, synonyms)
from .settings import ROOT, Settings
from .store import LoadedIndex
from .text import normalize, s2t, t2s
from .types import Answerability, Chunk, Citation, Hit

PROMPTS = ROOT / "prompts"
# Sentence scoring and selection, tuned on eval/dataset.jsonl (see README): weights of the lexical overlap, the
# sentence's own embedding similarity and its passage's retrieval score; a further sentence is quoted only when
# it scores within SELECT_RATIO of the best one and overlaps the question at least LEX_RATIO as much.
W_LEX, W_DENSE, W_CHUNK = 0.4, 0.3, 0.3
SELECT_RATIO, LEX_RATIO = 0.85, 0.6
# A long list of topics ("推进A、B、C、D…") names each in passing: it matches almost anything, so it yields to the
# sentences that elaborate what it matched.
ENUM_PENALTY = 0.6
# the share of the lexical score given to the document's terms added for the asker's colloquial words (贷款 →
# 科创指数贷); the rest goes to the asker's own words
SYNONYM_WEIGHT = 0.3
# a unit that shares no word with the question, when others do, is only there for its passage's score
ZERO_LEX_PENALTY = 0.7
# the tail clause of a long sentence ("持续激发各类人才创新创造活力。") says little without its head
FRAGMENT_PENALTY = 0.85
MIN_CLAUSE_CHARS = 20  # a tail clause shorter than this yields twice: its embedding flatters it most
# a unit counts as already said in the previous answer when this share of its bigrams is in it
QUOTED_SHARE = 0.6
# a summary quotes the opening of at most this many paragraphs; an opening shorter than this is skipped
MAX_SUMMARY, MIN_HEADLINE_CHARS = 6, 10
# topicality of a question that names the speech ("讲话里…", "局长…") but none of its words
META_TOPICALITY = 0.3


@functools.lru_cache(maxsize=1)
def phrases() -> dict:
    """User-facing phrasing per script (prompts/extractive.json)."""
    return json.loads((PROMPTS / "extractive.json").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Unit:
    """A sentence (or comma clause of a long sentence) of a document: what an answer quotes."""

    doc_id: str
    paragraph: int
    start: int
    end: int
    text: str
    norm: str


@dataclass(frozen=True)
class Draft:
    """An engine's answer before it becomes an Answer."""

    text: str
    citations: tuple[Citation, ...]
    refused: bool = False
    engine: str = "extractive"
    notice: str = ""


class AnswerEngine(Protocol):
    name: str

    def answer(self, question: str, query: str, hits: list[Hit], script: str,
               history: list[tuple[str, str]]) -> Draft: ...


def _bigrams(text: str) -> list[str]:
    runs = re.findall(r"[\u4e00-\u9fff]+|[a-z0-9]+", text)
    out = []
    for r in runs:
        if re.match(r"[a-z0-9]", r):
            out.append(r)
        else:
            out.extend(r[i : i + 2] for i in range(len(r) - 1))
    return out


def _strip_end(text: str) -> str:
    return re.sub(r"[,，。；;、:：\s]+$", "", text)


def display(text: str, script: str) -> str:
    """A verbatim quote rendered for the asker: their script, full-width commas for Chinese readers."""
    if script == "hant":
        shown = text if t2s(text) != text or s2t(text) == text else s2t(text)  # Traditional sources stay verbatim
    else:
        shown = t2s(text)
    return shown.replace(",", "，").replace(";", "；")


class SentenceIndex:
    """Every answer unit of the corpus with bigram IDF, built once per loaded index."""

    def __init__(self, index: LoadedIndex, max_clause_chars: int, embedder=None) -> None:
        self.index = index
        self.embedder = embedder
        self.units: list[Unit] = []
        for doc in index.documents.values():
            for p, s, e in sentences(doc, max_clause_chars):
                self.units.append(Unit(doc.id, p, s, e, doc.text[s:e], normalize(doc.text[s:e])))
        df: Counter[str] = Counter()
        for u in self.units:
            df.update(set(_bigrams(u.norm)))
        n = max(1, len(self.units))
        self.idf = {g: math.log(1 + n / c) for g, c in df.items()}
        self.corpus_norm = "\n".join(normalize(d.text) for d in index.documents.values())
        add_domain_terms(re.findall(r"[“「\"]([^”」\"]{2,12})[”」\"]", self.corpus_norm))  # the documents' named terms
        self.by_doc: dict[str, list[Unit]] = {}
        for u in self.units:
            self.by_doc.setdefault(u.doc_id, []).append(u)
        self._pos = {(u.doc_id, u.start): i for i, u in enumerate(self.units)}
        self._grams = [frozenset(_bigrams(u.norm)) for u in self.units]
        stored = index.sentence_vectors
        self._vectors = stored if stored is not None and len(stored) == len(self.units) else None

    def dense(self, query: str, units: list[Unit]) -> list[float]:
        """Cosine of each unit to the query (unit vectors from the index; embedded on first use if absent)."""
        if self.embedder is None or not units:
            return [0.0] * len(units)
        if self._vectors is None:
            self._vectors = self.embedder.embed_documents([u.text for u in self.units])
        q = self.embedder.embed_query(query)
        return [float(self._vectors[self._pos[(u.doc_id, u.start)]] @ q) for u in units]

    def continues(self, unit: Unit) -> bool:
        """Whether a unit is a later clause of a sentence cut at commas (its predecessor leaves it open)."""
        i = self._pos[(unit.doc_id, unit.start)]
        prev = self.units[i - 1] if i > 0 else None
        return bool(prev and prev.doc_id == unit.doc_id and prev.paragraph == unit.paragraph
                    and not _SENTENCE_END.search(prev.text))

    def sentence_of(self, unit: Unit) -> list[Unit]:
        """The units of the sentence a unit belongs to (itself, when the sentence was never cut at commas)."""
        i = j = self._pos[(unit.doc_id, unit.start)]
        while i > 0 and self.continues(self.units[i]):
            i -= 1
        while j + 1 < len(self.units) and self.continues(self.units[j + 1]):
            j += 1
        return self.units[i : j + 1]

    def body(self, doc_id: str) -> list[list[Unit]]:
        """The units of a document by paragraph, without title or byline lines (short, no sentence end)."""
        paragraphs: dict[int, list[Unit]] = {}
        for u in self.by_doc.get(doc_id, []):
            paragraphs.setdefault(u.paragraph, []).append(u)
        body = [us for us in paragraphs.values()
                if any(_SENTENCE_END.search(u.text) or re.search(r"[,，]\s*$", u.text) for u in us)
                or sum(len(u.norm) for u in us) >= 40]
        return body or list(paragraphs.values())

    def chunk_of(self, unit: Unit) -> Chunk | None:
        """The first indexed chunk that contains a unit."""
        return next((c for c in self.index.chunks
                     if c.doc_id == unit.doc_id and c.start <= unit.start and unit.end <= c.end), None)

    def within(self, chunk: Chunk) -> list[Unit]:
        return [u for u in self.by_doc.get(chunk.doc_id, []) if chunk.start <= u.start and u.end <= chunk.end]

    def lexical(self, query_grams: Collection[str], unit: Unit) -> float:
        """IDF-weighted share of the query's bigrams found in the unit."""
        total = sum(self.idf.get(g, 0.0) for g in query_grams)
        if total <= 0:
            return 0.0
        have = self.grams_of(unit)
        return sum(self.idf.get(g, 0.0) for g in query_grams if g in have) / total

    def grams_of(self, unit: Unit) -> frozenset[str]:
        """The unit's bigrams."""
        return self._grams[self._pos[(unit.doc_id, unit.start)]]

    def matched(self, query_grams: Collection[str], unit: Unit) -> frozenset[str]:
        """The query's bigrams the unit contains."""
        return frozenset(query_grams) & self.grams_of(unit)


def query_terms(query: str) -> list[str]:
    """Content terms of a retrieval query plus the document's terms for its colloquial words."""
    return list(dict.fromkeys(content_terms(query) + synonyms(query)))


@dataclass(frozen=True)
class Scored:
    unit: Unit
    chunk: Chunk
    score: float
    lexical: float
    matched: frozenset[str] = frozenset()  # the query's bigrams the unit contains
    passing: bool = False  # a list of topics that names what the query matched only in passing


_ENUM = re.compile(r"[、]")


def _is_enumeration(text: str) -> bool:
    return len(_ENUM.findall(text)) >= 2


def _items(text: str) -> int:
    """How many items a '、' enumeration lists (1 when it lists none)."""
    return len(_ENUM.findall(text)) + 1


def _is_topic_list(text: str) -> bool:
    """A long enumeration of topics ("推进A、B、C、D…"): it names each one in passing."""
    return _items(text) >= 4


def query_grams(query: str, question: str | None = None) -> tuple[frozenset[str], frozenset[str]]:
    """The bigrams a query is matched by: (the asker's own words', the document terms' the query added for their
    colloquial words (贷款 → 科创指数贷) and that the question did not say)."""
    said = normalize(question) if question is not None else ""
    base = normalize(query)
    for t in expansions(query):
        if t not in said:
            base = base.replace(t, " ")
    own_terms = set(content_terms(base))
    own: set[str] = set()
    added: set[str] = set()
    for t in query_terms(query):
        (own if t in own_terms else added).update(_bigrams(normalize(t)) or [normalize(t)])
    return frozenset(own), frozenset(added - own)


def _lexical(sidx: SentenceIndex, own: frozenset[str], added: frozenset[str], unit: Unit) -> float:
    """Lexical overlap led by the asker's own words; the document terms added for their colloquial words weigh
    SYNONYM_WEIGHT of it, or all of it when the question has no word of the document's own."""
    if not own:
        return sidx.lexical(added, unit)
    if not added:
        return sidx.lexical(own, unit)
    return (1 - SYNONYM_WEIGHT) * sidx.lexical(own, unit) + SYNONYM_WEIGHT * sidx.lexical(added, unit)


def rank_units(sidx: SentenceIndex, query: str, hits: list[Hit], question: str | None = None) -> list[Scored]:
    """Units of the retrieved chunks scored against the query (`question`: what the asker wrote, to tell their
    own words from added synonyms): lexical overlap, the unit's own embedding similarity and its chunk's retrieval
    score. A unit sharing no word with the question, the tail clause of a cut sentence, and a long list of topics
    whose every match is elaborated by another unit yield; where a list is the only place a topic is named
    (企业技术改造), it stands. List questions get their list back in select_units."""
    own, added = query_grams(query, question)
    grams = own | added
    top = max((h.score for h in hits), default=1.0) or 1.0
    pairs = [(h, u) for h in hits for u in sidx.within(h.chunk)]
    cos = sidx.dense(query, [u for _, u in pairs])
    lo, hi = (min(cos), max(cos)) if cos else (0.0, 1.0)
    seen: dict[tuple[str, int], Scored] = {}
    for (h, u), c in zip(pairs, cos):
        lex, matched = _lexical(sidx, own, added, u), sidx.matched(grams, u)
        dn = (c - lo) / (hi - lo) if hi > lo else 0.0
        score = W_LEX * lex + W_DENSE * dn + W_CHUNK * (h.score / top) * (1.0 - 0.04 * (h.rank - 1))
        key = (u.doc_id, u.start)
        if key not in seen or seen[key].score < score:
            seen[key] = Scored(u, h.chunk, score, lex, matched)
    if max((s.lexical for s in seen.values()), default=0.0) >= 0.3:  # the question's words are in some passage:
        for key, s in list(seen.items()):  # a unit with none of them is only there for its neighbours
            if s.lexical == 0:
                seen[key] = replace(s, score=s.score * ZERO_LEX_PENALTY)
    for key, s in list(seen.items()):
        if sidx.continues(s.unit):
            short = len(s.unit.norm) < MIN_CLAUSE_CHARS
            seen[key] = replace(s, score=s.score * FRAGMENT_PENALTY ** (2 if short else 1))
    elaborated = frozenset().union(*(s.matched for s in seen.values() if not _is_topic_list(s.unit.text)))
    for key, s in list(seen.items()):
        if _is_topic_list(s.unit.text) and s.matched <= elaborated:
            seen[key] = replace(s, score=s.score * ENUM_PENALTY, passing=True)
    return sorted(seen.values(), key=lambda s: -s.score)


# what a question's shape asks of the selection
_PURPOSE = re.compile(r"干嘛|干什么|干啥|作用|目的|目标|为了|用来|用于|效果|意义|想达到|要达到|是想|图啥|"
                      r"what for|purpose|\baims?\b|goals?\b|in order to", re.IGNORECASE)
_BESIDES = re.compile(r"除了|除此之外|此外|还有别的|还有其他|还有啥|还有什么|另外还有|别的呢|其他的呢|其它的呢|具体|详细|展开|细说|\b(besides|other than|apart from|anything else|what else)\b", re.IGNORECASE)
_MEMBERSHIP = re.compile(r"算不算|是不是|属不属于|属于|在不在|包不包括|包括.{0,12}吗|包含|之一|(里|中)的(吗|么|嘛)?[？?]?$|"
                         r"\bis .*\b(one of|part of|among|included in)\b", re.IGNORECASE)
# "原话是怎么说的": the whole sentence, not a clause of it
_VERBATIM = re.compile(r"原话|原文|怎么说的|怎么讲的|怎么表述|如何表述|表述|提法|措辞|用词|wording|exact words|verbatim|"
                       r"quote|how is it (put|phrased)", re.IGNORECASE)
_COUNT = re.compile(r"([一二两三四五六七八九十]|[0-9]+)(个|大|项|条|种|方面|件)")
_SENTENCE_END = re.compile(r"[。！？!?；;]\s*$")


def _number(token: str) -> int:
    if token.isdigit():
        return int(token)
    return {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}[token]


def asked_count(question: str) -> int | None:
    """The number of items a question names ("哪三个体系", "八大抓手"), or None."""
    m = _COUNT.search(normalize(question))
    return _number(m.group(1)) if m else None


def previously_quoted(sidx: SentenceIndex, history: list[tuple[str, str]], units: list[Unit]) -> set[tuple[str, int]]:
    """Which of `units` the previous answer quoted or paraphrased: what "除了这个，还有别的吗？" asks to leave out.
    A unit counts when QUOTED_SHARE of its bigrams are in that answer, and the closest unit when a third of its are."""
    if not history:
        return set()
    said = set(_bigrams(normalize(history[-1][1])))
    grams = [(u, sidx.grams_of(u)) for u in dict.fromkeys(units)]
    shares = [(len(g & said) / len(g), (u.doc_id, u.start)) for u, g in grams if len(g) >= 4]
    out = {key for share, key in shares if share >= QUOTED_SHARE}
    best = max(shares, default=(0.0, None))
    if best[0] >= 1 / 3:
        out.add(best[1])
    return out


def select_units(sidx: SentenceIndex, ranked: list[Scored], question: str, max_n: int, *, query: str = "",
                 exclude: set[tuple[str, int]] = frozenset(), parts: list[list[Scored]] = ()) -> list[Scored]:
    """The units an answer quotes, in document order.

    The top unit, and those scoring close to it that name as many of the question's words and match more than
    just a part of what it matches. Then what the question's shape asks for: the best unit of each part of a
    question about several things (`parts`: each sub-question's ranking), every mention of a term for "where does
    X appear", the sentence naming both things for "is A part of B", the enumeration (with the asked number of
    items: "哪三个"), the end of the sentence for "what is it for"; `exclude` (units already said, for "除了这个…")
    is left out."""
    if exclude:
        ranked = [s for s in ranked if (s.unit.doc_id, s.unit.start) not in exclude] or ranked
    if not ranked:
        return []
    chosen: list[Scored] = []

    def add(s: Scored) -> None:
        if all(o.unit != s.unit for o in chosen):
            chosen.append(s)

    for part in parts:  # "A和B分别…": the best unit for each part
        best = next((s for s in part if s.lexical > 0 and (s.unit.doc_id, s.unit.start) not in exclude), None)
        if best is not None:
            add(best)
    if OCCURRENCES.search(t2s(question)):
        found = [t for t in content_terms(question) if t in sidx.corpus_norm]
        term = max(found, key=len) if found else ""
        for u in (u for u in sidx.units if term and term in u.norm):
            chunk = next((s.chunk for s in ranked if s.unit == u), None) or sidx.chunk_of(u)
            if chunk is not None and len(chosen) < max_n:
                add(next((s for s in ranked if s.unit == u), Scored(u, chunk, 0.0, 0.0)))
    for u in _quote_marked(sidx, question)[:max_n]:  # "带“新”字的口号": every quotation that opens so
        chunk = next((s.chunk for s in ranked if s.unit == u), None) or sidx.chunk_of(u)
        if chunk is not None:
            add(next((s for s in ranked if s.unit == u), Scored(u, chunk, 0.0, 0.0)))
    together = _co_occurrence(sidx, ranked, question)
    for s in together:
        add(s)
    top = together[0] if together else ranked[0]
    add(top)
    words = [t for t in content_terms(question) if t in sidx.corpus_norm]

    def named(s: Scored) -> int:
        return sum(t in s.unit.norm for t in words)

    for s in ranked[1:] if not parts else ():  # a question in parts has its answer: the best of each part
        if len(chosen) >= max_n:
            break
        if (s.score >= SELECT_RATIO * top.score and s.lexical >= max(0.2, LEX_RATIO * top.lexical)
                and named(s) >= named(top) and not s.matched < top.matched):
            add(s)
    if asks_list(f"{question} {query}"):
        own = query_grams(query or question, question)[0]
        _complete_list(sidx, ranked, chosen, asked_count(question), own)
        chosen = chosen[: max_n + 1]
    _complete_sentences(sidx, ranked, chosen, any_length=bool(_PURPOSE.search(t2s(question))
                                                              or _VERBATIM.search(t2s(question))))
    unique: list[Scored] = []
    for s in chosen:
        if any(s.unit.norm in o.unit.norm or o.unit.norm in s.unit.norm for o in unique):
            continue
        unique.append(s)
    return sorted(unique, key=lambda s: (s.unit.doc_id, s.unit.start))


def _quote_marked(sidx: SentenceIndex, question: str) -> list[Unit]:
    """Units with a quotation opening with a one- or two-character term the question quotes ("带“新”字的" →
    “新提升”, “新势力”, “新活力”), when there are several such quotations; else []."""
    terms = re.findall(r"[“「\"']([^”」\"']{1,2})[”」\"']", t2s(question))
    if not terms:
        return []  # most questions: no scan of the corpus
    found = [u for u in sidx.units if any(f"“{t}" in t2s(u.text) or f"「{t}" in t2s(u.text) for t in terms)]
    return found if len(found) >= 2 else []


def _membership_terms(sidx: SentenceIndex, question: str) -> list[str]:
    """The specific terms (three or more characters, in the corpus) of an "is A part of B" question, else []."""
    if not _MEMBERSHIP.search(t2s(question)):
        return []
    terms = [t for t in content_terms(question) if len(t) >= 3 and t in sidx.corpus_norm]
    return terms if len(terms) >= 2 else []


def _absent_member(sidx: SentenceIndex, question: str) -> tuple[str, str] | None:
    """(container, member) when "A算不算B之一" names a B whose sentence never names A (and no sentence names
    both), so the answer can say so before quoting what B holds; else None."""
    terms = _membership_terms(sidx, question)
    if not terms:
        return None
    for u in sidx.units:
        if terms[-1] in u.norm and all(t in "".join(x.norm for x in sidx.sentence_of(u)) for t in terms):
            return None  # a sentence naming the container names the member too
    return terms[-1], terms[0]


def _co_occurrence(sidx: SentenceIndex, ranked: list[Scored], question: str) -> list[Scored]:
    """"科技金融算不算八大抓手里的": a question whether one thing belongs to another is answered by the sentence
    naming both. When no top unit names all of its specific terms (three or more characters, in the corpus) but
    one sentence does across its clauses, those clauses lead the answer. When none does ("核心技术攻关算不算八大
    抓手之一"), the container's naming clause and its enumeration lead, then the best unit naming the member."""
    terms = _membership_terms(sidx, question)
    if not terms or any(all(t in s.unit.norm for t in terms) for s in ranked[:3]):
        return []
    by_unit = {s.unit: s for s in ranked}
    for s in ranked:
        sentence = sidx.sentence_of(s.unit)
        text = "".join(u.norm for u in sentence)
        if all(t in text for t in terms):
            return [by_unit[u] for u in sentence if u in by_unit and any(t in u.norm for t in terms)]
    # no sentence names both: show what the container (the last term, "八大抓手") holds, so the asker sees
    # whether the other is in it — its naming clause and the enumeration that follows in the same sentence
    container = terms[-1]
    naming = next((u for u in sidx.units if container in u.norm), None)
    if naming is None:
        return []
    sentence = sidx.sentence_of(naming)
    picked = [u for u in sentence[sentence.index(naming):] if u is naming or _is_enumeration(u.text)][:2]
    out = [by_unit.get(u) or Scored(u, sidx.chunk_of(u), 0.0, 0.0) for u in picked if sidx.chunk_of(u)]
    member = next((s for s in ranked if terms[0] in s.unit.norm), None)  # and where the other is named
    return out + ([member] if member is not None else [])


def _complete_list(sidx: SentenceIndex, ranked: list[Scored], chosen: list[Scored], count: int | None,
                   own: frozenset[str]) -> None:
    """A list question gets its enumeration: the one with the asked number of items, else the one that follows
    the clause naming it ("八大抓手", then "推进…、…、…"), else the best-ranked one that matches the asker's own
    words (`own`: their bigrams; a synonym's match is too weak to add a list)."""
    if count:
        exact = [s for s in ranked[:8] if _items(s.unit.text) == count and s.matched]
        if exact:
            keep = exact[0]
            chosen[:] = [s for s in chosen if _same_sentence(sidx, s.unit, keep.unit)] + [keep]
            return
    if len(chosen) > 1 or any(_is_enumeration(s.unit.text) for s in chosen):
        return  # several sentences already make the list
    units = sidx.by_doc[chosen[0].unit.doc_id]
    for s in list(chosen[:2]):
        i = units.index(s.unit)
        for nxt in units[i + 1 : i + 3]:
            if _same_sentence(sidx, s.unit, nxt) and _is_enumeration(nxt.text):
                chunk = next((h.chunk for h in ranked if h.unit == nxt), s.chunk)
                chosen.append(Scored(nxt, chunk, s.score, s.lexical))
                return
    enum_ranked = [s for s in ranked[:6] if _is_enumeration(s.unit.text) and s.matched & own and not s.passing
                   and s not in chosen]
    if enum_ranked:
        chosen.append(enum_ranked[0])


def _same_sentence(sidx: SentenceIndex, a: Unit, b: Unit) -> bool:
    """Whether two units are clauses of one sentence (adjacent, the earlier one not ending it)."""
    if a.doc_id != b.doc_id or a.paragraph != b.paragraph:
        return False
    first, second = (a, b) if a.start <= b.start else (b, a)
    units = sidx.by_doc[a.doc_id]
    i, j = units.index(first), units.index(second)
    return all(not _SENTENCE_END.search(units[k].text) for k in range(i, j))


def _complete_sentences(sidx: SentenceIndex, ranked: list[Scored], chosen: list[Scored], any_length: bool) -> None:
    """A quoted clause that leaves its sentence open is followed by the clause that ends it when that is short
    ("…转变，" + "持续做大做强科技企业群体。"), or whatever its length for "what is it for?": the aim usually closes
    the sentence ("构建…成果池，…实现人才招引和成果落地双赢")."""
    for s in list(chosen):
        units = sidx.by_doc[s.unit.doc_id]
        i = units.index(s.unit)
        if _SENTENCE_END.search(s.unit.text) or i + 1 >= len(units):
            continue
        nxt = units[i + 1]
        if nxt.paragraph != s.unit.paragraph or not _SENTENCE_END.search(nxt.text):
            continue
        if not any_length and len(nxt.norm) >= MIN_CLAUSE_CHARS:
            continue
        chunk = next((h.chunk for h in ranked if h.unit == nxt), None) or sidx.chunk_of(nxt)
        if chunk is not None and all(o.unit != nxt for o in chosen):
            chosen.append(Scored(nxt, chunk, s.score, 0.0))


def _first_substantial(units: list[Unit]) -> Unit:
    """A paragraph's opening unit, skipping a short exclamation ("创新永无止境。")."""
    return next((u for u in units if len(u.norm) >= MIN_HEADLINE_CHARS), units[0])


def _citations(selected: list[Scored], sidx: SentenceIndex | None = None) -> tuple[Citation, ...]:
    """Numbered citations of the selected units; with `sidx`, consecutive clauses of one sentence in one passage
    become one citation quoting them together ("…赋能企业发展，全力推动产业体系现代化建设")."""
    if sidx is None:
        return tuple(Citation(n, s.chunk, s.unit.text, s.unit.start, s.unit.end) for n, s in enumerate(selected, start=1))
    spans: list[list] = []  # [chunk, doc_id, start, end]
    for s in selected:
        last = spans[-1] if spans else None
        if (last and last[0] == s.chunk and last[1] == s.unit.doc_id and sidx.continues(s.unit)
                and 0 <= s.unit.start - last[3] <= 1):
            last[3] = s.unit.end
        else:
            spans.append([s.chunk, s.unit.doc_id, s.unit.start, s.unit.end])
    docs = sidx.index.documents
    return tuple(Citation(n, chunk, docs[doc_id].text[start:end], start, end)
                 for n, (chunk, doc_id, start, end) in enumerate(spans, start=1))


def _join_quotes(cits: tuple[Citation, ...], script: str) -> str:
    ph = phrases()[script]
    if script == "en":
        return "\n".join(f"“{_strip_end(display(c.quote, script))}”[{c.n}]" for c in cits)
    return ph["sep"].join(f"{_strip_end(display(c.quote, script))}[{c.n}]" for c in cits) + ph["end"]


def _where_en(cits: tuple[Citation, ...]) -> str:
    ph = phrases()["en"]
    ps = sorted({c.chunk.paragraph + 1 for c in cits})  # 1-based for readers, as in the app
    if len(ps) == 1:
        return ph["where_one"].format(p=ps[0])
    return ph["where_many"].format(ps=", ".join(map(str, ps[:-1])) + f" and {ps[-1]}")


class ExtractiveEngine:
    """Composes a short answer from verbatim source sentences of the retrieved passages."""

    name = "extractive"

    def __init__(self, index: LoadedIndex, settings: Settings, embedder=None) -> None:
        self.settings = settings
        self.sidx = SentenceIndex(index, settings.max_clause_chars, embedder)

    def answer(self, question: str, query: str, hits: list[Hit], script: str,
               history: list[tuple[str, str]]) -> Draft:
        ranked = rank_units(self.sidx, query, hits, question)
        if hits and asks_for(question) == "person" and not content_terms(question) and META.search(question):
            # "这篇讲话是谁讲的？": the byline, the first line of the document the passages come from
            byline = self.sidx.by_doc[hits[0].chunk.doc_id][0]
            ranked = [Scored(byline, self.sidx.chunk_of(byline), 1.0, 1.0)] + ranked
        intents = doc_intents(question, self.sidx.corpus_norm)
        if intents and hits:
            return self._whole_document(hits[0].chunk.doc_id, intents, script, question, query)
        n = ordinal(question)
        if n and history:
            draft = self._ordinal(n, history, ranked, script)
            if draft:
                return draft
        parts = [rank_units(self.sidx, retrieval_query(sq, [], self.sidx.corpus_norm), hits, question=sq)
                 for sq in sub_questions(question)]
        selected = select_units(self.sidx, ranked, question, self.settings.max_answer_sentences, query=query,
                                exclude=self._already_said(question, history, ranked), parts=parts)
        cits = _citations(selected, self.sidx)
        ph = phrases()[script]
        absent = _absent_member(self.sidx, question)
        if script == "en":
            topic = english_name(t2s(query)) or english_name(normalize(" ".join(c.quote for c in cits))) or ph["topic_default"]
            key = "lead_list" if asks_list(question) and any(_is_enumeration(c.quote) for c in cits) else "lead"
            lead = ph[key].format(topic=topic, where=_where_en(cits))
            if absent:
                lead = ph["not_in_container"].format(container=absent[0], member=absent[1])
            return Draft(f"{lead}\n{_join_quotes(cits, script)}", cits)
        lead = ph["lead"]
        if absent:
            lead = ph["not_in_container"].format(container=display(absent[0], script), member=display(absent[1], script))
        return Draft(lead + _join_quotes(cits, script), cits)

    def _already_said(self, question: str, history, ranked: list[Scored]) -> set[tuple[str, int]]:
        """For "除了这个… / 具体呢", the candidate units the previous answer already gave; else nothing to leave out."""
        if not history or not _BESIDES.search(t2s(question)):
            return set()
        return previously_quoted(self.sidx, history, [s.unit for s in ranked])

    def _whole_document(self, doc_id: str, intents: list[str], script: str, question: str, query: str) -> Draft:
        """"讲话主要讲了什么 / 分几部分 / 开头 / 结尾说了啥": the opening of each body paragraph (evenly spaced when
        there are more than MAX_SUMMARY), or the document's first or last sentence — the first or last one naming
        the question's topic when it has one ("开头和结尾都提到了315…")."""
        ph = phrases()[script]
        body = self.sidx.body(doc_id)
        quoted: list[str] = []
        if "start" in intents or "end" in intents:
            topic = [t for t in content_terms(query) if t in self.sidx.corpus_norm]

            def naming(units: list[Unit]) -> Unit | None:
                """The unit naming most of the topic (by characters: 315 weighs more than 科技), first on a tie."""
                weight = [sum(len(t) for t in topic if t in u.norm) for u in units]
                best = max(range(len(units)), key=lambda i: (weight[i], -i), default=None)
                return units[best] if best is not None and weight[best] > 0 else None

            picked = []
            if "start" in intents:
                early = [u for p in body[: max(2, len(body) // 3)] for u in p]
                picked += self.sidx.sentence_of(naming(early) or _first_substantial(body[0]))
            if "end" in intents:
                late = [u for p in body[-max(1, len(body) // 3):] for u in p]
                picked += self.sidx.sentence_of(naming(late[::-1]) or body[-1][-1])
            key = "lead" if "start" in intents and "end" in intents else ("lead_start" if "start" in intents else "lead_end")
        else:
            heads = [_first_substantial(p) for p in body]
            # "标题里各有一个“新”": the openings that quote a term beginning so
            quoted = re.findall(r"[“「\"']([^”」\"']{1,8})[”」\"']", t2s(question))
            marked = [h for h in heads if any(f"“{q}" in t2s(h.text) or f"「{q}" in t2s(h.text) for q in quoted)]
            heads = marked or heads
            if len(heads) > MAX_SUMMARY:
                heads = [heads[round(i * (len(heads) - 1) / (MAX_SUMMARY - 1))] for i in range(MAX_SUMMARY)]
            picked, key = heads, ("lead_marked" if marked else "lead_structure" if "structure" in intents else "lead_summary")
        units = list(dict.fromkeys(picked))
        cits = _citations([Scored(u, self.sidx.chunk_of(u), 1.0, 0.0) for u in units if self.sidx.chunk_of(u)], self.sidx)
        if key == "lead":
            lead = ph["lead"].format(topic=ph["topic_default"], where=_where_en(cits)) if script == "en" else ph["lead"]
        else:
            lead = ph[key].format(n=len(body), q=display(quoted[0], script) if key == "lead_marked" else "")
        return Draft(f"{lead}\n{_join_quotes(cits, script)}" if script == "en" else lead + _join_quotes(cits, script), cits)

    def _ordinal(self, n: int, history, ranked: list[Scored], script: str) -> Draft | None:
        """'其中第三个呢？' after a list: the n-th item of the enumeration the previous answer quoted."""
        previous = normalize(history[-1][1] + " " + history[-1][0])
        for u in self.sidx.units:
            if not _is_enumeration(u.text) or not any(seg in previous for seg in re.split("[、，,]", u.norm) if len(seg) >= 4):
                continue
            body = re.sub(r"^[^、]*?(推进|包括|以|打造|建设)", r"\1", _strip_end(u.text))
            items = [i for i in re.split("[、]", body) if i]
            if n > len(items):
                return None
            chunk = next((h.chunk for h in ranked if h.unit == u), None) or self.sidx.chunk_of(u)
            if chunk is None:
                return None
            item = re.sub(r"^(推进|包括)", "", items[n - 1])
            cits = (Citation(1, chunk, u.text, u.start, u.end),)
            ph = phrases()[script]
            shown = display(item, script)
            return Draft(ph["ordinal"].format(n=n, item=shown) + ("\n" if script == "en" else "") + _join_quotes(cits, script), cits)
        return None


# --- answerability ----------------------------------------------------------------------------------------




def assess(sidx: SentenceIndex, question: str, query: str, hits: list[Hit], settings: Settings) -> Answerability:
    """Whether the passages answer the question: topicality (content words in the corpus, dense similarity)
    and, for questions that ask for a figure, date, name or procedure, whether the passages hold one."""
    terms = query_terms(query)
    cov, missing = coverage(content_terms(query), sidx.corpus_norm)
    syn_cov = 1.0 if any(t in sidx.corpus_norm for t in terms) else 0.0
    dense = max((h.scores.get("dense", 0.0) for h in hits), default=0.0)
    dense_n = min(1.0, max(0.0, (dense - 0.78) / 0.12))
    topical = max(cov, 0.5 * syn_cov) if terms else 0.0
    intents = doc_intents(question, sidx.corpus_norm)
    if (not terms and META.search(question)) or (intents and not [t for t in content_terms(question)
                                                                   if t in sidx.corpus_norm]):
        topical = 1.0  # a question about the speech itself: who gave it, what it is about, how it ends
    elif topical == 0 and META.search(question):
        topical = META_TOPICALITY  # it asks about the speech, in words the speech lacks: not off-topic, not sure
    score = 0.55 * topical + 0.45 * dense_n
    kind = "" if intents else asks_for(question)  # "讲话有几个部分" counts paragraphs, not a figure in the text
    found = [t for t in content_terms(query) if t in sidx.corpus_norm]
    topic = max(found, key=len) if found else ""
    reason = f"coverage {cov:.2f}, dense {dense:.3f}"
    meta_person = kind == "person" and not content_terms(question) and bool(META.search(question))
    if kind and not meta_person:  # the byline names the speaker of the speech itself
        ranked = rank_units(sidx, query, hits, question)[:3]
        if topic and kind == "person":
            ranked = [s for s in ranked if topic in s.unit.norm]  # the person must be named with the topic
        if not any(has_evidence(kind, s.unit.text, question) for s in ranked):
            score *= 0.35
            reason += f"; asks for {kind}, none in the passages"
    if missing and kind:
        score *= 0.6  # asks for an attribute the corpus never mentions (利率, 主任, 截止…)
    answerable = score >= settings.answerable_threshold
    if topical == 0:
        reason += "; off-topic"
    return Answerability(answerable, float(score), reason + (f"; missing {missing}" if missing else ""), kind, topic,
                         off_topic=topical == 0)


def refusal(sidx: SentenceIndex, question: str, query: str, hits: list[Hit], script: str,
            verdict: Answerability) -> Draft:
    """A plain 'the document does not say', with the related passages it does have."""
    ph = phrases()[script]
    if verdict.off_topic or not hits:
        return Draft(ph["off_topic"], (), refused=True)
    ranked = rank_units(sidx, query, hits, question)
    cits = _citations(ranked[:1])
    topic_zh = verdict.topic
    detail = attribute(question)
    if script == "en":
        topic = english_name(t2s(query)) or ph["topic_default"]
        detail_en = {"quantity": "figures", "time": "dates", "person": "names", "named": "names",
                     "procedure": "procedure", "detail": "specifics"}.get(verdict.asks_for, "")
        lead = ph["not_covered_kind"].format(kind=detail_en, topic=topic) if detail_en else ph["not_covered"]
        return Draft(f"{lead}\n{_join_quotes(cits, script)}", cits, refused=True)
    topic = display(topic_zh, script) if topic_zh else ""
    if topic and detail:
        lead = ph["not_covered_detail"].format(topic=topic, detail=display(detail, script))
    elif topic and verdict.asks_for:
        lead = ph["not_covered_kind"].format(topic=topic, kind=ph["kinds"][verdict.asks_for])
    else:
        lead = ph["not_covered"]
    return Draft(lead + _join_quotes(cits, script), cits, refused=True)
