"""A corpus's vocabulary at run time: its Domain plus what is derived from the texts when the index loads (the
normalised text, the segmenter that keeps its terms whole, a pinyin index of its words for repairing homophone
typos). Built once per loaded index; questions are analysed against it."""
from __future__ import annotations

import functools
import re
from collections import defaultdict

from .domain import Domain, tokenizer
from .text import CJK, normalize
from .types import Document

MAX_REPAIR_LEN = 8


@functools.lru_cache(maxsize=65536)
def _pinyin(text: str) -> str:
    from pypinyin import lazy_pinyin

    return " ".join(lazy_pinyin(text))


class Lexicon:
    """What the question analysis knows of one corpus."""

    def __init__(self, domain: Domain, documents: list[Document]) -> None:
        self.domain = domain
        self.corpus_norm = "\n".join(normalize(d.text) for d in documents)
        self.self_words = domain.self_words
        # what names the document itself in a question (its speaker, their role): the setting (a place) does not
        self.doc_names = frozenset(normalize(x) for m in domain.docs.values() for x in (m.speaker, m.role) if x)
        self._segmenter = tokenizer(tuple(domain.terms) + tuple(sorted(domain.self_words)))
        self._grams = {self.corpus_norm[i : i + 2] for i in range(len(self.corpus_norm) - 1)}
        self._by_sound: dict[tuple[int, str], set[str]] | None = None

    def documents_named(self, norm: str) -> tuple[str, ...]:
        """The documents a (normalised) question names, in a corpus of several: by speaker or role, place, title,
        or a year with a kind of document ("2019年的报告"), or a kind only some documents are ("讲话"). Each way
        gives a set; the answer is their intersection (or the smallest set when they disagree); () when none."""
        docs = self.domain.docs
        if len(docs) < 2:
            return ()
        years = set(re.findall(r"((?:19|20)[0-9]{2})年", norm))
        sets = []
        for words in ([("speaker",), ("role",)], [("place",)], [("title",)]):
            found = {d for d, m in docs.items() for (f,) in words
                     if (v := normalize(getattr(m, f))) and len(v) >= 2 and v in norm and v != normalize(m.doc_id)}
            if found:
                sets.append(found)
        kinds = {d for d, m in docs.items() if normalize(m.kind) in norm and m.kind}
        if kinds and years:
            dated = {d for d in kinds if docs[d].date[:4] in years}
            sets.append(dated or kinds)
        elif kinds and len(kinds) < len(docs):
            sets.append(kinds)
        if not sets:
            return ()
        common = set.intersection(*sets)
        return tuple(sorted(common or min(sets, key=len)))

    def segment(self, norm: str) -> list[str]:
        """Words of a normalised text, the corpus's terms kept whole."""
        return self._segmenter.lcut(norm)

    def has(self, term: str) -> bool:
        """Whether the corpus holds a term: verbatim, or every one of its character bigrams."""
        if term in self.corpus_norm:
            return True
        grams = [term[i : i + 2] for i in range(len(term) - 1)]
        return bool(grams) and all(g in self._grams for g in grams)

    def english_terms(self, text: str) -> list[str]:
        return [t for t in self.domain.english_terms(text) if t in self.corpus_norm]

    def expand(self, norm: str) -> list[str]:
        return [t for t in self.domain.expand(norm) if t in self.corpus_norm]

    def _sounds(self) -> dict[tuple[int, str], set[str]]:
        """{(length, toneless pinyin): corpus words}: the corpus's terms and words of two or more characters."""
        if self._by_sound is None:
            words = set(self.domain.terms)
            for run in re.findall(f"[{CJK}]+", self.corpus_norm):
                words.update(w for w in self._segmenter.lcut(run) if len(w) >= 2)
            index: dict[tuple[int, str], set[str]] = defaultdict(set)
            for w in words:
                if 2 <= len(w) <= MAX_REPAIR_LEN and re.fullmatch(f"[{CJK}]+", w):
                    index[(len(w), _pinyin(w))].add(w)
            self._by_sound = dict(index)
        return self._by_sound

    def repair(self, norm: str, terms: tuple[str, ...]) -> list[str]:
        """Corpus words an asker probably meant where they typed a homophone (a pinyin-input slip): a stretch of the
        question that is not in the corpus but sounds like a corpus word of the same length and shares a character
        with it in the same place."""
        out: list[str] = []
        runs = re.findall(f"[{CJK}]+", norm)
        for run in runs:
            n = len(run)
            for size in range(min(MAX_REPAIR_LEN, n), 1, -1):
                for i in range(n - size + 1):
                    window = run[i : i + size]
                    if window in self.corpus_norm or any(window in o for o in out):
                        continue
                    for word in self._sounds().get((size, _pinyin(window)), ()):
                        if word not in out and any(a == b for a, b in zip(word, window)):
                            out.append(word)
        return out
