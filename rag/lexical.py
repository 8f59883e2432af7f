"""BM25 over t2s-normalised tokens (bm25s), saved without pickle."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from .text import tokenize

log = logging.getLogger(__name__)


def _bm25s():
    """bm25s, with its own DEBUG chatter ("Building index from tokens") kept out of our logs."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


class LexicalIndex:
    """A BM25 index whose rows are chunk positions; queries are tokenised like the passages."""

    def __init__(self, retriever, tokenizer: str) -> None:
        self._bm25 = retriever
        self.tokenizer = tokenizer

    @classmethod
    def build(cls, texts: Sequence[str], tokenizer: str = "bigram") -> "LexicalIndex":
        """Index passages (any script: they are normalised to Simplified first)."""
        bm25s = _bm25s()
        corpus_tokens = [tokenize(t, tokenizer) or ["\u0000"] for t in texts]
        retriever = bm25s.BM25(k1=1.2, b=0.75)
        retriever.index(corpus_tokens, show_progress=False)
        return cls(retriever, tokenizer)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row for the query (zeros when no token is known)."""
        tokens = [t for t in tokenize(query, self.tokenizer) if t in self._bm25.vocab_dict]
        if not tokens:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(tokens), dtype=np.float32)

    @property
    def size(self) -> int:
        """Number of indexed rows."""
        return int(self._bm25.scores["num_docs"])

    def save(self, folder: Path) -> None:
        self._bm25.save(str(folder))

    @classmethod
    def load(cls, folder: Path, tokenizer: str) -> "LexicalIndex":
        return cls(_bm25s().BM25.load(str(folder), mmap=False), tokenizer)
