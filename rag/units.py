"""The units an answer quotes (sentences, and comma clauses of long ones) with what scoring needs of them: bigram
and character IDF, their stored vectors, their place in the paragraph, and what kind of fact each holds."""
from __future__ import annotations

import functools
import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from .chunking import sentences
from .store import LoadedIndex
from .text import CJK, normalize
from .types import Chunk, Document

SENTENCE_END = re.compile(r"[。！？!?；;]\s*$")
# What kind of fact a text holds: language knowledge of how Chinese texts state figures, dates, names and steps.
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?\s*(?:%|亿|万|千|百|元|个|家|所|项|倍|周年|年|人|名|户|吨|公里|千米|平方|亩|次|台|辆|套|天|"
                     r"小时|岁|美元|条|座|件|批|期|级|分|张|床|公顷|千瓦|立方)|[一二两三四五六七八九十百千万亿]+(?:亿|万|元|个|家|所|项|倍|周年|人|"
                     r"名|户|次|批|条|块|大|方面|件|座)|百分之|翻一番|翻番")
_DATE = re.compile(r"(?:19|20)[0-9]{2}\s*年|[0-9一二三四五六七八九十]{1,2}月|[0-9一二三四五六七八九十]{1,3}日|年底|年内|年初|上半年|"
                   r"下半年|今年|明年|去年|前年|截止|截至|期限|期间|之前|以前|以后|届时|同期|“十[一二三四五六七八九]五”|十[一二三四五]五")
_ORG = re.compile(rf"[{CJK}]{{2,}}(?:局|委员会|委|部|厅|署|院|所|中心|公司|银行|大学|学院|集团|协会|基金会|医院|学校|组织|机构)")
_PLACE = re.compile(rf"[{CJK}]{{1,6}}(?:省|市|县|区|镇|乡|村|自治区|特区|州|湾区|地区)")
_PROCEDURE = re.compile(r"申请|申报|办理|受理|窗口|提交|流程|手续|材料|报名|网址|热线|电话|登录|注册|审批|备案|条件|资格")
_PURPOSE = re.compile(r"为了|旨在|以便|从而|目的|目标|为.{1,12}提供|助力|推动|促进|实现|确保|以[^，,。]{1,20}(?:为|赋能)")
_SERIES = re.compile(r"[一二三四五六七八九十]是|首先|其次|再次|最后|第[一二三四五六七八九十]")


@dataclass(frozen=True)
class Unit:
    """A sentence, or a comma clause of a long sentence, of one document: what an answer quotes."""

    doc_id: str
    paragraph: int
    start: int
    end: int
    text: str
    norm: str


def bigrams(text: str) -> list[str]:
    """Character bigrams of the CJK runs of a normalised text, and its Latin words and numbers whole."""
    out = []
    for run in re.findall(f"[{CJK}]+|[a-z0-9]+", text):
        if re.match("[a-z0-9]", run) or len(run) == 1:
            out.append(run)
        else:
            out.extend(run[i : i + 2] for i in range(len(run) - 1))
    return out


def _is_name(text: str) -> bool:
    """Whether a text names a person (jieba's part-of-speech tagger: 'nr'), cached per text."""
    return _tagged(text)[0]


@functools.lru_cache(maxsize=65536)
def _tagged(text: str) -> tuple[bool, bool, bool]:
    import jieba.posseg as pseg

    from .text import _jieba

    _jieba()
    tags = {w.flag for w in pseg.lcut(text) if len(w.word) >= 2}
    return "nr" in tags, "nt" in tags, "ns" in tags


_FACTS = {"quantity": _NUMBER, "time": _DATE, "organisation": _ORG, "place": _PLACE, "procedure": _PROCEDURE}


def new_fact(kind: str, text: str, question_norm: str) -> bool:
    """Whether a text states a fact of the asked kind that the question does not already state ("2023年的目标" is
    not answered by a sentence whose only date is 2023)."""
    rx = _FACTS.get(kind)
    if rx is None:
        return holds(kind, text)
    return any(m.group(0) not in question_norm for m in rx.finditer(text)) or (
        kind in ("organisation", "place") and holds(kind, text) and not rx.search(text))


def states_near(kind: str, text: str, anchors, question_norm: str) -> bool:
    """Whether a clause of the text states a new fact of the asked kind beside one of the anchors (the asked
    focus or the question's topic words): a name, a figure or a date counts only next to what it is about."""
    return any(any(a in clause for a in anchors) and new_fact(kind, clause, question_norm)
               for clause in re.split(r"[，,；;。！？!?]", text) if clause)


def holds(kind: str, text: str) -> bool:
    """Whether a (normalised) text states a fact of the asked kind: a figure, a date, a person, an organisation, a
    place, a procedure, an enumeration, a purpose."""
    if kind == "quantity":
        return bool(_NUMBER.search(text))
    if kind == "time":
        return bool(_DATE.search(text))
    if kind == "person":
        return _is_name(text)
    if kind == "organisation":
        return bool(_ORG.search(text)) or _tagged(text)[1]
    if kind == "place":
        return bool(_PLACE.search(text)) or _tagged(text)[2]
    if kind == "procedure":
        return bool(_PROCEDURE.search(text))
    if kind == "list":
        return text.count("、") >= 2 or bool(_SERIES.search(text))
    if kind == "purpose":
        return bool(_PURPOSE.search(text))
    return False


def items(text: str) -> int:
    """How many items the longest 、-enumeration of a text lists (0 when it lists none)."""
    clauses = re.split(r"[，,。；;：:！？!?]", text)
    return max((c.count("、") + 1 for c in clauses if "、" in c), default=0)


class UnitIndex:
    """Every answer unit of a loaded index, with IDF and vectors; built once per index."""

    def __init__(self, index: LoadedIndex, max_clause_chars: int, embedder=None) -> None:
        self.index = index
        self.embedder = embedder
        self.units: list[Unit] = [Unit(d.id, p, s, e, d.text[s:e], normalize(d.text[s:e]))
                                  for d in index.documents.values() for p, s, e in sentences(d, max_clause_chars)]
        self.pos = {(u.doc_id, u.start): i for i, u in enumerate(self.units)}
        self.grams = [frozenset(bigrams(u.norm)) for u in self.units]
        self.chars = [frozenset(re.findall(f"[{CJK}]", u.norm)) for u in self.units]
        n = max(1, len(self.units))
        df2: Counter[str] = Counter(g for gs in self.grams for g in gs)
        df1: Counter[str] = Counter(c for cs in self.chars for c in cs)
        self.idf2 = {g: math.log(1 + n / c) for g, c in df2.items()}
        self.idf1 = {g: math.log(1 + n / c) for g, c in df1.items()}
        self.max_idf2 = math.log(1 + n)
        self.by_doc: dict[str, list[int]] = {}
        for i, u in enumerate(self.units):
            self.by_doc.setdefault(u.doc_id, []).append(i)
        self._chunk_units: dict[str, list[int]] = {}
        stored = index.sentence_vectors
        self._vectors = stored if stored is not None and len(stored) == len(self.units) else None

    # --- places ------------------------------------------------------------------------------------------------------
    def of(self, unit: Unit) -> int:
        return self.pos[(unit.doc_id, unit.start)]

    def within(self, chunk: Chunk) -> list[int]:
        """Positions of the units inside a chunk, in order."""
        if chunk.id not in self._chunk_units:
            self._chunk_units[chunk.id] = [i for i in self.by_doc.get(chunk.doc_id, [])
                                           if chunk.start <= self.units[i].start and self.units[i].end <= chunk.end]
        return self._chunk_units[chunk.id]

    def chunk_of(self, i: int) -> Chunk | None:
        """The first indexed chunk that contains unit i."""
        u = self.units[i]
        return next((c for c in self.index.chunks
                     if c.doc_id == u.doc_id and c.start <= u.start and u.end <= c.end), None)

    def neighbours(self, i: int) -> list[int]:
        """The units before and after unit i in the same paragraph."""
        u = self.units[i]
        return [j for j in (i - 1, i + 1) if 0 <= j < len(self.units)
                and self.units[j].doc_id == u.doc_id and self.units[j].paragraph == u.paragraph]

    def continues(self, i: int) -> bool:
        """Whether unit i is a later clause of a sentence cut at commas (its predecessor leaves it open)."""
        return i > 0 and i - 1 in self.neighbours(i) and not SENTENCE_END.search(self.units[i - 1].text)

    def sentence(self, i: int) -> list[int]:
        """The units of the sentence unit i belongs to."""
        a = b = i
        while self.continues(a):
            a -= 1
        while b + 1 < len(self.units) and self.continues(b + 1):
            b += 1
        return list(range(a, b + 1))

    def paragraph(self, i: int) -> list[int]:
        """The units of unit i's paragraph."""
        u = self.units[i]
        return [j for j in self.by_doc[u.doc_id] if self.units[j].paragraph == u.paragraph]

    def document(self, doc: Document) -> list[list[int]]:
        """A document's units by paragraph."""
        paragraphs: dict[int, list[int]] = {}
        for i in self.by_doc.get(doc.id, []):
            paragraphs.setdefault(self.units[i].paragraph, []).append(i)
        return list(paragraphs.values())

    # --- scores ------------------------------------------------------------------------------------------------------
    def overlap(self, grams: frozenset[str], i: int) -> float:
        """IDF-weighted share of `grams` (bigrams) found in unit i."""
        total = sum(self.idf2.get(g, self.max_idf2) for g in grams)
        if total <= 0:
            return 0.0
        have = self.grams[i]
        return sum(self.idf2.get(g, self.max_idf2) for g in grams if g in have) / total

    def char_overlap(self, chars: frozenset[str], i: int) -> float:
        """IDF-weighted share of `chars` (single characters) found in unit i."""
        total = sum(self.idf1.get(c, self.max_idf2) for c in chars)
        if total <= 0:
            return 0.0
        return sum(self.idf1.get(c, self.max_idf2) for c in chars if c in self.chars[i]) / total

    def dense(self, query_vector: np.ndarray | None, rows: list[int]) -> np.ndarray:
        """Cosine of units to a query vector (zeros without an embedder)."""
        if query_vector is None or self.embedder is None or not rows:
            return np.zeros(len(rows), dtype=np.float32)
        if self._vectors is None:
            self._vectors = self.embedder.embed_documents([u.text for u in self.units])
        return self._vectors[rows] @ query_vector
